// The Settings tab: everything PATCH /projects/{id} takes, and the danger zone.
import { useState } from "react";
import { useNavigate } from "react-router";
import * as api from "../api";
import { ConfirmDialog, useToast } from "../ui";
import { ProjectForm } from "./projectform";

export function Settings({ project, onSaved }: { project: api.Project; onSaved: (p: api.Project) => void }) {
  const [deleting, setDeleting] = useState(false);
  const [version, setVersion] = useState(0);
  const navigate = useNavigate();
  const toast = useToast();
  return (
    <div className="stack">
      <section className="card" aria-label="Project settings">
        <h2>Settings</h2>
        <p className="small muted">Changes apply to the next deploy.</p>
        <ProjectForm
          key={`${project.id}-${version}`}
          project={project}
          submitLabel="Save settings"
          onSaved={(p) => {
            onSaved(p);
            setVersion(version + 1);
            toast("Settings saved", "success");
          }}
        />
      </section>
      <section className="card danger-zone" aria-label="Danger zone">
        <h2>Danger zone</h2>
        <div className="spread">
          <p className="small">Deleting the project removes its containers, images, logs and domains. This cannot be undone.</p>
          <button className="btn danger" onClick={() => setDeleting(true)}>
            Delete project
          </button>
        </div>
      </section>
      <ConfirmDialog
        open={deleting}
        onClose={() => setDeleting(false)}
        title={`Delete ${project.name}?`}
        word={project.slug}
        action="Delete project"
        onConfirm={async () => {
          await api.deleteProject(project.id);
          toast(`${project.name} deleted`, "success");
          navigate("/");
        }}
      >
        <p>
          The app at <strong className="wrap-anywhere">{project.url}</strong> stops answering and everything shard keeps for it is removed.
        </p>
      </ConfirmDialog>
    </div>
  );
}
