// The project form, shared by "New project" and the Settings tab: every field the API takes,
// with the API's 422 shown under the field it names.
import { FormEvent, useState } from "react";
import * as api from "../api";
import { Alert, Field, formErrors, FormErrors, noErrors } from "../ui";

type Values = Record<string, string>;

const NUMBER_FIELDS = ["port", "health_timeout_secs", "memory_limit_mb", "cpu_limit_millis", "replicas"];
const NULLABLE = [
  "port",
  "memory_limit_mb",
  "cpu_limit_millis",
  "static_dir",
  "root_dir",
  "install_command",
  "build_command",
  "start_command",
];
/** The build plan's overrides (build type auto). */
export const PLAN_FIELDS = ["root_dir", "install_command", "build_command", "start_command", "static_dir"];

function valuesOf(p?: api.Project): Values {
  return {
    name: p?.name ?? "",
    git_url: p?.git_url ?? "",
    branch: p?.branch ?? "main",
    dockerfile: p?.dockerfile ?? "Dockerfile",
    port: p?.port?.toString() ?? "",
    health_path: p?.health_path ?? "/",
    health_timeout_secs: p?.health_timeout_secs?.toString() ?? "60",
    memory_limit_mb: p?.memory_limit_mb?.toString() ?? "",
    cpu_limit_millis: p?.cpu_limit_millis?.toString() ?? "",
    build_type: p?.build_type ?? "auto",
    static_dir: p?.static_dir ?? "",
    root_dir: p?.root_dir ?? "",
    install_command: p?.install_command ?? "",
    build_command: p?.build_command ?? "",
    start_command: p?.start_command ?? "",
    replicas: p?.replicas?.toString() ?? "",
    placement: api.labelsText(p?.placement ?? {}),
  };
}

/**
 * The request body: on create, empty optional fields are left out; on edit, only changed
 * fields are sent and an emptied nullable field is sent as null (cleared).
 */
export function settingsBody(values: Values, original?: Values): api.ProjectSettings {
  const body: Record<string, unknown> = {};
  for (const [key, raw] of Object.entries(values)) {
    const value = raw.trim();
    if (original && original[key] === raw) continue;
    if (key === "placement") {
      // Labels as an object; emptied on edit clears them.
      if (value !== "" || original) body[key] = api.parseLabels(value);
      continue;
    }
    if (value === "") {
      if (original && NULLABLE.includes(key)) body[key] = null;
      else if (original) body[key] = value;
      continue;
    }
    body[key] = NUMBER_FIELDS.includes(key) && /^-?\d+$/.test(value) ? Number(value) : value;
  }
  return body as api.ProjectSettings;
}

/** Whether field `key` is on the form for build type `type`. */
function shownFor(type: string, key: string): boolean {
  if (type === "static") return key !== "port" && (key === "static_dir" || !PLAN_FIELDS.includes(key));
  if (type === "auto") return true;
  return !PLAN_FIELDS.includes(key);
}

