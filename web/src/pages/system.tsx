// Admin: the system page, fed live by the `system` topic (a snapshot every few seconds), the
// host overview (memory, disk, containers, shard's own memory), read every 10 s, and the
// doctor's checks (daily, or now on request), each problem with what to do, backup destinations
// and the installation's own backups.
import { useEffect, useState } from "react";
import * as api from "../api";
import { follow, LiveMessage } from "../live";
import { Ago, Alert, Badge, bytes, errorText } from "../ui";
import { BackupsPanel, Destinations } from "./backups";
import { DetachedVolumes } from "./detached";

function HostOverview() {
  const [host, setHost] = useState<api.Overview | null>(null);
  useEffect(() => {
    const load = () => api.systemOverview().then(setHost, () => setHost(null));
    load();
    const timer = setInterval(load, 10000);
    return () => clearInterval(timer);
  }, []);
  if (!host) return null;
  return (
    <section className="card stack" aria-label="Host">
      <h2>Host</h2>
      <dl className="kv" data-testid="host">
        <dt>Memory available</dt>
        <dd>
          {bytes(host.memory_available_bytes)} of {bytes(host.memory_total_bytes)}
        </dd>
        <dt>Disk free (data dir)</dt>
        <dd>
          {bytes(host.disk_free_bytes)} of {bytes(host.disk_total_bytes)}
        </dd>
        <dt>App containers</dt>
        <dd>
          {String(host.containers_running ?? "unknown")} running of {String(host.containers ?? "unknown")}
        </dd>
        <dt>shard's memory</dt>
        <dd>{bytes(host.shard_rss_bytes)}</dd>
        <dt>Metrics samples stored</dt>
        <dd>{String(host.metrics_samples ?? "unknown")}</dd>
      </dl>
    </section>
  );
}

const CHECK_TONES: Record<api.DoctorCheck["status"], string> = { ok: "running", warn: "pending", fail: "failed", skip: "skip" };

function HealthChecks() {
  const [report, setReport] = useState<api.DoctorReport | null>(null);
  const [running, setRunning] = useState(false);
  const [error, setError] = useState("");
  const run = (now: boolean) => {
    setRunning(true);
    api
      .doctorReport(now)
      .then(setReport, (e) => setError(errorText(e)))
      .finally(() => setRunning(false));
  };
  useEffect(() => run(false), []);
  return (
    <section className="card stack" aria-label="Health checks">
      <div className="spread">
        <h2>Health checks</h2>
        <button className="btn secondary small" onClick={() => run(true)} disabled={running}>
          {running ? "Checking…" : "Run checks now"}
        </button>
      </div>
      <Alert>{error}</Alert>
      {report && (
        <>
          <p className="small muted">
            {report.ok ? "No check failed" : "Some checks failed"} · checked <Ago at={report.checked_at} /> · the same checks as{" "}
            <code>shard doctor</code>
          </p>
          <ul className="stack" data-testid="health-checks">
            {report.checks.map((c) => (
              <li key={c.name} data-check={c.name}>
                <Badge status={CHECK_TONES[c.status]} label={c.status} /> <strong>{c.name}</strong> {c.message}
                {c.fix && <div className="small muted">What to do: {c.fix}</div>}
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

export default function SystemPage() {
  const [snapshot, setSnapshot] = useState<LiveMessage | null>(null);
  const [state, setState] = useState("connecting");
  useEffect(() => follow("system", (m) => m.type === "health" && setSnapshot(m), { onState: setState }), []);
  return (
    <section className="stack">
      <div className="page-head">
        <h1>System</h1>
        <span className="small muted">{state === "open" ? "live" : state}</span>
      </div>
      {!snapshot ? (
        <p className="muted" role="status">
          Waiting for the first snapshot…
        </p>
      ) : (
        <div className="card">
          <dl className="kv" data-testid="system">
            <dt>Docker</dt>
            <dd>
              <Badge status={snapshot.docker_reachable ? "running" : "failed"} label={snapshot.docker_reachable ? "reachable" : "unreachable"} />{" "}
              {typeof snapshot.docker_version === "string" && <span className="small muted">{snapshot.docker_version}</span>}
            </dd>
            <dt>Jobs queued or running</dt>
            <dd>{String(snapshot.jobs_pending ?? "unknown")}</dd>
            <dt>Free disk (data dir)</dt>
            <dd>{bytes(snapshot.disk_free_bytes)}</dd>
            <dt>Runtime log followers</dt>
            <dd>{String(snapshot.runtime_log_followers ?? 0)}</dd>
            <dt>Updated</dt>
            <dd>
              <Ago at={snapshot.ts} />
            </dd>
          </dl>
        </div>
      )}
      <HostOverview />
      <HealthChecks />
      <DetachedVolumes />
      <Destinations />
      <section className="card stack" aria-label="Instance backups">
        <h2>Instance backups</h2>
        <BackupsPanel source={{ kind: "instance", base: "/system", name: "shard" }} onRestored={() => {}} />
      </section>
    </section>
  );
}
