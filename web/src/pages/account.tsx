// Account: GitHub, API tokens (created, shown once, copied, revoked), notification channels
// and the password.
import { FormEvent, useEffect, useState } from "react";
import * as api from "../api";
import { NotificationChannels } from "./channels";
import { Ago, Alert, CopyButton, Empty, errorText, Field, formErrors, FormErrors, noErrors, useToast } from "../ui";

export default function AccountPage({ user }: { user: api.User }) {
  return (
    <section className="stack">
      <div className="page-head">
        <h1>Account</h1>
        <span className="muted">
          Signed in as <strong>{user.username}</strong> ({user.role})
        </span>
      </div>
      <GithubLink />
      <Tokens />
      <NotificationChannels />
      <Password />
    </section>
  );
}

function Tokens() {
  const [tokens, setTokens] = useState<api.ApiToken[] | null>(null);
  const [name, setName] = useState("");
  const [fresh, setFresh] = useState<api.ApiToken | null>(null);
  const [errors, setErrors] = useState<FormErrors>(noErrors);
  const toast = useToast();
  const reload = () => api.listTokens().then(setTokens, (e) => setErrors(formErrors(e)));
  useEffect(() => {
    reload();
  }, []);
  return (
    <section className="card stack" aria-label="API tokens">
      <h2>API tokens</h2>
      <p className="small muted">For scripts and CI: send one as <code>Authorization: Bearer …</code>. A token acts as you.</p>
      <form
        className="row"
        onSubmit={async (e) => {
          e.preventDefault();
          setErrors(noErrors);
          try {
            setFresh(await api.createToken(name));
            setName("");
            await reload();
          } catch (err) {
            setErrors(formErrors(err));
          }
        }}
      >
        <div className="grow">
          <Field label="Token name" value={name} onChange={(e) => setName(e.target.value)} placeholder="ci deploy" error={errors.fields.name} />
        </div>
        <button className="btn" style={{ alignSelf: "end" }}>
          Create token
        </button>
      </form>
      <Alert>{errors.message}</Alert>
      {fresh?.token && (
        <div className="alert ok stack" role="status" data-testid="new-token">
          <strong>Copy your new token now — it is shown only once.</strong>
          <div className="secret-once">{fresh.token}</div>
          <div className="row">
            <CopyButton text={fresh.token} label="Copy token" />
            <button className="btn ghost small" onClick={() => setFresh(null)}>
              Done
            </button>
          </div>
        </div>
      )}
      {tokens && tokens.length === 0 && <Empty title="No tokens" />}
      {tokens && tokens.length > 0 && (
        <table className="table" aria-label="Tokens">
          <thead>
            <tr>
              <th>Name</th>
              <th>Starts with</th>
              <th>Created</th>
              <th>
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {tokens.map((t) => (
              <tr key={t.id} data-testid={`token-${t.name}`}>
                <td data-label="Name" className="wrap-anywhere">{t.name}</td>
                <td data-label="Starts with">
                  <code>{t.prefix}…</code>
                </td>
                <td data-label="Created">
                  <Ago at={t.created_at} />
                </td>
                <td className="actions">
                  <button
                    className="btn danger small"
                    onClick={async () => {
                      try {
                        await api.deleteToken(t.id);
                        toast(`Token ${t.name} revoked`, "success");
                        if (fresh?.id === t.id) setFresh(null);
                        await reload();
                      } catch (e) {
                        setErrors({ fields: {}, message: errorText(e) });
                      }
                    }}
                  >
                    Revoke
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function Password() {
  const [errors, setErrors] = useState<FormErrors>(noErrors);
  const [done, setDone] = useState(false);
  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = e.currentTarget;
    const data = new FormData(form);
    setErrors(noErrors);
    setDone(false);
    if (data.get("new_password") !== data.get("repeat")) {
      setErrors({ fields: { repeat: "the two new passwords differ" }, message: "" });
      return;
    }
    try {
      await api.changePassword(String(data.get("current_password")), String(data.get("new_password")));
      form.reset();
      setDone(true);
    } catch (err) {
      setErrors(formErrors(err));
    }
  }
  return (
    <section className="card" aria-label="Password">
      <h2>Change password</h2>
      <form className="stack" onSubmit={submit}>
        <div className="form-grid">
          <Field label="Current password" name="current_password" type="password" autoComplete="current-password" required error={errors.fields.current_password} />
          <Field label="New password" name="new_password" type="password" autoComplete="new-password" required hint="8 characters or more" error={errors.fields.new_password} />
          <Field label="Repeat new password" name="repeat" type="password" autoComplete="new-password" required error={errors.fields.repeat} />
        </div>
        <Alert>{errors.message}</Alert>
        {done && <Alert tone="ok">Password changed. Your other sessions were signed out.</Alert>}
        <div className="form-actions">
          <button className="btn">Change password</button>
        </div>
      </form>
    </section>
  );
}

function GithubLink() {
  const [account, setAccount] = useState<api.GithubAccount | null>(null);
  const [message, setMessage] = useState("");
  const [error, setError] = useState("");
  const reload = () => api.githubAccount().then(setAccount, (e) => setError(errorText(e)));
  useEffect(() => {
    reload();
  }, []);
  if (!account?.enabled) return null;
  return (
    <section className="card stack" aria-label="GitHub">
      <h2>GitHub</h2>
      {account.connected ? (
        <div className="spread">
          <span>
            Connected as <strong>{account.login}</strong> <span className="small muted">({account.scopes})</span>
          </span>
          <button
            className="btn danger small"
            onClick={async () => {
              setError("");
              try {
                const result = await api.disconnectGithub();
                setMessage(result.revoke_error ? `Disconnected; GitHub did not confirm the revocation: ${result.revoke_error}` : "Disconnected, and the grant was revoked at GitHub.");
                await reload();
              } catch (e) {
                setError(errorText(e));
              }
            }}
          >
            Disconnect
          </button>
        </div>
      ) : (
        <div className="spread">
          <span className="small muted">Connect GitHub to sign in with it and to import repositories.</span>
          <a className="btn" href="/api/v1/auth/github/start">
            Connect GitHub
          </a>
        </div>
      )}
      <Alert tone="ok">{message}</Alert>
      <Alert>{error}</Alert>
    </section>
  );
}
