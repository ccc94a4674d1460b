// Pages reached from a link: accepting a team invitation (/invitations/:token) and approving
// a command-line sign-in (/cli, where the user types the code their terminal shows).
import { FormEvent, useState } from "react";
import { Link, useParams } from "react-router";
import * as api from "../api";
import { Alert, errorText } from "../ui";

export function InvitationPage({ me }: { me: api.User }) {
  const { token = "" } = useParams();
  const [team, setTeam] = useState<api.Team | null>(null);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  return (
    <section className="card stack narrow-card">
      <h1>Team invitation</h1>
      {team ? (
        <Alert tone="ok">
          You joined <Link to={`/teams/${team.id}`}>{team.name}</Link> as {team.role}.
        </Alert>
      ) : (
        <>
          <p>
            Join the team that invited you, as <strong>{me.username}</strong>. An invitation works once, for the user it names.
          </p>
          <Alert>{error}</Alert>
          <div className="form-actions">
            <button
              className="btn"
              disabled={busy}
              onClick={async () => {
                setBusy(true);
                setError("");
                try {
                  setTeam(await api.acceptInvitation(token));
                } catch (e) {
                  setError(errorText(e));
                } finally {
                  setBusy(false);
                }
              }}
            >
              Accept invitation
            </button>
          </div>
        </>
      )}
    </section>
  );
}

export function CliApprovePage({ me }: { me: api.User }) {
  // The code is typed, never taken from the link: a page that opens or frames this one with a
  // code of its own cannot get a token approved by one click.
  const [typed, setTyped] = useState("");
  const [request, setRequest] = useState<api.CliLogin | null>(null);
  const [outcome, setOutcome] = useState<"" | "approved" | "denied">("");
  const [error, setError] = useState("");
  const lookUp = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    setError("");
    const code = typed.trim();
    if (!code) return setError("Enter the code your terminal shows.");
    try {
      setRequest(await api.cliLogin(code));
    } catch (err) {
      setError(errorText(err));
    }
  };
  const settle = async (approve: boolean) => {
    if (!request) return;
    setError("");
    try {
      await (approve ? api.approveCliLogin(request.code) : api.denyCliLogin(request.code));
      setOutcome(approve ? "approved" : "denied");
    } catch (e) {
      setError(errorText(e));
    }
  };
  return (
    <section className="card stack narrow-card">
      <h1>Command-line sign-in</h1>
      {outcome === "approved" && <Alert tone="ok">Approved. The command line is signed in as {me.username}; you can close this page.</Alert>}
      {outcome === "denied" && <Alert tone="warn">Denied. The command line was not signed in.</Alert>}
      {!outcome && !request && (
        <form className="stack" onSubmit={lookUp}>
          <p>Type the code that `shard login` printed in your terminal. Never enter a code someone else gave you.</p>
          <label className="field">
            Code from your terminal
            <input
              name="code"
              autoComplete="off"
              autoCapitalize="characters"
              spellCheck={false}
              placeholder="XXXX-XXXX"
              value={typed}
              onChange={(e) => setTyped(e.target.value)}
            />
          </label>
          <div className="form-actions">
            <button className="btn" type="submit">
              Continue
            </button>
          </div>
        </form>
      )}
      {!outcome && request && (
        <>
          <p>
            <strong>{request.name}</strong> asks to act as <strong>{me.username}</strong> with a new API token (scope admin). Approve only if
            you started this sign-in yourself, with the code:
          </p>
          <p className="code-display" data-testid="cli-code">
            {request.code}
          </p>
          <div className="form-actions">
            <button className="btn secondary" onClick={() => settle(false)}>
              Deny
            </button>
            <button className="btn" onClick={() => settle(true)}>
              Approve
            </button>
          </div>
        </>
      )}
      <Alert>{error}</Alert>
    </section>
  );
}
