// Notification channels (on the Account page): where deploy outcomes, unhealthy apps, crash
// loops and certificate failures are sent — a generic webhook (signed), Slack, Discord or
// email — for all projects or one, with a "Send test" button and each channel's recent
// deliveries and their attempts. Destinations are shown masked; secrets never come back.
import { FormEvent, useEffect, useState } from "react";
import * as api from "../api";
import { Ago, Alert, Badge, Empty, Field, formErrors, FormErrors, noErrors, useToast } from "../ui";

const EVENTS: [string, string][] = [
  ["deploy.succeeded", "Deploy succeeded"],
  ["deploy.failed", "Deploy failed"],
  ["app.unhealthy", "App unhealthy"],
  ["app.restarted", "App restarted"],
  ["app.crash_loop", "Crash loop"],
  ["certificate.failed", "Certificate failed"],
  ["backup.failed", "Backup failed"],
];

const TARGET_LABEL: Record<string, string> = {
  webhook: "Payload URL",
  slack: "Slack incoming webhook URL",
  discord: "Discord webhook URL",
  email: "Email address",
};

function Deliveries({ channel }: { channel: string }) {
  const [list, setList] = useState<api.ChannelDelivery[] | null>(null);
  useEffect(() => {
    const load = () => api.channelDeliveries(channel).then(setList, () => setList([]));
    load();
    const timer = setInterval(load, 3000);
    return () => clearInterval(timer);
  }, [channel]);
  if (!list) return null;
  if (list.length === 0) return <p className="small muted">Nothing sent yet.</p>;
  return (
    <table className="table" aria-label="Deliveries">
      <thead>
        <tr>
          <th>Sent</th>
          <th>Event</th>
          <th>Status</th>
          <th>Attempts</th>
          <th>Last error</th>
        </tr>
      </thead>
      <tbody>
        {list.slice(0, 10).map((d) => (
          <tr key={d.id} data-testid={`delivery-${d.event}`}>
            <td data-label="Sent">
              <Ago at={d.created_at} />
            </td>
            <td data-label="Event">
              <code>{d.event}</code>
            </td>
            <td data-label="Status">
              <Badge status={d.status === "delivered" ? "success" : d.status} label={d.status} />
            </td>
            <td data-label="Attempts">{d.attempts}</td>
            <td data-label="Last error" className="wrap-anywhere">
              {d.last_error ?? ""}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function NotificationChannels() {
  const [channels, setChannels] = useState<api.Channel[] | null>(null);
  const [projects, setProjects] = useState<api.Project[]>([]);
  const [kind, setKind] = useState("webhook");
  const [target, setTarget] = useState("");
  const [secret, setSecret] = useState("");
  const [project, setProject] = useState("");
  const [events, setEvents] = useState<string[]>([]);
  const [open, setOpen] = useState<string | null>(null);
  const [errors, setErrors] = useState<FormErrors>(noErrors);
  const toast = useToast();
  const reload = () => api.listChannels().then(setChannels, (e) => setErrors(formErrors(e)));
  useEffect(() => {
    reload();
    api.listProjects().then(setProjects, () => setProjects([]));
  }, []);
  const projectName = (id: string | null) => (id ? (projects.find((p) => p.id === id)?.name ?? "one project") : "all projects");

  const add = async (e: FormEvent) => {
    e.preventDefault();
    setErrors(noErrors);
    try {
      await api.createChannel({
        kind,
        target,
        secret: kind === "webhook" && secret ? secret : undefined,
        project_id: project || undefined,
        events: events.length ? events : undefined,
      });
      setTarget("");
      setSecret("");
      setEvents([]);
      toast("Channel added", "success");
      await reload();
    } catch (err) {
      setErrors(formErrors(err, ["target", "secret"]));
    }
  };

  return (
    <section className="card stack" aria-label="Notification channels">
      <h2>Notification channels</h2>
      <p className="small muted">
        Besides the bell, shard can tell a webhook, Slack, Discord or an email address when a deploy ends, an app turns unhealthy
        or keeps crashing, or a certificate cannot be issued.
      </p>
      {channels && channels.length === 0 && <Empty title="No channels yet">Add one below.</Empty>}
      {channels?.map((c) => (
        <div key={c.id} className="stack channel" data-testid={`channel-${c.kind}`}>
          <div className="spread">
            <span className="wrap-anywhere">
              <strong>{c.kind}</strong> <code>{c.target}</code>{" "}
              <span className="small muted">
                · {projectName(c.project_id)} · {c.events.length ? c.events.join(", ") : "every event"}
                {c.has_secret ? " · signed" : ""}
              </span>
            </span>
            <span className="row">
              <button
                className="btn secondary small"
                onClick={() =>
                  api.testChannel(c.id).then(
                    () => {
                      toast("Test queued", "success");
                      setOpen(c.id);
                    },
                    (e) => setErrors(formErrors(e)),
                  )
                }
              >
                Send test
              </button>
              <button className="btn secondary small" aria-expanded={open === c.id} onClick={() => setOpen(open === c.id ? null : c.id)}>
                Deliveries
              </button>
              <button className="btn danger small" onClick={() => api.deleteChannel(c.id).then(reload, (e) => setErrors(formErrors(e)))}>
                Remove
              </button>
            </span>
          </div>
          {open === c.id && <Deliveries channel={c.id} />}
        </div>
      ))}
      <form className="stack" aria-label="Add a channel" onSubmit={add}>
        <div className="form-grid">
          <div className="field">
            <label htmlFor="channel-kind">Kind</label>
            <select id="channel-kind" value={kind} onChange={(e) => setKind(e.target.value)}>
              <option value="webhook">Webhook (JSON, signed)</option>
              <option value="slack">Slack</option>
              <option value="discord">Discord</option>
              <option value="email">Email</option>
            </select>
          </div>
          <Field
            label={TARGET_LABEL[kind]}
            value={target}
            onChange={(e) => setTarget(e.target.value)}
            error={errors.fields.target}
            type={kind === "email" ? "email" : "url"}
            required
          />
          {kind === "webhook" && (
            <Field
              label="Signing secret (optional, 16+ characters)"
              value={secret}
              onChange={(e) => setSecret(e.target.value)}
              error={errors.fields.secret}
              hint="Deliveries then carry X-Shard-Signature-256: sha256=HMAC of the body."
              autoComplete="off"
            />
          )}
          <div className="field">
            <label htmlFor="channel-project">Projects</label>
            <select id="channel-project" value={project} onChange={(e) => setProject(e.target.value)}>
              <option value="">All my projects</option>
              {projects.map((p) => (
                <option key={p.id} value={p.id}>
                  {p.name}
                </option>
              ))}
            </select>
          </div>
        </div>
        <fieldset className="row wrap">
          <legend className="small">Events (none ticked: every event)</legend>
          {EVENTS.map(([value, label]) => (
            <label key={value} className="row small">
              <input
                type="checkbox"
                checked={events.includes(value)}
                onChange={(e) => setEvents(e.target.checked ? [...events, value] : events.filter((x) => x !== value))}
              />
              {label}
            </label>
          ))}
        </fieldset>
        <Alert>{errors.message}</Alert>
        <div className="form-actions">
          <button className="btn">Add channel</button>
        </div>
      </form>
    </section>
  );
}
