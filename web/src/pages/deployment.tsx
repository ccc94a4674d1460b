// One deployment: its status timeline with step durations and the live build log. The log
// follows `deployment:<id>` from seq 0 and resumes from the last seq after any interruption.
import { useEffect, useMemo, useState, useSyncExternalStore } from "react";
import { Link, useParams } from "react-router";
import * as api from "../api";
import { follow } from "../live";
import { LogLine, LogStore, LogView } from "../logview";
import { Alert, Badge, duration, errorText } from "../ui";
import { triggerText } from "./projects";

export const STEPS = ["queued", "fetching", "building", "starting", "health_checking", "live"];
const FINAL = ["live", "failed", "cancelled", "superseded", "stopped"];

type Step = { status: string; state: "done" | "current" | "failed" | "todo"; took: string };

/** The timeline from the status lines of a log: when each step began and how long it took. */
export function timeline(lines: LogLine[], createdAt?: string, now = Date.now()): Step[] {
  const seen: { status: string; ts: string }[] = [];
  if (createdAt) seen.push({ status: "queued", ts: createdAt });
  for (const l of lines) if (l.kind === "status" && l.ts) seen.push({ status: l.text.replace(/^— | —$/g, ""), ts: l.ts });
  const last = seen[seen.length - 1]?.status;
  const ended = last !== undefined && FINAL.includes(last);
  return STEPS.map((status) => {
    const at = seen.findIndex((s) => s.status === status);
    if (at < 0) return { status, state: "todo", took: "" };
    const next = seen[at + 1];
    const failedHere = next && ["failed", "cancelled"].includes(next.status);
    const current = !next && !ended;
    const took =
      status === "live" ? "" : duration(seen[at].ts, next ? next.ts : current ? new Date(now).toISOString() : seen[at].ts);
    return { status, state: failedHere ? "failed" : current ? "current" : "done", took };
  });
}

export default function DeploymentPage() {
  const { id = "", deployment = "" } = useParams();
  const [info, setInfo] = useState<api.Deployment | null>(null);
  const [error, setError] = useState("");
  const [connection, setConnection] = useState("connecting");
  const store = useMemo(() => new LogStore(), [deployment]);
  useSyncExternalStore(store.subscribe, store.snapshot);
  const [, tick] = useState(0);

  const reload = () => api.getDeployment(deployment).then(setInfo, (e) => setError(errorText(e)));
  useEffect(() => {
    reload();
    return follow(
      `deployment:${deployment}`,
      (m) => {
        store.push(m);
        if (m.type === "status") reload();
      },
      { onState: setConnection },
    );
  }, [deployment]);
  const running = info && !FINAL.includes(info.status);
  // GitHub's status is posted after the deployment's own (in order, by one poster): a page
  // that saw the end before the post asks again until the status is final.
  const statusPending = info !== null && !running && info.commit_status === "pending";
  useEffect(() => {
    if (!statusPending) return;
    let tries = 0;
    const timer = setInterval(() => {
      tries += 1;
      if (tries > 15) clearInterval(timer);
      reload();
    }, 2000);
    return () => clearInterval(timer);
  }, [statusPending, deployment]);
  useEffect(() => {
    if (!running) return;
    const timer = setInterval(() => tick((n) => n + 1), 1000);
    return () => clearInterval(timer);
  }, [running]);

  const steps = timeline(store.lines, info?.created_at);
  return (
    <section>
      <p className="small">
        <Link to={`/projects/${id}`}>← Project</Link>
      </p>
      <div className="page-head">
        <div className="stack grow" style={{ gap: "var(--space-1)" }}>
          <h1 className="row">
            Deployment <code>{deployment.slice(-8)}</code>
            {info && <Badge status={info.status} className="deployment-status" />}
          </h1>
          {info && (
            <span className="small muted wrap-anywhere">
              {triggerText(info.trigger, info.created_by, info.pusher)}
              {info.commit_sha && (
                <>
                  {" "}
                  · <code>{info.commit_sha.slice(0, 10)}</code> {info.commit_message?.split("\n")[0]}
                </>
              )}
              {info.commit_status && (
                <span data-testid="commit-status">
                  {" "}
                  · GitHub status: {info.commit_status}
                </span>
              )}
              {info.preview_url && (
                <>
                  {" "}
                  ·{" "}
                  <a href={info.preview_url} target="_blank" rel="noreferrer">
                    this deployment's own URL
                  </a>
                </>
              )}
            </span>
          )}
        </div>
        {running && (
          <button
            className="btn danger"
            onClick={() => api.cancelDeployment(deployment).then(reload, (e) => setError(errorText(e)))}
          >
            Cancel deploy
          </button>
        )}
      </div>
      <Alert>{error}</Alert>
      {info?.commit_status_error && (
        <Alert tone="warn">The commit status was not posted to GitHub: {info.commit_status_error}</Alert>
      )}
      {info?.status === "failed" && (
        <Alert>
          Failed{info.error_step ? ` at ${info.error_step}` : ""}: {info.error}
        </Alert>
      )}
      <ol className="timeline" aria-label="Steps">
        {steps.map((s) => (
          <li key={s.status} className={s.state} aria-current={s.state === "current" ? "step" : undefined}>
            <strong>{s.status.replace("_", " ")}</strong>
            {s.took || (s.state === "todo" ? "—" : "")}
          </li>
        ))}
      </ol>
      <LogView
        store={store}
        name={`deployment-${deployment}.log`}
        note={connection === "reconnecting" ? "connection lost, reconnecting…" : ""}
      />
    </section>
  );
}
