// The Databases page: one-click databases (Postgres, MySQL, MariaDB, Redis), each in a
// container of its own with a volume of its own and no published port. Create one, watch it
// come up (read every 3 s), start/stop/restart it, read its last output, see how apps connect
// (the password only on request, with Copy), attach it to projects of its team (their next
// deployment gets DATABASE_URL or REDIS_URL), chart its use like an app's metrics, and delete it
// with a typed confirmation.
import { FormEvent, useCallback, useEffect, useState } from "react";
import * as api from "../api";
import { BackupsPanel } from "./backups";
import { SeriesPanel } from "./metrics";
import { Ago, Alert, Badge, bytes, ConfirmDialog, CopyButton, Empty, errorText, Field, formErrors, FormErrors, noErrors, useToast } from "../ui";

const REFRESH_MS = 3000;

const KINDS: [api.Database["kind"], string][] = [
  ["postgres", "PostgreSQL"],
  ["mysql", "MySQL"],
  ["mariadb", "MariaDB"],
  ["redis", "Redis"],
];

function CreateForm({ teams, onCreated }: { teams: api.Team[]; onCreated: () => void }) {
  const [kind, setKind] = useState("postgres");
  const [name, setName] = useState("");
  const [version, setVersion] = useState("");
  const [team, setTeam] = useState("");
  const [errors, setErrors] = useState<FormErrors>(noErrors);
  const [busy, setBusy] = useState(false);
  async function create(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setErrors(noErrors);
    try {
      await api.createDatabase({ kind, name, version: version || undefined, team_id: team || undefined });
      setName("");
      setVersion("");
      onCreated();
    } catch (err) {
      setErrors(formErrors(err, ["kind", "name", "version"]));
    } finally {
      setBusy(false);
    }
  }
  return (
    <form className="form-grid" onSubmit={create} noValidate aria-label="Create a database">
      <div className="field">
        <label htmlFor="database-kind">Kind</label>
        <select id="database-kind" value={kind} onChange={(e) => setKind(e.target.value)}>
          {KINDS.map(([value, label]) => (
            <option key={value} value={value}>
              {label}
            </option>
          ))}
        </select>
      </div>
      <Field label="Name" name="name" value={name} placeholder="main-db" error={errors.fields.name} onChange={(e) => setName(e.target.value)} />
      <Field
        label="Version (optional)"
        name="version"
        value={version}
        placeholder="the server's default"
        error={errors.fields.version}
        onChange={(e) => setVersion(e.target.value)}
      />
      {teams.length > 1 && (
        <div className="field">
          <label htmlFor="database-team">Team</label>
          <select id="database-team" value={team} onChange={(e) => setTeam(e.target.value)}>
            <option value="">Personal</option>
            {teams
              .filter((t) => !t.personal)
              .map((t) => (
                <option key={t.id} value={t.id}>
                  {t.name}
                </option>
              ))}
          </select>
        </div>
      )}
      <div className="form-actions">
        <button type="submit" className="btn" disabled={busy}>
          Create database
        </button>
      </div>
      <Alert>{errors.message}</Alert>
    </form>
  );
}

/** CPU and memory now, and disk and network since it started (read every 5 s); and, on
 * request, the charts of its samples like an app's Metrics tab. */
function Usage({ id }: { id: string }) {
  const [usage, setUsage] = useState<api.DatabaseMetrics | null>(null);
  const [charts, setCharts] = useState(false);
  useEffect(() => {
    const to = () => Math.floor(Date.now() / 1000);
    // Only the figures of now are shown here: a one-minute range keeps the answer small.
    const read = () => api.databaseMetrics(id, to() - 60, to()).then(setUsage, () => setUsage(null));
    read();
    const timer = setInterval(read, 5000);
    return () => clearInterval(timer);
  }, [id]);
  if (!usage?.running) return null;
  const b = (n: number | null) => (n === null ? "–" : bytes(n));
  return (
    <>
      <dt>Use</dt>
      <dd data-testid="database-usage">
        CPU {usage.cpu_percent === null ? "–" : `${usage.cpu_percent.toFixed(1)} %`} · memory {b(usage.memory_bytes)} of{" "}
        {b(usage.memory_limit_bytes)} · disk {b(usage.block_read_bytes)} read, {b(usage.block_write_bytes)} written · network{" "}
        {b(usage.net_rx_bytes)} in, {b(usage.net_tx_bytes)} out{" "}
        <button className="btn secondary small" aria-expanded={charts} onClick={() => setCharts(!charts)}>
          {charts ? "Hide metrics" : "Metrics"}
        </button>
      </dd>
      {charts && (
        <dd data-testid="database-metrics">
          <SeriesPanel key={id} load={(from, to) => api.databaseMetrics(id, from, to)} />
        </dd>
      )}
    </>
  );
}

