import { useEffect, useRef, useState } from "react";
import { Link, useParams } from "react-router";
import * as api from "./api";
import { Ansi } from "./ansi";
import { Domains } from "./domains";

const FINAL = ["live", "failed", "cancelled", "superseded", "stopped"];

export function ProjectPage() {
  const { id = "" } = useParams();
  const [project, setProject] = useState<api.Project | null>(null);
  const [deployments, setDeployments] = useState<api.Deployment[]>([]);
  const [selected, setSelected] = useState<string | null>(null);
  const [error, setError] = useState("");

  const reload = async () => {
    try {
      setProject(await api.getProject(id));
      setDeployments(await api.listDeployments(id));
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };
  useEffect(() => {
    reload();
    // Statuses change while we look: follow the project's topic and refresh on each change.
    return api.follow(`project:${id}`, (m) => {
      if (m.type === "status" || m.type === "container" || m.type === "runtime") reload();
    });
  }, [id]);

  if (!project) return <p className="muted">{error || "Loading…"}</p>;
  return (
    <section>
      <p>
        <Link to="/">← Projects</Link>
      </p>
      <h1>
        {project.name} <span className={`badge ${project.status}`}>{project.status}</span>{" "}
        <span className={`badge runtime ${project.runtime}`} title="runtime state">
          {project.runtime.replace("_", " ")}
        </span>
      </h1>
      <p className="muted">
        {project.git_url} @ {project.branch} ·{" "}
        <a href={project.url} target="_blank" rel="noreferrer" data-testid="app-url">
          {project.url}
        </a>
      </p>
      {error && <p className="error" role="alert">{error}</p>}
      <button
        onClick={async () => {
          setError("");
          try {
            const d = await api.deploy(id);
            setSelected(d.id);
            await reload();
          } catch (e) {
            setError(e instanceof Error ? e.message : String(e));
          }
        }}
      >
        Deploy now
      </button>{" "}
      {project.runtime !== "not_deployed" &&
        (["start", "stop", "restart"] as const).map((action) => (
          <button
            key={action}
            className="secondary"
            disabled={
              (action === "start" && project.runtime === "running") ||
              (action === "stop" && project.runtime !== "running")
            }
            onClick={() => api.control(id, action).then(reload, (e) => setError(e.message))}
          >
            {action[0].toUpperCase() + action.slice(1)}
          </button>
        ))}
      <table>
        <thead>
          <tr>
            <th>Started</th>
            <th>Status</th>
            <th>Commit</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {deployments.map((d) => (
            <tr key={d.id} className={d.id === selected ? "selected" : ""} onClick={() => setSelected(d.id)}>
              <td>{new Date(d.created_at).toLocaleString()}</td>
              <td>
                <span className={`badge ${d.status}`}>{d.status}</span>
                {d.error_step && <span className="muted"> at {d.error_step}</span>}
              </td>
              <td className="muted">
                {d.commit_sha?.slice(0, 10)} {d.commit_message}
              </td>
              <td>
                {!FINAL.includes(d.status) && (
                  <button className="danger" onClick={() => api.cancelDeployment(d.id).then(reload, (e) => setError(e.message))}>
                    Cancel
                  </button>
                )}
                {d.status === "superseded" && (
                  <button onClick={() => api.deploy(id, d.id).then(reload, (e) => setError(e.message))}>Roll back</button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {selected && <LogView key={selected} deployment={selected} />}
      <Domains project={id} />
    </section>
  );
}

function LogView({ deployment }: { deployment: string }) {
  const [lines, setLines] = useState<api.LiveMessage[]>([]);
  const bottom = useRef<HTMLDivElement>(null);
  useEffect(
    () =>
      api.follow(`deployment:${deployment}`, (m) => {
        if (m.type === "log" || m.type === "status" || m.type === "error") setLines((old) => [...old, m]);
      }),
    [deployment],
  );
  // A block body: newer browsers return a Promise from scrollIntoView, and an effect must
  // return nothing or a cleanup function (returning the Promise crashed the page).
  useEffect(() => {
    bottom.current?.scrollIntoView({ block: "end" });
  }, [lines]);
  return (
    <pre className="log" data-testid="log">
      {lines.map((m, i) => (
        <div key={m.seq ?? `e${i}`} className={m.stream ?? m.type}>
          {m.type === "status" ? `— ${m.status} —` : m.type === "error" ? `error: ${m.message}` : <Ansi text={m.line ?? ""} />}
        </div>
      ))}
      <div ref={bottom} />
    </pre>
  );
}
