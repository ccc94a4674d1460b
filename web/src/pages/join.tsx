// Pages reached from a link: accepting a team invitation (/invitations/:token) and approving
// a command-line sign-in (/cli?code=...).
import { useEffect, useState } from "react";
import { Link, useParams, useSearchParams } from "react-router";
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
  const [params] = useSearchParams();
  const code = params.get("code") ?? "";
  const [request, setRequest] = useState<api.CliLogin | null>(null);
  const [outcome, setOutcome] = useState<"" | "approved" | "denied">("");
  const [error, setError] = useState("");
  useEffect(() => {
    if (code) api.cliLogin(code).then(setRequest, (e) => setError(errorText(e)));
    else setError("The link has no code; run `shard login` again.");
  }, [code]);
  const settle = async (approve: boolean) => {
    setError("");
    try {
      await (approve ? api.approveCliLogin(code) : api.denyCliLogin(code));
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
      {!outcome && request && (
        <>
          <p>
            <strong>{request.name}</strong> asks to act as <strong>{me.username}</strong> with a new API token (scope admin). Approve only if
            your terminal shows this code:
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
