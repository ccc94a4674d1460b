// The log viewer for build logs and runtime logs. Lines live in a LogStore outside React
// (appending is O(1), whatever the log's length) and only the rows in view are rendered, each
// a fixed 20 px high: a 100,000-line log costs a few dozen DOM nodes, and streaming lines never
// shift the layout. It follows the end until the user scrolls up, folds step sections ("==> "
// headers), searches, copies, downloads, and links line numbers by URL (#L42).
import { useEffect, useLayoutEffect, useMemo, useRef, useState, useSyncExternalStore } from "react";
import { Ansi, stripAnsi } from "./ansi";
import type { LiveMessage } from "./live";

export const ROW_HEIGHT = 20;
const OVERSCAN = 20;

export type LogLine = {
  seq: number;
  kind: "log" | "status" | "error";
  stream: string;
  text: string;
  ts?: string;
};

const schedule: (f: () => void) => void =
  typeof requestAnimationFrame === "function" ? (f) => requestAnimationFrame(() => f()) : (f) => setTimeout(f, 16);

/**
 * A log's lines, appended in seq order; listeners hear about changes once per frame. At most
 * `limit` lines are kept: past it the oldest tenth goes (a runtime log can stream for days),
 * and `dropped` counts them so line numbers stay those of the whole log.
 */
export class LogStore {
  lines: LogLine[] = [];
  dropped = 0;
  lastSeq = 0;
  version = 0;
  private listeners = new Set<() => void>();
  private pending = false;

  constructor(public readonly limit = 200_000) {}

  /** Adds one hub message; returns false for duplicates and messages that are not lines. */
  push(m: LiveMessage): boolean {
    if (m.type !== "log" && m.type !== "status" && m.type !== "error") return false;
    if (typeof m.seq === "number") {
      if (m.seq <= this.lastSeq) return false;
      this.lastSeq = m.seq;
    }
    const text = m.type === "status" ? `— ${m.status} —` : m.type === "error" ? `error: ${m.message}` : (m.line ?? "");
    this.lines.push({
      seq: m.seq ?? this.lines.length + 1,
      kind: m.type,
      stream: m.stream ?? m.type,
      text,
      // Only status lines need their time (the step timeline); 100,000 log lines do not.
      ts: m.type === "status" ? m.ts : undefined,
    });
    if (this.lines.length > this.limit) {
      const cut = Math.ceil(this.limit / 10);
      this.lines.splice(0, cut);
      this.dropped += cut;
    }
    this.changed();
    return true;
  }

  clear() {
    this.lines = [];
    this.dropped = 0;
    this.lastSeq = 0;
    this.changed();
  }

  private changed() {
    this.version++;
    if (this.pending) return;
    this.pending = true;
    schedule(() => {
      this.pending = false;
      for (const listener of this.listeners) listener();
    });
  }

