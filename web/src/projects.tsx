import { FormEvent, useEffect, useState } from "react";
import { Link } from "react-router";
import * as api from "./api";

export function ProjectsPage() {
  const [projects, setProjects] = useState<api.Project[] | null>(null);
  const [error, setError] = useState("");
  const reload = () => api.listProjects().then(setProjects, (e) => setError(String(e.message ?? e)));
  useEffect(() => {
    reload();
  }, []);

  async function create(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const formElement = e.currentTarget;
    const form = new FormData(formElement);
    setError("");
    try {
      await api.createProject({
        name: String(form.get("name")),
        git_url: String(form.get("git_url")),
        branch: String(form.get("branch") || "main"),
      });
      formElement.reset();
      await reload();
    } catch (err) {
      setError(err instanceof api.ApiError && err.field ? `${err.field}: ${err.message}` : String(err));
    }
  }

  return (
    <section>
      <h1>Projects</h1>
      {projects === null ? (
        <p className="muted">Loading…</p>
      ) : projects.length === 0 ? (
        <p className="muted">No projects yet. Create one below.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Name</th>
              <th>Repository</th>
              <th>Status</th>
              <th>URL</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {projects.map((p) => (
              <tr key={p.id}>
                <td>
                  <Link to={`/projects/${p.id}`}>{p.name}</Link>
                </td>
                <td className="muted">
                  {p.git_url} @ {p.branch}
                </td>
                <td>
                  <span className={`badge ${p.status}`}>{p.status}</span>
                </td>
                <td>
                  <a href={p.url}>{p.url}</a>
                </td>
                <td>
                  <button
                    className="danger"
                    onClick={async () => {
                      if (confirm(`Delete ${p.name} and its containers?`)) {
                        await api.deleteProject(p.id).catch((e) => setError(e.message));
                        await reload();
                      }
                    }}
                  >
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form className="card" onSubmit={create}>
        <h2>New project</h2>
        <label>
          Name <input name="name" required placeholder="blog" />
        </label>
        <label>
          Git URL <input name="git_url" required placeholder="https://github.com/you/blog.git" />
        </label>
        <label>
          Branch <input name="branch" placeholder="main" />
        </label>
        {error && <p className="error" role="alert">{error}</p>}
        <button type="submit">Create project</button>
      </form>
    </section>
  );
}
