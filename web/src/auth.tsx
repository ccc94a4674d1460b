import { FormEvent, useEffect, useState } from "react";
import { useLocation, useNavigate, useSearchParams } from "react-router";
import * as api from "./api";
import { Alert, errorText } from "./ui";

export function LoginPage({ onDone }: { onDone: (u: api.User) => void }) {
  const [error, setError] = useState("");
  const [github, setGithub] = useState(false);
  useEffect(() => {
    api.providers().then((p) => setGithub(p.github), () => setGithub(false));
  }, []);
  const navigate = useNavigate();
  // Where the user was going when sent here (an invitation or CLI sign-in link), same site only.
  const from = (useLocation().state as { from?: string } | null)?.from;
  const next = from && from.startsWith("/") && !from.startsWith("//") ? from : "/";
  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    try {
      onDone(await api.login(String(form.get("username")), String(form.get("password"))));
      navigate(next);
    } catch (err) {
      setError(errorText(err));
    }
  }
  return (
    <main>
    <form className="card narrow stack" onSubmit={submit}>
      <h1>Sign in to shard</h1>
      <label className="field">
        Username <input name="username" autoComplete="username" required />
      </label>
      <label className="field">
        Password <input name="password" type="password" autoComplete="current-password" required />
      </label>
      <Alert>{error}</Alert>
      <button type="submit" className="btn">Sign in</button>
      {github && (
        <a className="btn secondary" href="/api/v1/auth/github/start">
          Sign in with GitHub
        </a>
      )}
    </form>
    </main>
  );
}

export function SetupPage({ onDone }: { onDone: (u: api.User) => void }) {
  const [params] = useSearchParams();
  const [error, setError] = useState("");
  const navigate = useNavigate();
  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    try {
      const user = await api.setup(
        String(form.get("token")),
        String(form.get("username")),
        String(form.get("password")),
      );
      onDone(user);
      navigate("/");
    } catch (err) {
      setError(errorText(err));
    }
  }
  return (
    <main>
    <form className="card narrow stack" onSubmit={submit}>
      <h1>Set up shard</h1>
      <p className="muted">Create the first admin. The setup token is in the server log and in the data directory.</p>
      <label className="field">
        Setup token <input name="token" defaultValue={params.get("token") ?? ""} required />
      </label>
      <label className="field">
        Admin username <input name="username" autoComplete="username" required />
      </label>
      <label className="field">
        Password (8+ characters)
        <input name="password" type="password" autoComplete="new-password" minLength={8} required />
      </label>
      <Alert>{error}</Alert>
      <button type="submit" className="btn">Create admin</button>
    </form>
    </main>
  );
}
