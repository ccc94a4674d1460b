// The Webhook tab ("GitHub" for an imported project): the repository, whether shard created
// the push webhook there, disconnecting; what to paste into the repository's webhook settings
// (payload URL, content type, secret, the push event) when it did not; and the deliveries shard
// received, with what it did.
import { useEffect, useState } from "react";
import { Link } from "react-router";
import * as api from "../api";
import { Ago, Alert, Badge, ConfirmDialog, CopyButton, Empty, errorText, useToast } from "../ui";

function GithubCard({ project, onChanged }: { project: api.Project; onChanged: () => void }) {
  const [unlinking, setUnlinking] = useState(false);
  const toast = useToast();
  const github = project.github!;
  return (
    <section className="card stack" aria-label="GitHub repository">
      <div className="spread">
        <h2>
          GitHub: <code>{github.repo}</code>
        </h2>
        <button className="btn secondary small" onClick={() => setUnlinking(true)}>
          Disconnect from GitHub
        </button>
      </div>
      <dl className="kv">
        <dt>Push webhook</dt>
        <dd data-testid="github-webhook">
          {github.webhook === "created" ? (
            <Badge status="success" label="created on GitHub" />
          ) : (
            <Badge status="pending" label="manual setup needed" />
          )}
        </dd>
        <dt>Account</dt>
        <dd>
          {github.connected ? (
            <Badge status="success" label="connected" />
          ) : (
            <span className="row">
              <Badge status="failed" label="disconnected" />
              <a href="/api/v1/auth/github/start">Connect GitHub again</a>
            </span>
          )}
        </dd>
        <dt>Commit statuses</dt>
        <dd className="small muted">Each deploy reports pending, then success or failure, on the pushed commit.</dd>
      </dl>
      <ConfirmDialog
        open={unlinking}
        onClose={() => setUnlinking(false)}
        title={`Disconnect ${project.name} from GitHub?`}
        word={project.slug}
        action="Disconnect"
        onConfirm={async () => {
          const result = await api.unlinkGithub(project.id);
          toast(
            result.webhook_error ? `Disconnected; ${result.webhook_error}` : "Disconnected from GitHub; the webhook was removed",
            result.webhook_error ? "error" : "success",
          );
          onChanged();
        }}
      >
        <p>
          shard deletes the push webhook it created on <code>{github.repo}</code>, stops posting commit statuses and no longer
          fetches with the account's token. The project, its deployments and the running app stay.
        </p>
      </ConfirmDialog>
    </section>
  );
}

export function WebhookPanel({ project, onChanged }: { project: api.Project; onChanged: () => void }) {
  const [hook, setHook] = useState<api.Webhook | null>(null);
  const [deliveries, setDeliveries] = useState<api.Delivery[] | null>(null);
  const [shown, setShown] = useState(false);
  const [error, setError] = useState("");
  const [rotating, setRotating] = useState(false);
  const [rotated, setRotated] = useState(false);
  const reload = () =>
    api.listDeliveries(project.id).then(setDeliveries, (e) => setError(errorText(e)));
  // Someone who knew the secret left: a new one, so their signed deliveries stop working.
  const rotate = async () => {
    setError("");
    setRotating(true);
    try {
      setHook(await api.rotateWebhook(project.id));
      setRotated(true);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setRotating(false);
    }
  };
  useEffect(() => {
    api.getWebhook(project.id).then(setHook, (e) => setError(errorText(e)));
    reload();
    const timer = setInterval(reload, 10000);
    return () => clearInterval(timer);
  }, [project.id]);

  return (
    <div className="stack">
      <Alert>{error}</Alert>
      {project.github && <GithubCard project={project} onChanged={onChanged} />}
      <section className="card stack" aria-label="Webhook setup">
        <h2>{project.github?.webhook === "created" ? "Webhook settings" : "Deploy on every push"}</h2>
        <p className="small muted">
          {project.github?.webhook === "created" && "shard added this webhook to the repository itself. "}
          In the GitHub repository, open Settings → Webhooks → Add webhook and enter these values. Every push to{" "}
          <code>{project.branch}</code> then deploys; other branches and tags are recorded and ignored.
        </p>
        {hook && (
          <dl className="kv">
            <dt>Payload URL</dt>
            <dd className="row">
              <code className="wrap-anywhere" data-testid="webhook-url">
                {hook.url}
              </code>
              <CopyButton text={hook.url} label="Copy URL" />
            </dd>
            <dt>Content type</dt>
            <dd>
              <code>{hook.content_type}</code>
            </dd>
            <dt>Secret</dt>
            <dd className="row">
              <code className="wrap-anywhere" data-testid="webhook-secret">
                {shown ? hook.secret : "•".repeat(24)}
              </code>
              <button className="btn secondary small" onClick={() => setShown(!shown)} aria-pressed={shown}>
                {shown ? "Hide" : "Show"}
              </button>
              <CopyButton text={hook.secret} label="Copy secret" />
              <button className="btn secondary small" onClick={rotate} disabled={rotating}>
                Rotate secret
              </button>
            </dd>
            <dt>Events</dt>
            <dd>Just the push event</dd>
          </dl>
        )}
        {rotated && (
          <Alert tone="ok">
            New secret made. {project.github?.webhook === "created" ? "GitHub's webhook has it already." : "Paste it into the repository's webhook settings."}
          </Alert>
        )}
      </section>
      <section className="card stack" aria-label="Deliveries">
        <div className="spread">
          <h2>Recent deliveries</h2>
          <button className="btn secondary small" onClick={reload}>
            Refresh
          </button>
        </div>
        {deliveries && deliveries.length === 0 && (
          <Empty title="Nothing received yet">GitHub sends a ping when the webhook is added.</Empty>
        )}
        {deliveries && deliveries.length > 0 && (
          <table className="table" aria-label="Webhook deliveries">
            <thead>
              <tr>
                <th>Received</th>
                <th>Event</th>
                <th>Outcome</th>
                <th>Detail</th>
              </tr>
            </thead>
            <tbody>
              {deliveries.map((d) => (
                <tr key={d.delivery_id} data-testid={`delivery-${d.delivery_id}`}>
                  <td data-label="Received">
                    <Ago at={d.received_at} />
                  </td>
                  <td data-label="Event">
                    <code>{d.event}</code>
                  </td>
                  <td data-label="Outcome">
                    <Badge status={d.outcome === "deployed" || d.outcome === "pong" ? "success" : "pending"} label={d.outcome} />
                  </td>
                  <td data-label="Detail" className="wrap-anywhere">
                    {d.deployment_id ? (
                      <Link to={`/projects/${project.id}/deployments/${d.deployment_id}`}>{d.detail}</Link>
                    ) : (
                      d.detail
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </div>
  );
}