  subscribe = (listener: () => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  snapshot = () => this.version;

  text(): string {
    return this.lines.map((l) => stripAnsi(l.text)).join("\n") + "\n";
  }
}

export const isHeader = (line: LogLine) => line.kind === "log" && line.text.startsWith("==> ");

/** The indices of the lines shown when the sections under `folded` headers are collapsed. */
export function visibleRows(lines: LogLine[], folded: Set<number>): number[] | null {
  if (folded.size === 0) return null;
  const rows: number[] = [];
  let hiding = false;
  for (let i = 0; i < lines.length; i++) {
    if (isHeader(lines[i])) hiding = folded.has(i);
    else if (hiding) continue;
    rows.push(i);
  }
  return rows;
}

function targetLine(): number | null {
  const match = /^#L(\d+)$/.exec(location.hash);
  return match ? Number(match[1]) : null;
}

export function LogView({
  store,
  name,
  emptyText = "Waiting for output…",
  height,
  note = "",
}: {
  store: LogStore;
  /** File name for downloads, e.g. `deployment-<id>.log`. */
  name: string;
  emptyText?: string;
  /** Viewport height in px when the element has none (tests). */
  height?: number;
  /** A short word on the connection ("reconnecting…"), shown in the toolbar (no layout shift). */
  note?: string;
}) {
  useSyncExternalStore(store.subscribe, store.snapshot);
  const lines = store.lines;
  const box = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [viewport, setViewport] = useState(height ?? 600);
  const [following, setFollowing] = useState(targetLine() === null);
  const [folded, setFolded] = useState<Set<number>>(new Set());
  const [query, setQuery] = useState("");
  const [current, setCurrent] = useState(0);
  const [target, setTarget] = useState<number | null>(targetLine());
  // Where our own last scroll put the box: a scroll event at that position is ours, not the user's.
  const programmatic = useRef(-1);
  const seenAtPause = useRef(0);
  // Enter after typing a query shows the first match; later ones step through them.
  const [jumped, setJumped] = useState(false);
  const pause = () => {
    if (!following) return;
    seenAtPause.current = lines.length;
    setFollowing(false);
  };

  const dropped = store.dropped;
  // Line numbers (and #L links) count from the start of the whole log, dropped lines included.
  const numberOf = (index: number) => dropped + index + 1;
  // Dropping old lines shifts every index: folds made before would point elsewhere.
  useEffect(() => setFolded(new Set()), [dropped]);
  const rows = useMemo(() => visibleRows(lines, folded), [lines, lines.length, folded]);
  const count = rows ? rows.length : lines.length;
  const lineAt = (row: number) => (rows ? rows[row] : row);
  const rowOf = (index: number) => (rows ? rows.indexOf(index) : index);

  const matches = useMemo(() => {
    if (!query) return [] as number[];
    const needle = query.toLowerCase();
    const found: number[] = [];
    lines.forEach((l, i) => {
      if (stripAnsi(l.text).toLowerCase().includes(needle)) found.push(i);
    });
    return found;
  }, [query, lines, lines.length]);
  const matchSet = useMemo(() => new Set(matches), [matches]);

  const scrollToRow = (row: number) => {
    const el = box.current;
    if (!el || row < 0) return;
    el.scrollTop = Math.max(0, row * ROW_HEIGHT - (el.clientHeight || viewport) / 2);
    programmatic.current = el.scrollTop;
    setScrollTop(el.scrollTop);
  };

  useLayoutEffect(() => {
    const el = box.current;
    if (el && el.clientHeight > 0) setViewport(el.clientHeight);
  }, []);

  // Following: after each render with new lines, stay at the end.
  useLayoutEffect(() => {
    const el = box.current;
    if (!el || !following) return;
    const end = Math.max(0, count * ROW_HEIGHT - viewport);
    if (Math.abs(el.scrollTop - end) > 1) el.scrollTop = end;
    programmatic.current = el.scrollTop;
    setScrollTop(el.scrollTop || end);
  }, [count, following, viewport]);

  // A line linked by URL: show it once it has arrived.
  const targetShown = useRef(false);
  useEffect(() => {
    if (target !== null && !targetShown.current && target - dropped <= lines.length && target > dropped) {
      targetShown.current = true;
      scrollToRow(rowOf(target - dropped - 1));
    }
  });

  const onScroll = () => {
    const el = box.current;
    if (!el) return;
    setScrollTop(el.scrollTop);
    if (Math.abs(el.scrollTop - programmatic.current) < 2) return;
    programmatic.current = -1;
    const atEnd = el.scrollTop + el.clientHeight >= el.scrollHeight - ROW_HEIGHT;
    if (!atEnd && following) pause();
    else if (atEnd && !following) setFollowing(true);
  };

  const jump = (step: number) => {
    if (matches.length === 0) return;
    const next = jumped ? (current + step + matches.length) % matches.length : step < 0 ? matches.length - 1 : 0;
    setJumped(true);
    setCurrent(next);
    pause();
    const index = matches[next];
    if (rows && rowOf(index) < 0) setFolded(new Set());
    scrollToRow(rows && rowOf(index) >= 0 ? rowOf(index) : index);
  };

  const download = () => {
    const url = URL.createObjectURL(new Blob([store.text()], { type: "text/plain" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = name;
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  };

  const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(count, Math.ceil((scrollTop + viewport) / ROW_HEIGHT) + OVERSCAN);
  const shown = [];
  for (let row = first; row < last; row++) {
    const index = lineAt(row);
    const line = lines[index];
    const header = isHeader(line);
    const classes = ["log-row", line.kind === "log" ? line.stream : line.kind];
    if (header) classes.push("header");
    if (matchSet.has(index)) classes.push(index === matches[current] ? "current-match" : "match");
    const number = numberOf(index);
    if (target === number) classes.push("target");
    shown.push(
      <div key={index} className={classes.join(" ")} style={{ top: row * ROW_HEIGHT }} data-line={number}>
        <a
          className="ln"
          href={`#L${number}`}
          aria-label={`line ${number}`}
          onClick={(e) => {
            e.preventDefault();
            history.replaceState(null, "", `#L${number}`);
            targetShown.current = true;
            setTarget(number);
            pause();
          }}
        >
          {number}
        </a>
        {header ? (
          <button
            className="fold text"
            aria-expanded={!folded.has(index)}
            onClick={() => {
              const next = new Set(folded);
              if (next.has(index)) next.delete(index);
              else next.add(index);
              setFolded(next);
            }}
          >
            {folded.has(index) ? "▸ " : "▾ "}
            {line.text.slice(4)}
          </button>
        ) : (
          <span className="text">{line.kind === "log" ? <Ansi text={line.text} /> : line.text}</span>
        )}
      </div>,
    );
  }

  const unseen = following ? 0 : Math.max(0, lines.length - seenAtPause.current);
  return (
    <div>
      <div className="log-tools">
        <label className="sr-only" htmlFor={`${name}-search`}>
          Search the log
        </label>
        <input
          id={`${name}-search`}
          type="search"
          placeholder="Search the log"
          value={query}
          onChange={(e) => {
            setQuery(e.target.value);
            setCurrent(0);
            setJumped(false);
          }}
          onKeyDown={(e) => {
            if (e.key === "Enter") {
              e.preventDefault();
              jump(e.shiftKey ? -1 : 1);
            }
          }}
        />
        {query && (
          <span className="small muted" aria-live="polite" data-testid="match-count">
            {matches.length ? `${current + 1} of ${matches.length}` : "no matches"}
          </span>
        )}
        {query && (
          <>
            <button className="btn secondary small" onClick={() => jump(-1)} disabled={!matches.length}>
              Previous
            </button>
            <button className="btn secondary small" onClick={() => jump(1)} disabled={!matches.length}>
              Next
            </button>
          </>
        )}
        <span className="grow" />
        <span className="small muted" role="status" data-testid="log-note">
          {note}
        </span>
        <span className="small muted" data-testid="line-count">
          {lines.length.toLocaleString()} lines
          {dropped > 0 && ` (${dropped.toLocaleString()} earlier ones let go)`}
        </span>
        <button className="btn secondary small" onClick={() => navigator.clipboard?.writeText(store.text())}>
          Copy
        </button>
        <button className="btn secondary small" onClick={download}>
          Download
        </button>
        <button
          className="btn small"
          aria-pressed={following}
          onClick={() => {
            setFollowing(!following);
            if (!following) setTarget(null);
          }}
        >
          {following ? "Following" : unseen ? `Follow (${unseen} new)` : "Follow"}
        </button>
      </div>
      <div
        ref={box}
        className="log"
        data-testid="log"
        role="log"
        aria-label="log output"
        tabIndex={0}
        onScroll={onScroll}
        style={height ? { height } : undefined}
      >
        {lines.length === 0 && <div className="log-empty">{emptyText}</div>}
        <div className="log-rows" style={{ height: count * ROW_HEIGHT }}>
          {shown}
        </div>
      </div>
    </div>
  );
}
