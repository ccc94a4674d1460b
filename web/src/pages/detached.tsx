// Admin, on the system page: volumes whose project was deleted. They are kept until their
// retention ends; an admin attaches one to a project (its next deployment mounts it) or
// deletes its data now.
import { useEffect, useState } from "react";
import * as api from "../api";
import { Ago, Alert, bytes, ConfirmDialog, errorText } from "../ui";

export function DetachedVolumes() {
  const [volumes, setVolumes] = useState<api.Volume[]>([]);
  const [projects, setProjects] = useState<api.Project[]>([]);
  const [target, setTarget] = useState<Record<string, string>>({});
  const [error, setError] = useState("");
  const [purging, setPurging] = useState<api.Volume | null>(null);
  const reload = () =>
    api.allVolumes().then(
      (all) => setVolumes(all.filter((v) => !v.project_id)),
      (e) => setError(errorText(e)),
    );
  useEffect(() => {
    reload();
    api.listProjects().then(setProjects, () => setProjects([]));
  }, []);
  if (volumes.length === 0) return null;
  return (
    <section className="card stack" aria-label="Detached volumes">
      <h2>Detached volumes</h2>
      <p className="small muted">Left by deleted projects; each is removed with its data when its retention ends.</p>
      <Alert>{error}</Alert>
      <table className="table" aria-label="Detached volumes">
        <thead>
          <tr>
            <th>Volume</th>
            <th>Was in</th>
            <th>Size</th>
            <th>Removed</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {volumes.map((v) => (
            <tr key={v.id}>
              <td data-label="Volume">
                {v.name} <code>{v.mount_path}</code>
              </td>
              <td data-label="Was in">{v.project_name ?? "—"}</td>
              <td data-label="Size">{v.size_bytes === null ? "—" : bytes(v.size_bytes)}</td>
              <td data-label="Removed">
                <Ago at={v.expires_at} />
              </td>
              <td className="actions">
                <div className="row" style={{ justifyContent: "flex-end" }}>
                <label className="sr-only" htmlFor={`attach-${v.id}`}>
                  Attach {v.name} to
                </label>
                <select id={`attach-${v.id}`} style={{ maxWidth: "12rem" }} value={target[v.id] ?? ""} onChange={(e) => setTarget({ ...target, [v.id]: e.target.value })}>
                  <option value="">Attach to…</option>
                  {projects.map((p) => (
                    <option key={p.id} value={p.id}>
                      {p.name}
                    </option>
                  ))}
                </select>
                <button
                  className="btn secondary small"
                  disabled={!target[v.id]}
                  onClick={() =>
                    api.attachVolume(v.id, target[v.id]).then(reload, (e) => setError(errorText(e)))
                  }
                >
                  Attach
                </button>
                <button className="btn danger small" onClick={() => setPurging(v)}>
                  Delete data
                </button>
                </div>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {purging && (
        <ConfirmDialog
          open
          onClose={() => setPurging(null)}
          title={`Delete volume ${purging.name} and its data?`}
          word={purging.name}
          action="Delete data"
          onConfirm={() => api.purgeVolume(purging.id).then(reload)}
        >
          <p>The files in it are gone for good.</p>
        </ConfirmDialog>
      )}
    </section>
  );
}
