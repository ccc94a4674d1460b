// Account: GitHub, API tokens (created, shown once, copied, revoked), notification channels
// and the password.
import { FormEvent, useEffect, useState } from "react";
import * as api from "../api";
import { NotificationChannels } from "./channels";
import { Tokens } from "./tokens";
import { Alert, errorText, Field, formErrors, FormErrors, noErrors } from "../ui";

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
