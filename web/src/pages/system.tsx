// Admin: the system page, fed live by the `system` topic (a snapshot every few seconds), and
// the host overview (memory, disk, containers, shard's own memory), read every 10 s.
import { useEffect, useState } from "react";
import * as api from "../api";
import { follow, LiveMessage } from "../live";
import { Ago, Badge, bytes } from "../ui";
import { Destinations } from "./backups";
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
      <DetachedVolumes />
      <Destinations />
    </section>
  );
}
