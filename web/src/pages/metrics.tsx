// The Metrics tab: CPU, memory against its limit and network throughput of the project's
// running container, over 1 h, 24 h, 7 d or 90 d. The last hour also streams new samples from
// the `project:<id>:metrics` topic as the collector takes them. A database's metrics are the
// same charts (`SeriesPanel`) over its own samples, read again every 15 s for the last hour.
import { useEffect, useMemo, useState } from "react";
import * as api from "../api";
import { LineChart } from "../chart";
import { follow } from "../live";
import { Alert, Empty, errorText } from "../ui";

const RANGES: [string, number][] = [
  ["1 h", 3600],
  ["24 h", 86400],
  ["7 d", 7 * 86400],
  ["90 d", 90 * 86400],
];

export function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

/** Bytes per second between consecutive cumulative counters (a restart's drop is skipped). */
export function rates(points: api.MetricsPoint[], pick: (p: api.MetricsPoint) => number): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 1; i < points.length; i++) {
    const dt = (Date.parse(points[i].ts) - Date.parse(points[i - 1].ts)) / 1000;
    const dv = pick(points[i]) - pick(points[i - 1]);
    if (dt > 0 && dv >= 0) out.push([Date.parse(points[i].ts), dv / dt]);
  }
  return out;
}

export default function MetricsPanel({ project }: { project: api.Project }) {
  return <SeriesPanel load={(from, to) => api.projectMetrics(project.id, from, to)} topic={`project:${project.id}:metrics`} />;
}

/** Charts of one subject's samples: `load` reads a range; `topic` streams new ones (else the
 * last hour is read again every 15 s). */
export function SeriesPanel({ load, topic }: { load: (from: number, to: number) => Promise<{ points: api.MetricsPoint[] }>; topic?: string }) {
  const [range, setRange] = useState(3600);
  const [points, setPoints] = useState<api.MetricsPoint[] | null>(null);
  const [error, setError] = useState("");
  const [tick, setTick] = useState(0);

  useEffect(() => {
    if (topic || range !== 3600) return;
    const timer = setInterval(() => setTick((t) => t + 1), 15000);
    return () => clearInterval(timer);
  }, [topic, range]);

  useEffect(() => {
    let stop = () => {};
    let cancelled = false;
    if (tick === 0) setPoints(null);
    const to = Math.floor(Date.now() / 1000);
    load(to - range, to).then(
      (view) => {
        if (cancelled) return;
        setPoints(view.points);
        if (range !== 3600 || !topic) return;
        // The last hour: new samples stream in, the oldest fall out of the window.
        stop = follow(topic, (m) => {
          if (m.type !== "metrics") return;
          const point = m as unknown as api.MetricsPoint;
          setPoints((old) => {
            const kept = (old ?? []).filter((p) => Date.parse(p.ts) > Date.now() - range * 1000 && p.ts < point.ts);
            return [...kept, point];
          });
        });
      },
      (e) => setError(errorText(e)),
    );
    return () => {
      cancelled = true;
      stop();
    };
    // `load` is a new function each render: the subject is in `topic`, or in the caller's key.
  }, [topic, range, tick]);

  const charts = useMemo(() => {
    if (!points || points.length === 0) return null;
    const t = (p: api.MetricsPoint) => Date.parse(p.ts);
    const last = points[points.length - 1];
    return (
      <>
        <LineChart
          title="CPU"
          series={[{ name: "CPU", color: "var(--accent)", points: points.map((p) => [t(p), p.cpu_percent]) }]}
          format={(v) => `${v.toFixed(1)} %`}
          floor={5}
        />
        <LineChart
          title="Memory"
          series={[{ name: "used", color: "var(--ok)", points: points.map((p) => [t(p), p.memory_bytes]) }]}
          format={bytes}
          limit={last.memory_limit_bytes > 0 ? { value: last.memory_limit_bytes, label: "limit" } : undefined}
        />
        <LineChart
          title="Network"
          series={[
            { name: "received/s", color: "var(--info)", points: rates(points, (p) => p.net_rx_bytes) },
            { name: "sent/s", color: "var(--warn)", points: rates(points, (p) => p.net_tx_bytes) },
          ]}
          format={(v) => `${bytes(v)}/s`}
          floor={1024}
        />
      </>
    );
  }, [points]);

  return (
    <div className="stack" data-testid="metrics">
      <div className="spread">
        <div className="row" role="group" aria-label="Time range">
          {RANGES.map(([label, secs]) => (
            <button key={label} className="btn secondary small" aria-pressed={range === secs} onClick={() => setRange(secs)}>
              {label}
            </button>
          ))}
        </div>
        <span className="small muted">{range !== 3600 ? "averaged" : topic ? "live" : "every 15 s"}</span>
      </div>
      <Alert>{error}</Alert>
      {points && points.length === 0 && (
        <Empty title="No samples in this range">Metrics are collected while it runs, every few seconds.</Empty>
      )}
      {charts}
    </div>
  );
}
