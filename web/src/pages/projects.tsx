// The projects list: a card per project with its state, URL and newest deployment, and the
// "New project" dialog. It refreshes itself while any deploy is under way.
import { useEffect, useRef, useState } from "react";
import { Link, useNavigate } from "react-router";
import * as api from "../api";
import { Ago, Alert, Badge, Dialog, Empty, errorText } from "../ui";
import { ProjectForm } from "./projectform";

const BUSY = ["queued", "fetching", "building", "starting", "health_checking"];

/** The one state a card shows: a deploy in progress, else how the app runs. */
export function projectState(p: api.Project): string {
  if (BUSY.includes(p.status)) return p.status === "queued" ? "queued" : "building";
  if (p.runtime === "crashed" || p.runtime === "stopped") return p.runtime;
  if (p.status === "failed" && !p.live_deployment) return "failed";
  if (p.runtime === "running") return "live";
  return p.status === "new" ? "new" : p.status;
}

export function triggerText(trigger: string, by: string | null, pusher?: string | null): string {
  if (trigger === "push") return pusher ? `pushed by ${pusher}` : "push";
  const what = trigger === "manual" ? "deployed" : trigger === "rollback" ? "rolled back" : trigger;
  return by ? `${what} by ${by}` : what;
}

const TEAM_KEY = "shard.team";

export function ProjectsPage() {
  const [projects, setProjects] = useState<api.Project[] | null>(null);
  const [error, setError] = useState("");
  const [creating, setCreating] = useState(false);
  const [teams, setTeams] = useState<api.Team[]>([]);
  // The team switcher: one team's projects, or every team's (""), remembered in this browser.
  const [team, setTeam] = useState(() => localStorage.getItem(TEAM_KEY) ?? "");
  const navigate = useNavigate();
  // The team shown now: a list asked for another team that answers late is dropped (switching
  // while the first list loads showed the old team's list, and nothing asked again).
  const shown = useRef(team);
  shown.current = team;
  const reload = () => {
    const asked = shown.current;
    return api.listProjects(asked || undefined).then(
      (list) => {
        if (shown.current === asked) setProjects(list);
      },
      (e) => setError(errorText(e)),
    );
  };
  useEffect(() => {
    api.listTeams().then((all) => {
      setTeams(all);
      // A remembered team the user left falls back to all teams.
      if (team && !all.some((t) => t.id === team)) switchTeam("");
    }, () => setTeams([]));
  }, []);
  useEffect(() => {
    reload();
  }, [team]);
  const switchTeam = (id: string) => {
    localStorage.setItem(TEAM_KEY, id);
    setProjects(null);
    setTeam(id);
  };
  const creatable = teams.filter((t) => t.role !== "viewer");
  const current = teams.find((t) => t.id === team);
  const busy = projects?.some((p) => BUSY.includes(p.status));
  useEffect(() => {
    if (!busy) return;
    const timer = setInterval(reload, 3000);
    return () => clearInterval(timer);
  }, [busy]);

  return (
    <section>
      <div className="page-head">
        <h1>Projects</h1>
        <div className="row">
          {teams.length > 1 && (
            <div className="team-switch">
              <label htmlFor="team-switch" className="small">
                Team
              </label>
              <select id="team-switch" value={team} onChange={(e) => switchTeam(e.target.value)}>
                <option value="">All teams</option>
                {teams.map((t) => (
                  <option key={t.id} value={t.id}>
                    {t.personal ? `${t.name} (personal)` : t.name}
                  </option>
                ))}
              </select>
            </div>
          )}
          <Link className="btn secondary" to="/import">
            Import from GitHub
          </Link>
          <button className="btn" onClick={() => setCreating(true)}>
            New project
          </button>
        </div>
      </div>
      <Alert>{error}</Alert>
      {projects === null ? (
        <p className="muted" role="status">
          Loading…
        </p>
      ) : projects.length === 0 ? (
        <Empty title="No projects yet">
          <p>A project is a git repository shard builds with its Dockerfile and serves at its own URL.</p>
          <button className="btn" onClick={() => setCreating(true)}>
            Create your first project
          </button>
        </Empty>
      ) : (
        <div className="grid-cards">
          {projects.map((p) => (
            <ProjectCard key={p.id} project={p} />
          ))}
        </div>
      )}
      <Dialog open={creating} onClose={() => setCreating(false)} title="New project">
        <ProjectForm
          teams={creatable}
          team={current && current.role !== "viewer" ? current.id : (creatable.find((t) => t.personal)?.id ?? "")}
          submitLabel="Create project"
          onCancel={() => setCreating(false)}
          onSaved={(p) => {
            setCreating(false);
            navigate(`/projects/${p.id}`);
          }}
        />
      </Dialog>
    </section>
  );
}

function ProjectCard({ project: p }: { project: api.Project }) {
  const latest = p.latest_deployment;
  return (
    <article className="card project-card" data-testid={`project-${p.slug}`}>
      <div className="spread">
        <h2 className="truncate">
          <Link to={`/projects/${p.id}`}>{p.name}</Link>
        </h2>
        <Badge status={projectState(p)} />
      </div>
      <a href={p.url} target="_blank" rel="noreferrer" className="small truncate">
        {p.url.replace(/^https?:\/\//, "")}
      </a>
      <div className="small muted truncate">
        {p.git_url.replace(/^https?:\/\//, "")} @ {p.branch}
      </div>
      {latest ? (
        <div className="small muted">
          <Ago at={latest.created_at} /> · {triggerText(latest.trigger, latest.created_by, latest.pusher)}
          {latest.commit_sha && (
            <>
              {" "}
              · <code>{latest.commit_sha.slice(0, 7)}</code>{" "}
              <span className="truncate">{latest.commit_message?.split("\n")[0]}</span>
            </>
          )}
        </div>
      ) : (
        <div className="small muted">Not deployed yet</div>
      )}
    </article>
  );
}
