// The Files tab: files uploaded to a project (config files, certificates, robots.txt), each
// mounted read-only at its path from the next deployment on. Every change is a new version;
// the replicas table says which version each running replica mounts, and a restart (a new
// deployment through the health check) brings them up to date.
import { FormEvent, useEffect, useRef, useState } from "react";
import * as api from "../api";
import { Ago, Alert, Badge, bytes, ConfirmDialog, Empty, errorText, Field, formErrors, FormErrors, noErrors, useToast } from "../ui";

export function FilesPanel({ project }: { project: api.Project }) {
  const [files, setFiles] = useState<api.Files | null>(null);
  const [path, setPath] = useState("");
  const [chosen, setChosen] = useState<File | null>(null);
  const [errors, setErrors] = useState<FormErrors>(noErrors);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const [deleting, setDeleting] = useState<api.ProjectFile | null>(null);
  const input = useRef<HTMLInputElement>(null);
  const toast = useToast();

  const reload = () => api.listFiles(project.id).then(setFiles, (e) => setError(errorText(e)));
  useEffect(() => {
    reload();
  }, [project.id]);

  async function upload(e: FormEvent) {
    e.preventDefault();
    setErrors(noErrors);
    if (!chosen) {
      setErrors({ fields: {}, message: "Choose a file to upload." });
      return;
    }
    setBusy(true);
    try {
      const written = await api.putFile(project.id, path || `/${chosen.name}`, chosen);
      toast(`${written.path} saved as version ${written.version}`, "success");
      setPath("");
      setChosen(null);
      if (input.current) input.current.value = "";
      await reload();
    } catch (err) {
      setErrors(formErrors(err, ["path"]));
    } finally {
      setBusy(false);
    }
  }

  async function download(f: api.ProjectFile) {
    setError("");
    try {
      const blob = await api.fileContent(project.id, f.path);
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url;
      a.download = f.path.split("/").pop() || "file";
      a.click();
      URL.revokeObjectURL(url);
    } catch (e) {
      setError(errorText(e));
    }
  }

  async function apply() {
    setError("");
    try {
      await api.control(project.id, "restart");
      toast("Restart queued: the new deployment mounts the current files", "success");
    } catch (e) {
      setError(errorText(e));
    }
    await reload();
  }

  const outdated = files?.replicas.filter((r) => !r.current) ?? [];
  return (
    <section className="stack" aria-label="Files">
      <div className="card stack">
        <h2>Files</h2>
        <p className="small muted">
          Each file is mounted read-only at its path in the app, from the next deployment on: a change goes live only through the
          health check, so a broken config file leaves the running app as it is. Contents are encrypted at rest and readable here by
          team admins only.
        </p>
        <form className="form-grid" onSubmit={upload} noValidate aria-label="Upload a file">
          <Field
            label="Path in the app"
            name="path"
            value={path}
            placeholder={chosen ? `/${chosen.name}` : "/etc/app/config.toml"}
            error={errors.fields.path}
            onChange={(e) => setPath(e.target.value)}
          />
          <div className="field">
            <label htmlFor="file-upload">File</label>
            <input id="file-upload" ref={input} type="file" onChange={(e) => setChosen(e.target.files?.[0] ?? null)} />
          </div>
          <div className="form-actions">
            <button type="submit" className="btn" disabled={busy}>
              Upload
            </button>
          </div>
        </form>
        <Alert>{errors.message || error}</Alert>
      </div>
      {files && files.files.length === 0 && <Empty title="No files">Upload a config file, a certificate or a robots.txt.</Empty>}
      {files && files.files.length > 0 && (
        <table className="table" aria-label="Project files">
          <thead>
            <tr>
              <th>Path</th>
              <th>Size</th>
              <th>Version</th>
              <th>Changed</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {files.files.map((f) => (
              <tr key={f.path}>
                <td data-label="Path">
                  <code>{f.path}</code>
                </td>
                <td data-label="Size">{bytes(f.size_bytes)}</td>
                <td data-label="Version">{f.version}</td>
                <td data-label="Changed">
                  <Ago at={f.updated_at} />
                </td>
                <td className="actions">
                  <button className="btn secondary small" onClick={() => download(f)}>
                    Download
                  </button>
                  <button className="btn danger small" onClick={() => setDeleting(f)}>
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {files && files.replicas.length > 0 && (
        <section className="card stack" aria-label="Replicas">
          <h3>Running replicas (files version {files.version})</h3>
          <ul className="stack">
            {files.replicas.map((r) => (
              <li key={`${r.deployment_id}-${r.replica}`}>
                Replica {r.replica} of deployment <code>{r.deployment_id.slice(0, 8)}</code> <Badge status={r.status} />{" "}
                {r.files_version ? `mounts version ${r.files_version}` : "mounts no files"} {r.current ? "(current)" : "(outdated)"}
              </li>
            ))}
          </ul>
          {outdated.length > 0 && (
            <div>
              <button className="btn" onClick={apply}>
                Restart to apply
              </button>
            </div>
          )}
        </section>
      )}
      {deleting && (
        <ConfirmDialog
          open
          onClose={() => setDeleting(null)}
          title={`Delete ${deleting.path}?`}
          word={deleting.path.split("/").pop() || deleting.path}
          action="Delete file"
          onConfirm={() => api.deleteFile(project.id, deleting.path).then(reload)}
        >
          <p>The running app keeps it until its next deployment, which no longer mounts it.</p>
        </ConfirmDialog>
      )}
    </section>
  );
}
