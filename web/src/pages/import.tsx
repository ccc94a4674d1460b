// Import from GitHub: search the connected account's repositories, pick one and a branch, and
// create the project; the answer says whether the Dockerfile is there and whether pushes will
// deploy (webhook created) or need the manual webhook setup.
import { useEffect, useState } from "react";
import { Link, useNavigate } from "react-router";
import * as api from "../api";
import { Detected } from "./build";
import { Alert, Badge, Empty, errorText, Field, useToast } from "../ui";

export default function ImportPage() {
  const [account, setAccount] = useState<api.GithubAccount | null>(null);
  const [query, setQuery] = useState("");
  const [repos, setRepos] = useState<api.GithubRepo[] | null>(null);
  const [picked, setPicked] = useState<api.GithubRepo | null>(null);
  const [branches, setBranches] = useState<string[]>([]);
  const [branch, setBranch] = useState("");
  const [dockerfile, setDockerfile] = useState("Dockerfile");
  const [result, setResult] = useState<api.ImportResult | null>(null);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const navigate = useNavigate();
  const toast = useToast();

  useEffect(() => {
    api.githubAccount().then(setAccount, (e) => setError(errorText(e)));
  }, []);
  // A search or a branch list that answers after the query or the pick changed is dropped: the
  // answers of two requests can come back in either order.
  useEffect(() => {
    if (!account?.connected) return;
    let stale = false;
    const timer = setTimeout(
      () =>
        api.githubRepos(query).then(
          (list) => stale || setRepos(list),
          (e) => stale || setError(errorText(e)),
        ),
      250,
    );
    return () => {
      stale = true;
      clearTimeout(timer);
    };
  }, [account?.connected, query]);
  useEffect(() => {
    if (!picked) return;
    let stale = false;
    setBranch(picked.default_branch ?? "main");
    setBranches([]);
    api.githubBranches(picked.full_name).then(
      (list) => stale || setBranches(list.map((b) => b.name)),
      (e) => stale || setError(errorText(e)),
    );
    return () => {
      stale = true;
    };
  }, [picked?.full_name]);

  if (account && !account.enabled)
    return <Empty title="GitHub is not configured">An admin sets github.client_id and github.client_secret.</Empty>;
  if (account && !account.connected)
    return (
      <Empty title="Connect GitHub first">
        <a className="btn" href="/api/v1/auth/github/start">
          Connect GitHub
        </a>
      </Empty>
    );
  return (
    <section className="stack">
      <div className="page-head">
        <h1>Import from GitHub</h1>
        <Link to="/">Back to projects</Link>
      </div>
      <Alert>{error}</Alert>
      {result && (
        <div className="card stack" role="status" data-testid="import-result">
          <h2>{result.project.name} is ready to deploy</h2>
          {result.dockerfile_found ? (
            <Alert tone="ok">The Dockerfile is there. It is built as it is.</Alert>
          ) : (
            <Detected project={result.project.id} />
          )}
          {result.webhook === "created" ? (
            <Alert tone="ok">Every push to {result.project.branch} deploys (webhook created).</Alert>
          ) : (
            <Alert tone="warn">The webhook could not be created ({result.webhook_error}); set it up by hand from the project's Webhook tab.</Alert>
          )}
          <div className="form-actions">
            <button className="btn" onClick={() => navigate(`/projects/${result.project.id}`)}>
              Open the project
            </button>
          </div>
        </div>
      )}
      <div className="card stack">
        <Field label="Search repositories" type="search" value={query} onChange={(e) => setQuery(e.target.value)} placeholder="owner/name" />
        {repos && repos.length === 0 && <p className="muted">No repository matches.</p>}
        {repos && repos.length > 0 && (
          <table className="table" aria-label="Repositories">
            <tbody>
              {repos.slice(0, 50).map((r) => (
                <tr key={r.full_name}>
                  <td data-label="Repository" className="wrap-anywhere">
                    {r.full_name} {r.private && <Badge status="pending" label="private" />}
                  </td>
                  <td className="actions">
                    <button className="btn secondary small" aria-pressed={picked?.full_name === r.full_name} onClick={() => setPicked(r)}>
                      {picked?.full_name === r.full_name ? "Selected" : "Select"}
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
      {picked && (
        <form
          className="card stack"
          aria-label="Import settings"
          onSubmit={async (e) => {
            e.preventDefault();
            setBusy(true);
            setError("");
            try {
              const done = await api.importRepo({ repo: picked.full_name, branch, dockerfile });
              setResult(done);
              toast(`${done.project.name} imported`, "success");
            } catch (err) {
              setError(errorText(err));
            } finally {
              setBusy(false);
            }
          }}
        >
          <h2 className="wrap-anywhere">{picked.full_name}</h2>
          <div className="form-grid">
            <div className="field">
              <label htmlFor="import-branch">Branch</label>
              <select id="import-branch" value={branch} onChange={(e) => setBranch(e.target.value)}>
                {(branches.length ? branches : [branch]).map((b) => (
                  <option key={b} value={b}>
                    {b}
                  </option>
                ))}
              </select>
            </div>
            <Field label="Dockerfile path" value={dockerfile} onChange={(e) => setDockerfile(e.target.value)} />
          </div>
          <div className="form-actions">
            <button className="btn" disabled={busy}>
              Import
            </button>
          </div>
        </form>
      )}
    </section>
  );
}
