// A project: header (live URL, state, Deploy / Stop / Start / Restart) and its tabs —
// deployments, runtime logs, metrics, environment, build plan, volumes, files, jobs and
// commands, pull-request previews, a terminal (loaded on demand), domains, webhook/GitHub,
// settings. The page follows the project's
// topic, so statuses change on screen as they change on the server.
import { lazy, Suspense, useEffect, useMemo, useRef, useState } from "react";
import { Link, NavLink, Route, Routes, useNavigate, useParams } from "react-router";
import * as api from "../api";
import { Domains } from "../domains";
import { follow } from "../live";
import { LogStore, LogView } from "../logview";
import { Ago, Alert, Badge, duration, Empty, errorText, useToast } from "../ui";
import { EnvEditor } from "./env";
import { projectState, triggerText } from "./projects";
import { BuildPanel, Detected } from "./build";
import { Settings } from "./settings";
import { FilesPanel } from "./files";
import { JobsPanel } from "./jobs";
import { PreviewsPanel } from "./previews";
import { VolumesPanel } from "./volumes";
import { WebhookPanel } from "./webhook";

const FINAL = ["live", "failed", "cancelled", "superseded", "stopped"];
const MetricsPanel = lazy(() => import("./metrics"));
const TerminalPanel = lazy(() => import("./terminal"));

export default function ProjectPage() {
  const { id = "" } = useParams();
  const [project, setProject] = useState<api.Project | null>(null);
  const [deployments, setDeployments] = useState<api.Deployment[]>([]);
  const [error, setError] = useState("");
  const navigate = useNavigate();
  const toast = useToast();

  // Answers can arrive out of order: only the newest reload (or a save after it) counts.
  const latest = useRef(0);
  const saved = (p: api.Project) => {
    latest.current += 1;
    setProject(p);
  };
  const reload = async () => {
    const mine = ++latest.current;
    try {
      const [p, d] = await Promise.all([api.getProject(id), api.listDeployments(id)]);
      if (mine !== latest.current) return;
      setProject(p);
      setDeployments(d);
    } catch (e) {
      setError(errorText(e));
    }
  };
  useEffect(() => {
    reload();
    return follow(`project:${id}`, (m) => {
      if (m.type === "status" || m.type === "container" || m.type === "runtime") reload();
    });
  }, [id]);

  const act = async (what: string, action: () => Promise<unknown>) => {
    setError("");
    try {
      await action();
      toast(what, "success");
      await reload();
    } catch (e) {
      setError(errorText(e));
    }
  };

  if (!project)
    return error ? (
      <Empty title="Project not available">
        <p>{error}</p>
        <Link to="/">Back to projects</Link>
      </Empty>
    ) : (
      <p className="muted" role="status">
        Loading…
      </p>
    );
  const running = project.runtime === "running";
  return (
    <section>
      <p className="small">
        <Link to="/">← Projects</Link>
      </p>
      <div className="page-head">
        <div className="stack grow" style={{ gap: "var(--space-1)" }}>
          <h1 className="row">
            <span className="wrap-anywhere">{project.name}</span>
            <Badge status={projectState(project)} className="state" />
            <Badge status={project.runtime} label={project.runtime.replace("_", " ")} className="runtime" />
          </h1>
          <a href={project.url} target="_blank" rel="noreferrer" data-testid="app-url" className="wrap-anywhere">
            {project.url}
          </a>
          <span className="small muted wrap-anywhere">
            {project.git_url} @ {project.branch}
          </span>
        </div>
        <div className="row">
          <button
            className="btn"
            onClick={() =>
              act("Deploy queued", async () => {
                const d = await api.deploy(id);
                navigate(`/projects/${id}/deployments/${d.id}`);
              })
            }
          >
            Deploy
          </button>
          {project.runtime !== "not_deployed" && (
            <>
              <button className="btn secondary" disabled={!running} onClick={() => act("App stopped", () => api.control(id, "stop"))}>
                Stop
              </button>
              <button className="btn secondary" disabled={running} onClick={() => act("App started", () => api.control(id, "start"))}>
                Start
              </button>
              <button className="btn secondary" onClick={() => act("Restart queued", () => api.control(id, "restart"))}>
                Restart
              </button>
            </>
          )}
        </div>
      </div>
      <Alert>{error}</Alert>
      <nav className="tabs" aria-label="Project sections">
        <NavLink to={`/projects/${id}`} end>
          Deployments
        </NavLink>
        <NavLink to={`/projects/${id}/logs`}>Runtime logs</NavLink>
        <NavLink to={`/projects/${id}/metrics`}>Metrics</NavLink>
        <NavLink to={`/projects/${id}/env`}>Environment</NavLink>
        <NavLink to={`/projects/${id}/build`}>Build</NavLink>
        <NavLink to={`/projects/${id}/volumes`}>Volumes</NavLink>
        <NavLink to={`/projects/${id}/files`}>Files</NavLink>
        <NavLink to={`/projects/${id}/jobs`}>Jobs</NavLink>
        <NavLink to={`/projects/${id}/previews`}>Previews</NavLink>
        <NavLink to={`/projects/${id}/terminal`}>Terminal</NavLink>
        <NavLink to={`/projects/${id}/domains`}>Domains</NavLink>
        <NavLink to={`/projects/${id}/webhook`}>{project.github ? "GitHub" : "Webhook"}</NavLink>
        <NavLink to={`/projects/${id}/settings`}>Settings</NavLink>
      </nav>
      <Routes>
        <Route index element={<Deployments project={project} deployments={deployments} act={act} />} />
        <Route path="logs" element={<RuntimeLogs project={project} />} />
        <Route
          path="metrics"
          element={
            <Suspense fallback={<p className="muted">Loading…</p>}>
              <MetricsPanel project={project} />
            </Suspense>
          }
        />
        <Route path="build" element={<BuildPanel project={project} onSaved={saved} />} />
        <Route path="volumes" element={<VolumesPanel project={project} />} />
        <Route path="files" element={<FilesPanel project={project} />} />
        <Route path="jobs" element={<JobsPanel project={project} />} />
        <Route path="previews" element={<PreviewsPanel project={project} onSaved={saved} />} />
        <Route
          path="terminal"
          element={
            <Suspense fallback={<p className="muted">Loading the terminal…</p>}>
              <TerminalPanel project={project} />
            </Suspense>
          }
        />
        <Route path="env" element={<EnvEditor project={project} onDeploy={() => act("Deploy queued", () => api.deploy(id))} />} />
        <Route path="domains" element={<Domains project={id} />} />
        <Route path="webhook" element={<WebhookPanel project={project} onChanged={reload} />} />
        <Route path="settings" element={<Settings project={project} onSaved={saved} />} />
      </Routes>
    </section>
  );
}