export function ProjectForm({
  project,
  submitLabel,
  onSaved,
  onCancel,
  teams = [],
  team: initialTeam = "",
}: {
  project?: api.Project;
  submitLabel: string;
  onSaved: (p: api.Project) => void;
  onCancel?: () => void;
  /** On create: the teams it may go to (where the user is at least a member). */
  teams?: api.Team[];
  team?: string;
}) {
  // What the form started from: changes are sent against it, whatever refreshes meanwhile.
  const [original] = useState(() => valuesOf(project));
  const [team, setTeam] = useState(initialTeam);
  const [values, setValues] = useState<Values>(original);
  const [errors, setErrors] = useState<FormErrors>(noErrors);
  const [busy, setBusy] = useState(false);
  const set = (key: string) => (e: { target: { value: string } }) => setValues({ ...values, [key]: e.target.value });
  const field = (key: string, label: string, extra: Record<string, unknown> = {}) => (
    <Field label={label} name={key} value={values[key]} onChange={set(key)} error={errors.fields[key]} {...extra} />
  );
  const renamed = project && values.name.trim() !== project.name;

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setErrors(noErrors);
    try {
      const body = settingsBody(values, project ? original : undefined);
      if (!project && team) body.team_id = team;
      const saved = project ? await api.updateProject(project.id, body) : await api.createProject(body);
      onSaved(saved);
    } catch (err) {
      const shown = Object.keys(values).filter((k) => shownFor(values.build_type, k));
      setErrors(formErrors(err, shown));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form className="stack" onSubmit={submit} noValidate>
      <div className="form-grid">
        {field("name", "Name", { required: true, placeholder: "blog", autoFocus: !project })}
        {field("git_url", "Git URL", { required: true, placeholder: "https://github.com/you/blog.git" })}
        {field("branch", "Branch", { placeholder: "main" })}
        {!project && teams.length > 1 && (
          <div className="field">
            <label htmlFor="project-team">Team</label>
            <select id="project-team" value={team} onChange={(e) => setTeam(e.target.value)}>
              {teams.map((t) => (
                <option key={t.id} value={t.id}>
                  {t.personal ? `${t.name} (personal)` : t.name}
                </option>
              ))}
            </select>
          </div>
        )}
      </div>
      {renamed && (
        <Alert tone="warn">Renaming changes the app's URL: the old address stops answering once you save.</Alert>
      )}
      <fieldset>
        <legend>Build and run</legend>
        <div className="form-grid">
          <div className="field">
            <label htmlFor="build_type">Build type</label>
            <select id="build_type" name="build_type" value={values.build_type} onChange={set("build_type")}>
              <option value="auto">Automatic (the Dockerfile if there is one, else detected)</option>
              <option value="dockerfile">Dockerfile (an app container)</option>
              <option value="static">Static site (files served by shard)</option>
            </select>
          </div>
          {field("dockerfile", "Dockerfile path", { placeholder: "Dockerfile" })}
          {values.build_type === "static"
            ? field("static_dir", "Site directory in the image", { placeholder: "/app/dist" })
            : field("port", "Port", { inputMode: "numeric", placeholder: "from EXPOSE, else 8080" })}
        </div>
      </fieldset>
      {values.build_type === "auto" && (
        <fieldset>
          <legend>Build plan overrides</legend>
          <p className="small muted">
            Empty fields keep what shard detects (see the Build tab). A <code>shard.toml</code> in the repository may set the
            same keys; these win over it.
          </p>
          <div className="form-grid">
            {field("root_dir", "Root directory", { placeholder: "the repository root", hint: "for monorepos, e.g. apps/web" })}
            {field("install_command", "Install command", { placeholder: "detected" })}
            {field("build_command", "Build command", { placeholder: "detected" })}
            {field("start_command", "Start command", { placeholder: "detected", hint: "may use $PORT" })}
            {field("static_dir", "Site directory", { placeholder: "detected", hint: "serve this directory of the build as a site, e.g. dist" })}
          </div>
        </fieldset>
      )}
      <fieldset>
        <legend>Health check and limits</legend>
        <div className="form-grid">
          {field("health_path", "Health path", { placeholder: "/" })}
          {field("health_timeout_secs", "Health timeout (seconds)", { inputMode: "numeric" })}
          {field("memory_limit_mb", "Memory limit (MB)", { inputMode: "numeric", placeholder: "none" })}
          {field("cpu_limit_millis", "CPU limit (millicores)", {
            inputMode: "numeric",
            placeholder: "none",
            hint: "1000 = one core",
          })}
        </div>
      </fieldset>
      {values.build_type !== "static" && (
        <fieldset>
          <legend>Nodes (Docker Swarm)</legend>
          <div className="form-grid">
            {field("replicas", "Replicas", { inputMode: "numeric", placeholder: "1", hint: "copies of the app, spread over nodes" })}
            {field("placement", "Placement labels", {
              placeholder: "group=edge",
              hint: "only nodes with these labels; comma-separated",
            })}
          </div>
        </fieldset>
      )}
      <Alert>{errors.message}</Alert>
      <div className="form-actions">
        {onCancel && (
          <button type="button" className="btn secondary" onClick={onCancel}>
            Cancel
          </button>
        )}
        <button type="submit" className="btn" disabled={busy}>
          {submitLabel}
        </button>
      </div>
    </form>
  );
}
