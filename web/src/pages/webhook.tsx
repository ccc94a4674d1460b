// The Webhook tab: what to paste into the GitHub repository's webhook settings (payload URL,
// content type, secret, the push event) and the deliveries shard received, with what it did.
import { useEffect, useState } from "react";
import { Link } from "react-router";
import * as api from "../api";
import { Ago, Alert, Badge, CopyButton, Empty, errorText } from "../ui";

export function WebhookPanel({ project }: { project: api.Project }) {
  const [hook, setHook] = useState<api.Webhook | null>(null);
  const [deliveries, setDeliveries] = useState<api.Delivery[] | null>(null);
  const [shown, setShown] = useState(false);
  const [error, setError] = useState("");
  const reload = () =>
    api.listDeliveries(project.id).then(setDeliveries, (e) => setError(errorText(e)));
  useEffect(() => {
    api.getWebhook(project.id).then(setHook, (e) => setError(errorText(e)));
    reload();
    const timer = setInterval(reload, 10000);
    return () => clearInterval(timer);
  }, [project.id]);

  return (
    <div className="stack">
      <Alert>{error}</Alert>
      <section className="card stack" aria-label="Webhook setup">
        <h2>Deploy on every push</h2>
        <p className="small muted">
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
            </dd>
            <dt>Events</dt>
            <dd>Just the push event</dd>
          </dl>
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
