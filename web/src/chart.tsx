// A small line chart in SVG (no chart library): one or more series over time, a y axis from
// zero to the largest value (or a given maximum such as a memory limit, drawn as a dashed
// line), time labels at both ends. The latest values are spelled out for screen readers.
export type Series = { name: string; color: string; points: [number, number][] };

const W = 600;
const H = 160;
const PAD = { left: 8, right: 8, top: 10, bottom: 18 };

export function LineChart({
  title,
  series,
  format,
  limit,
  floor = 0,
}: {
  title: string;
  series: Series[];
  format: (v: number) => string;
  /** A ceiling to draw (and scale to), e.g. the memory limit. */
  limit?: { value: number; label: string };
  /** The y axis reaches at least this high (so idle noise stays flat). */
  floor?: number;
}) {
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return null;
  const t0 = Math.min(...all.map((p) => p[0]));
  const t1 = Math.max(...all.map((p) => p[0]));
  const top = Math.max(limit?.value ?? 0, floor, ...all.map((p) => p[1]), 1e-9) * 1.05;
  const x = (t: number) => PAD.left + ((t - t0) / Math.max(t1 - t0, 1)) * (W - PAD.left - PAD.right);
  const y = (v: number) => H - PAD.bottom - (v / top) * (H - PAD.top - PAD.bottom);
  const time = (t: number) => new Date(t).toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  const latest = series
    .filter((s) => s.points.length > 0)
    .map((s) => `${s.name} ${format(s.points[s.points.length - 1][1])}`)
    .join(", ");
  return (
    <figure className="chart card">
      <figcaption className="spread">
        <strong>{title}</strong>
        <span className="small muted" data-testid={`latest-${title}`}>
          {latest}
          {limit ? ` of ${format(limit.value)}` : ""}
        </span>
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${title}: ${latest}`} preserveAspectRatio="none">
        <line x1={PAD.left} x2={W - PAD.right} y1={y(0)} y2={y(0)} className="chart-axis" />
        {limit && <line x1={PAD.left} x2={W - PAD.right} y1={y(limit.value)} y2={y(limit.value)} className="chart-limit" />}
        {series.map((s) => (
          <polyline
            key={s.name}
            fill="none"
            stroke={s.color}
            strokeWidth={2}
            vectorEffect="non-scaling-stroke"
            points={s.points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ")}
          />
        ))}
      </svg>
      <div className="spread small muted">
        <span>{time(t0)}</span>
        <span className="row">
          {series.map((s) => (
            <span key={s.name} className="row">
              <span className="swatch" style={{ background: s.color }} aria-hidden="true" />
              {s.name}
            </span>
          ))}
        </span>
        <span>{time(t1)}</span>
      </div>
    </figure>
  );
}