function Deployments({
  project,
  deployments,
  act,
}: {
  project: api.Project;
  deployments: api.Deployment[];
  act: (what: string, action: () => Promise<unknown>) => Promise<void>;
}) {
  if (deployments.length === 0)
    return (
      <Empty title="No deployments yet">
        <p>Deploy builds the branch's newest commit and switches traffic to it once it is healthy.</p>
        {project.build_type === "auto" && <Detected project={project.id} />}
      </Empty>
    );
  return (
    <table className="table" aria-label="Deployments">
      <thead>
        <tr>
          <th>Status</th>
          <th>Commit</th>
          <th>Started</th>
          <th>Duration</th>
          <th>Trigger</th>
          <th>
            <span className="sr-only">Actions</span>
          </th>
        </tr>
      </thead>
      <tbody>
        {deployments.map((d) => (
          <tr key={d.id} data-testid={`deployment-${d.id}`}>
            <td data-label="Status">
              <div className="stack" style={{ gap: 0 }}>
                <span>
                  <Link to={`/projects/${project.id}/deployments/${d.id}`} aria-label={`deployment ${d.id.slice(-8)}: ${d.status}`}>
                    <Badge status={d.status} />
                  </Link>
                </span>
                {d.status === "failed" && (
                  <span className="small" style={{ color: "var(--danger)" }}>
                    {d.error_step ? `at ${d.error_step}: ` : ""}
                    {d.error}
                  </span>
                )}
              </div>
            </td>
            <td data-label="Commit" className="wrap-anywhere">
              {d.commit_sha ? <code>{d.commit_sha.slice(0, 7)}</code> : <span className="muted">—</span>}{" "}
              <span className="muted">{d.commit_message?.split("\n")[0]}</span>
            </td>
            <td data-label="Started">
              <Ago at={d.created_at} />
            </td>
            <td data-label="Duration">{FINAL.includes(d.status) ? duration(d.created_at, d.finished_at ?? d.created_at) : duration(d.created_at)}</td>
            <td data-label="Trigger">{triggerText(d.trigger, d.created_by, d.pusher)}</td>
            <td className="actions">
              <Link className="btn secondary small" to={`/projects/${project.id}/deployments/${d.id}`}>
                View log
              </Link>{" "}
              {!FINAL.includes(d.status) && (
                <button className="btn danger small" onClick={() => act("Deployment cancelled", () => api.cancelDeployment(d.id))}>
                  Cancel
                </button>
              )}
              {(d.status === "superseded" || d.status === "stopped") && d.image && d.id !== project.live_deployment && (
                <button className="btn secondary small" onClick={() => act("Rollback queued", () => api.deploy(project.id, d.id))}>
                  Roll back
                </button>
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function RuntimeLogs({ project }: { project: api.Project }) {
  // A container may print for days: the browser keeps the newest 50,000 lines.
  const store = useMemo(() => new LogStore(50_000), [project.id]);
  const [state, setState] = useState("connecting");
  useEffect(
    () =>
      follow(`project:${project.id}:logs`, (m) => store.push(m), {
        onState: setState,
      }),
    [project.id],
  );
  return (
    <section aria-label="Runtime logs" className="stack">
      <p className="small muted">Output of the running container, live.</p>
      <LogView
        store={store}
        note={state === "reconnecting" ? "connection lost, reconnecting…" : ""}
        name={`${project.slug}-runtime.log`}
        emptyText={project.runtime === "running" ? "No output yet." : "The app is not running."}
      />
    </section>
  );
}
