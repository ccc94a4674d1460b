// The Previews tab: whether pull requests get previews (for how long, how many at once), and
// each pull request's preview — its state, URL, age and build log, with Approve (a fork's
// head commit), Redeploy and Delete. Previews follow the project's topic like the page does.
import { FormEvent, useEffect, useState } from "react";
import { Link } from "react-router";
import * as api from "../api";
import { follow } from "../live";
import { Ago, Alert, Badge, ConfirmDialog, Empty, errorText, Field, useToast } from "../ui";

const STATE_TEXT: Record<api.Preview["state"], string> = {
  awaiting_approval: "awaiting approval",
  deploying: "deploying",
  live: "live",
  failed: "failed",
  closed: "closed",
};

export function PreviewsPanel({ project, onSaved }: { project: api.Project; onSaved: (p: api.Project) => void }) {
  const [rows, setRows] = useState<api.Preview[] | null>(null);
  const [settings, setSettings] = useState({
    enabled: project.previews.enabled,
    ttl_days: String(project.previews.ttl_days),
    max: String(project.previews.max),
    user: "",
    password: "",
    unprotect: false,
  });
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState("");
  const [deleting, setDeleting] = useState<api.Preview | null>(null);
  const toast = useToast();

  const reload = () => api.listPreviews(project.id).then(setRows, (e) => setError(errorText(e)));
  useEffect(() => {
    reload();
    const timer = setInterval(reload, 5000);
    const stop = follow(`project:${project.id}`, () => reload());
    return () => {
      clearInterval(timer);
      stop();
    };
  }, [project.id]);

  async function save(e: FormEvent) {
    e.preventDefault();
    setFieldErrors({});
    try {
      const previews: api.PreviewSettingsInput = {
        enabled: settings.enabled,
        ttl_days: Number(settings.ttl_days),
        max: Number(settings.max),
      };
      if (settings.unprotect) previews.basic_auth = null;
      else if (settings.user || settings.password) previews.basic_auth = `${settings.user}:${settings.password}`;
      const saved = await api.updateProject(project.id, { previews });
      setSettings({ ...settings, user: "", password: "", unprotect: false });
      onSaved(saved);
      toast(settings.enabled ? "Previews on" : "Previews off", "success");
      await reload();
    } catch (err) {
      if (err instanceof api.ApiError && err.field) setFieldErrors({ [err.field.replace(/^previews\./, "")]: err.message });
      else setError(errorText(err));
    }
  }

  const act = (what: string, action: () => Promise<unknown>) =>
    action().then(
      () => {
        toast(what, "success");
        return reload();
      },
      (e) => setError(errorText(e)),
    );

  if (project.preview_of)
    return (
      <Alert tone="info">
        This is the preview of pull request #{project.pr_number}. <Link to={`/projects/${project.preview_of}/previews`}>See the project's previews</Link>.
      </Alert>
    );
  const open = rows?.filter((p) => p.state !== "closed") ?? [];
  const closed = rows?.filter((p) => p.state === "closed") ?? [];
  return (
    <section className="stack" aria-label="Previews">
      <form className="card stack" onSubmit={save} noValidate aria-label="Preview settings">
        <h2>Pull-request previews</h2>
        <p className="small muted">
          Each open pull request is deployed at <code>pr-&lt;number&gt;-{project.slug}</code> under the apps domain and removed when it closes.
          A fork's commits build only after a maintainer approves them (a <code>/shard preview</code> comment, or Approve below). Previews get
          the plain variables and only the secrets marked for previews, with smaller limits than production. GitHub must send{" "}
          <em>pull request</em> and <em>issue comment</em> events to the project's webhook.
        </p>
        <label className="row">
          <input type="checkbox" checked={settings.enabled} onChange={(e) => setSettings({ ...settings, enabled: e.target.checked })} /> Build previews of
          pull requests
        </label>
        <div className="form-grid">
          <Field
            label="Remove after (days without a change)"
            name="ttl_days"
            inputMode="numeric"
            value={settings.ttl_days}
            error={fieldErrors.ttl_days}
            onChange={(e) => setSettings({ ...settings, ttl_days: e.target.value })}
          />
          <Field
            label="Previews at most"
            name="max"
            inputMode="numeric"
            value={settings.max}
            error={fieldErrors.max}
            onChange={(e) => setSettings({ ...settings, max: e.target.value })}
          />
          <Field
            label="Password-protect previews: user"
            name="auth-user"
            autoComplete="off"
            value={settings.user}
            placeholder={project.previews.basic_auth ? "(protected; type to replace)" : "reviewer"}
            error={fieldErrors.basic_auth}
            onChange={(e) => setSettings({ ...settings, user: e.target.value })}
          />
          <Field
            label="Password"
            name="auth-password"
            type="password"
            autoComplete="new-password"
            value={settings.password}
            onChange={(e) => setSettings({ ...settings, password: e.target.value })}
          />
        </div>
        {project.previews.basic_auth && (
          <label className="row small">
            <input type="checkbox" checked={settings.unprotect} onChange={(e) => setSettings({ ...settings, unprotect: e.target.checked })} /> Remove
            the password
          </label>
        )}
        <div className="form-actions">
          <button type="submit" className="btn">
            Save preview settings
          </button>
        </div>
      </form>
      <Alert>{error}</Alert>
      {rows && rows.length === 0 && <Empty title="No previews yet">A pull request opened on the repository shows up here.</Empty>}
      {open.length > 0 && (
        <table className="table" aria-label="Open previews">
          <thead>
            <tr>
              <th>Pull request</th>
              <th>State</th>
              <th>URL</th>
              <th>Updated</th>
              <th>
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {open.map((p) => (
              <tr key={p.id} data-testid={`preview-${p.pr_number}`}>
                <td data-label="Pull request" className="wrap-anywhere">
                  <strong>#{p.pr_number}</strong> {p.title}
                  <div className="small muted">
                    {p.author ?? "unknown"} · <code>{p.head_sha.slice(0, 7)}</code> {p.fork ? `· fork ${p.head_repo}` : ""}
                  </div>
                </td>
                <td data-label="State">
                  <Badge status={p.state} label={STATE_TEXT[p.state]} />
                  {p.note && <div className="small muted">{p.note}</div>}
                </td>
                <td data-label="URL" className="wrap-anywhere">
                  {p.url && p.state === "live" ? (
                    <a href={p.url} target="_blank" rel="noreferrer">
                      {p.url}
                    </a>
                  ) : (
                    <span className="muted">—</span>
                  )}
                </td>
                <td data-label="Updated">
                  <Ago at={p.updated_at} />
                </td>
                <td className="actions">
                  {p.preview_project_id && p.deployment_id && (
                    <Link className="btn secondary small" to={`/projects/${p.preview_project_id}/deployments/${p.deployment_id}`}>
                      Log
                    </Link>
                  )}
                  {p.state === "awaiting_approval" && (
                    <button className="btn small" onClick={() => act(`#${p.pr_number} approved`, () => api.approvePreview(project.id, p.pr_number))}>
                      Approve
                    </button>
                  )}
                  {p.state !== "awaiting_approval" && (
                    <button
                      className="btn secondary small"
                      onClick={() => act(`#${p.pr_number} redeploying`, () => api.redeployPreview(project.id, p.pr_number))}
                    >
                      Redeploy
                    </button>
                  )}
                  <button className="btn danger small" onClick={() => setDeleting(p)}>
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {closed.length > 0 && (
        <details className="card">
          <summary>Closed previews ({closed.length})</summary>
          <ul className="stack small">
            {closed.map((p) => (
              <li key={p.id}>
                #{p.pr_number} {p.title} — {p.note ?? "closed"} <Ago at={p.closed_at ?? p.updated_at} />
              </li>
            ))}
          </ul>
        </details>
      )}
      <ConfirmDialog
        open={deleting !== null}
        onClose={() => setDeleting(null)}
        title={`Delete the preview of #${deleting?.pr_number ?? ""}?`}
        word={`${deleting?.pr_number ?? ""}`}
        action="Delete preview"
        onConfirm={async () => {
          if (!deleting) return;
          await api.deletePreview(project.id, deleting.pr_number);
          toast(`Preview of #${deleting.pr_number} deleted`, "success");
          await reload();
        }}
      >
        <p>Its container, image and address go now. A new push to the pull request deploys it again.</p>
      </ConfirmDialog>
    </section>
  );
}
