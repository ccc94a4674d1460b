// The Metrics tab: CPU, memory against its limit and network throughput of the project's
// running container, over 1 h, 24 h, 7 d or 90 d. The last hour also streams new samples from
// the `project:<id>:metrics` topic as the collector takes them.
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
  const [range, setRange] = useState(3600);
  const [points, setPoints] = useState<api.MetricsPoint[] | null>(null);
  const [error, setError] = useState("");

  useEffect(() => {
    let stop = () => {};
    let cancelled = false;
    setPoints(null);
    const to = Math.floor(Date.now() / 1000);
    api.projectMetrics(project.id, to - range, to).then(
      (view) => {
        if (cancelled) return;
        setPoints(view.points);
        if (range !== 3600) return;
        // The last hour: new samples stream in, the oldest fall out of the window.
        stop = follow(`project:${project.id}:metrics`, (m) => {
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
  }, [project.id, range]);

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
        <span className="small muted">{range === 3600 ? "live" : "averaged"}</span>
      </div>
      <Alert>{error}</Alert>
      {points && points.length === 0 && (
        <Empty title="No samples in this range">Metrics are collected while the app runs, every few seconds.</Empty>
      )}
      {charts}
    </div>
  );
}