function DatabaseCard({ db, projects, onChanged }: { db: api.Database; projects: api.Project[]; onChanged: () => void }) {
  const toast = useToast();
  const [error, setError] = useState("");
  const [secret, setSecret] = useState<string | null>(null);
  const [logs, setLogs] = useState<string[] | null>(null);
  const [attachTo, setAttachTo] = useState("");
  const [deleting, setDeleting] = useState(false);
  const act = async (what: string, action: () => Promise<unknown>) => {
    setError("");
    try {
      await action();
      if (what) toast(what, "success");
    } catch (e) {
      setError(errorText(e));
    }
    onChanged();
  };
  const teamProjects = projects.filter((p) => p.team_id === db.team_id);
  const attached = teamProjects.filter((p) => db.attached_project_ids.includes(p.id));
  const attachable = teamProjects.filter((p) => !db.attached_project_ids.includes(p.id));
  return (
    <section className="card stack" aria-label={`Database ${db.name}`}>
      <div className="row wrap">
        <h2>{db.name}</h2>
        <Badge status={db.status} />
        <span className="muted small">
          {db.kind} {db.version} · {db.memory_limit_mb} MiB · created <Ago at={db.created_at} />
        </span>
      </div>
      {db.status === "failed" && db.message && <pre className="command">{db.message}</pre>}
      <div className="row wrap">
        <button className="btn secondary small" disabled={db.status !== "stopped" && db.status !== "failed"} onClick={() => act("Starting", () => api.controlDatabase(db.id, "start"))}>
          Start
        </button>
        <button className="btn secondary small" disabled={db.status === "stopped"} onClick={() => act("Stopped", () => api.controlDatabase(db.id, "stop"))}>
          Stop
        </button>
        <button className="btn secondary small" onClick={() => act("Restarting", () => api.controlDatabase(db.id, "restart"))}>
          Restart
        </button>
        <button className="btn secondary small" onClick={() => api.databaseLogs(db.id).then(setLogs, (e) => setError(errorText(e)))}>
          Show logs
        </button>
        <button className="btn danger small" onClick={() => setDeleting(true)}>
          Delete
        </button>
      </div>
      <dl className="facts small">
        <dt>Host (for attached apps)</dt>
        <dd>
          <code>
            {db.connection.host}:{db.connection.port}
          </code>
        </dd>
        <dt>User / database</dt>
        <dd>
          <code>
            {db.connection.user} / {db.connection.database}
          </code>
        </dd>
        <dt>URL</dt>
        <dd className="row wrap">
          <code data-testid="database-url">{secret ?? db.connection.url}</code>
          {secret ? (
            <CopyButton text={secret} label="Copy URL" />
          ) : (
            <button className="btn secondary small" onClick={() => api.databaseConnection(db.id).then((c) => setSecret(c.url), (e) => setError(errorText(e)))}>
              Reveal
            </button>
          )}
        </dd>
        <dt>Attached apps get</dt>
        <dd>{db.connection.env.join(", ")} (secret)</dd>
        <dt>Published port</dt>
        <dd>{db.public_port ? `${db.public_port} on every address of the host` : "none: only attached apps reach it"}</dd>
        {db.status === "running" && <Usage id={db.id} />}
      </dl>
      <div className="stack">
        <h3>Attached projects</h3>
        {attached.length === 0 && <p className="muted small">None yet. An attached project reaches it by name; its next deployment gets the variables.</p>}
        <ul className="stack">
          {attached.map((p) => (
            <li key={p.id} className="row wrap">
              {p.name}
              <button className="btn secondary small" onClick={() => act(`Detached from ${p.name}`, () => api.detachDatabase(db.id, p.id))}>
                Detach
              </button>
            </li>
          ))}
        </ul>
        {attachable.length > 0 && (
          <div className="row wrap">
            <div className="field">
              <label htmlFor={`attach-${db.id}`}>Attach to</label>
              <select id={`attach-${db.id}`} value={attachTo} onChange={(e) => setAttachTo(e.target.value)}>
                <option value="">Choose a project</option>
                {attachable.map((p) => (
                  <option key={p.id} value={p.id}>
                    {p.name}
                  </option>
                ))}
              </select>
            </div>
            <button
              className="btn small"
              disabled={!attachTo}
              onClick={() => act("Attached: redeploy the project to give it the variables", () => api.attachDatabase(db.id, attachTo)).then(() => setAttachTo(""))}
            >
              Attach
            </button>
          </div>
        )}
      </div>
      <BackupsPanel source={{ kind: "database", base: api.databaseBackups(db.id), name: db.name }} onRestored={onChanged} />
      {logs && (
        <pre className="command" aria-label={`Output of ${db.name}`}>
          {logs.length ? logs.join("\n") : "(no output yet)"}
        </pre>
      )}
      <Alert>{error}</Alert>
      {deleting && (
        <ConfirmDialog
          open
          onClose={() => setDeleting(false)}
          title={`Delete database ${db.name}?`}
          word={db.name}
          action="Delete database"
          onConfirm={() => api.deleteDatabase(db.id).then(onChanged)}
        >
          <p>Its container and all its data are removed for good. Attached apps lose it at once.</p>
        </ConfirmDialog>
      )}
    </section>
  );
}

export default function DatabasesPage() {
  const [databases, setDatabases] = useState<api.Database[] | null>(null);
  const [projects, setProjects] = useState<api.Project[]>([]);
  const [teams, setTeams] = useState<api.Team[]>([]);
  const [error, setError] = useState("");
  const reload = useCallback(() => {
    api.listDatabases().then(setDatabases, (e) => setError(errorText(e)));
  }, []);
  useEffect(() => {
    reload();
    api.listProjects().then(setProjects, () => {});
    api.listTeams().then(setTeams, () => {});
    const timer = setInterval(reload, REFRESH_MS);
    return () => clearInterval(timer);
  }, [reload]);
  return (
    <div className="stack">
      <h1>Databases</h1>
      <section className="card stack" aria-label="New database">
        <p className="small muted">
          A database runs in a container of its own, with its data in a volume of its own and generated credentials. Nothing outside
          reaches it: attach it to a project of its team and that project's deployments get its connection variables.
        </p>
        <CreateForm teams={teams} onCreated={reload} />
      </section>
      <Alert>{error}</Alert>
      {databases && databases.length === 0 && <Empty title="No databases">Create one above.</Empty>}
      {databases?.map((db) => (
        <DatabaseCard key={db.id} db={db} projects={projects} onChanged={reload} />
      ))}
    </div>
  );
}
