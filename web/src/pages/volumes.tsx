// The Volumes tab: a project's named volumes (data kept across deployments), added by name and
// mount path, detached (kept for admins) or purged with a typed confirmation; each with its
// backups (taken now or on a schedule, restored).
import { FormEvent, useEffect, useState } from "react";
import * as api from "../api";
import { BackupsPanel } from "./backups";
import { Ago, Alert, bytes, ConfirmDialog, Empty, errorText, Field, formErrors, FormErrors, noErrors } from "../ui";

export function VolumesPanel({ project }: { project: api.Project }) {
  const [volumes, setVolumes] = useState<api.Volume[] | null>(null);
  const [values, setValues] = useState({ name: "", mount_path: "" });
  const [errors, setErrors] = useState<FormErrors>(noErrors);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const [purging, setPurging] = useState<api.Volume | null>(null);
  const [open, setOpen] = useState<string | null>(null);

  const reload = () => api.listVolumes(project.id).then(setVolumes, (e) => setError(errorText(e)));
  useEffect(() => {
    reload();
  }, [project.id]);

  async function add(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setErrors(noErrors);
    try {
      await api.addVolume(project.id, values);
      setValues({ name: "", mount_path: "" });
      await reload();
    } catch (err) {
      setErrors(formErrors(err, ["name", "mount_path"]));
    } finally {
      setBusy(false);
    }
  }

  const act = async (action: () => Promise<unknown>) => {
    setError("");
    try {
      await action();
    } catch (e) {
      setError(errorText(e));
    }
    await reload();
  };

  return (
    <section className="stack" aria-label="Volumes">
      <div className="card stack">
        <h2>Volumes</h2>
        <p className="small muted">
          A volume keeps its files across deploys, restarts and rollbacks; the next deployment mounts a new one. During a switch the
          old and the new container both use it until the old one has drained. A volume lives on this machine, so the app runs one
          replica (under Swarm it is pinned to this machine's node). Deleting the project keeps its volumes, detached, for an admin to attach elsewhere (7 days unless the
          server says otherwise).
        </p>
        <form className="form-grid" onSubmit={add} noValidate aria-label="Add a volume">
          <Field
            label="Name"
            name="name"
            value={values.name}
            placeholder="data"
            error={errors.fields.name}
            onChange={(e) => setValues({ ...values, name: e.target.value })}
          />
          <Field
            label="Mount path"
            name="mount_path"
            value={values.mount_path}
            placeholder="/data"
            error={errors.fields.mount_path}
            onChange={(e) => setValues({ ...values, mount_path: e.target.value })}
          />
          <div className="form-actions">
            <button type="submit" className="btn" disabled={busy}>
              Add volume
            </button>
          </div>
        </form>
        <Alert>{errors.message || error}</Alert>
      </div>
      {volumes && volumes.length === 0 && <Empty title="No volumes">The app's files go with each deployment.</Empty>}
      {volumes && volumes.length > 0 && (
        <table className="table" aria-label="Project volumes">
          <thead>
            <tr>
              <th>Name</th>
              <th>Mounted at</th>
              <th>Size</th>
              <th>Created</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {volumes.map((v) => (
              <tr key={v.id}>
                <td data-label="Name">{v.name}</td>
                <td data-label="Mounted at">
                  <code>{v.mount_path}</code>
                </td>
                <td data-label="Size">{v.size_bytes === null ? "not measured yet" : bytes(v.size_bytes)}</td>
                <td data-label="Created">
                  <Ago at={v.created_at} />
                </td>
                <td className="actions">
                  <button className="btn secondary small" aria-expanded={open === v.id} onClick={() => setOpen(open === v.id ? null : v.id)}>
                    Backups
                  </button>
                  <button className="btn secondary small" onClick={() => act(() => api.detachVolume(project.id, v.name))}>
                    Detach
                  </button>
                  <button className="btn danger small" onClick={() => setPurging(v)}>
                    Delete data
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {volumes
        ?.filter((v) => v.id === open)
        .map((v) => (
          <div className="card" key={v.id}>
            <BackupsPanel source={{ kind: "volume", base: api.volumeBackups(project.id, v.name), name: v.name }} onRestored={reload} />
          </div>
        ))}
      {purging && (
        <ConfirmDialog
          open
          onClose={() => setPurging(null)}
          title={`Delete volume ${purging.name} and its data?`}
          word={purging.name}
          action="Delete data"
          onConfirm={() => api.detachVolume(project.id, purging.name, true).then(reload)}
        >
          <p>The files in it are gone for good. While a container of the app still mounts it, this is refused: detach it first.</p>
        </ConfirmDialog>
      )}
    </section>
  );
}
