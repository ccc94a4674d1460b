// The Build tab: what shard builds for a project without a Dockerfile — its build plan
// (language, framework, versions and every decision with its evidence, the commands), the
// Dockerfile to copy into the repository (eject), and the plan's overrides. Also the one-line
// "Detected …" shown before a first deploy (New project, GitHub import).
import { FormEvent, useEffect, useState } from "react";
import * as api from "../api";
import { Alert, CopyButton, Field, errorText, formErrors, FormErrors, noErrors } from "../ui";
import { PLAN_FIELDS, settingsBody } from "./projectform";

function headline(plan: api.Plan): string {
  if (plan.language === "dockerfile") return "the repository's own Dockerfile";
  const what = [plan.language, plan.framework].filter(Boolean).join(" / ");
  return plan.package_manager ? `${what} (${plan.package_manager})` : what;
}

/** Loads a project's plan; `version` changes make it plan again. */
function usePlan(project: string, version: number) {
  const [plan, setPlan] = useState<api.Plan | null>(null);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(true);
  useEffect(() => {
    let live = true;
    setBusy(true);
    setError("");
    api
      .getPlan(project)
      .then((p) => live && setPlan(p))
      .catch((e) => {
        if (!live) return;
        setPlan(null);
        setError(errorText(e));
      })
      .finally(() => live && setBusy(false));
    return () => {
      live = false;
    };
  }, [project, version]);
  return { plan, error, busy };
}

/** "Detected node / next (npm)" for a project that has not deployed yet. */
export function Detected({ project }: { project: string }) {
  const { plan, error, busy } = usePlan(project, 0);
  if (busy)
    return (
      <p className="muted small" role="status">
        Looking at the repository…
      </p>
    );
  if (error) return <Alert tone="warn">{`Nothing shard can build yet: ${error}`}</Alert>;
  if (!plan) return null;
  return (
    <Alert tone="ok">
      <span data-testid="detected">
        {plan.language === "dockerfile"
          ? "The repository has a Dockerfile: it is built as it is."
          : `Detected ${headline(plan)}: shard builds it without a Dockerfile.`}
      </span>
    </Alert>
  );
}

export function BuildPanel({ project, onSaved }: { project: api.Project; onSaved: (p: api.Project) => void }) {
  const [version, setVersion] = useState(0);
  const { plan, error, busy } = usePlan(project.id, version);
  return (
    <div className="stack">
      {project.build_type !== "auto" && (
        <Alert tone="info">
          This project builds with build type “{project.build_type}”. Choose Automatic in Settings to build from this plan when
          the repository has no Dockerfile.
        </Alert>
      )}
      <div className="row">
        <h2 className="grow">Build plan of {project.branch}</h2>
        <button className="btn secondary small" disabled={busy} onClick={() => setVersion(version + 1)}>
          Plan again
        </button>
      </div>
      {busy && (
        <p className="muted" role="status">
          Fetching and planning…
        </p>
      )}
      {!busy && error && <Alert>{error}</Alert>}
      {!busy && plan && <PlanView plan={plan} />}
      <Overrides project={project} onSaved={(p) => (onSaved(p), setVersion(version + 1))} />
    </div>
  );
}

function PlanView({ plan }: { plan: api.Plan }) {
  const commands: [string, string | null][] = [
    ["Install", plan.install],
    ["Build", plan.build],
    ["Start", plan.start],
  ];
  return (
    <div className="stack" data-testid="plan">
      <div className="card stack">
        <p>
          <strong data-testid="plan-headline">{headline(plan)}</strong>
          {plan.root_dir !== "." && <span className="muted"> in {plan.root_dir}/</span>}
        </p>
        <dl className="facts">
          {plan.versions.map((v) => (
            <div key={v.tool}>
              <dt>{v.tool}</dt>
              <dd>
                {v.version} <span className="muted small">← {v.source}</span>
              </dd>
            </div>
          ))}
          {commands
            .filter(([, c]) => c)
            .map(([label, c]) => (
              <div key={label}>
                <dt>{label}</dt>
                <dd>
                  <code className="wrap-anywhere">{c}</code>
                </dd>
              </div>
            ))}
          {plan.static_dir ? (
            <div>
              <dt>Serves</dt>
              <dd>{plan.static_dir}/ of the build, as a static site (no container runs)</dd>
            </div>
          ) : (
            plan.port && (
              <div>
                <dt>Port</dt>
                <dd>{plan.port}</dd>
              </div>
            )
          )}
        </dl>
      </div>
      <table className="table" aria-label="Decisions">
        <thead>
          <tr>
            <th>Decision</th>
            <th>Because of</th>
          </tr>
        </thead>
        <tbody>
          {plan.decisions.map((d, i) => (
            <tr key={i}>
              <td data-label="Decision">{d.what}</td>
              <td data-label="Because of" className="wrap-anywhere">
                {d.source}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <div className="card stack">
        <div className="row">
          <h3 className="grow">Dockerfile</h3>
          <CopyButton text={plan.dockerfile} label="Copy Dockerfile" />
        </div>
        <pre className="code" aria-label="Dockerfile" tabIndex={0}>
          {plan.dockerfile}
        </pre>
        {plan.language !== "dockerfile" && (
          <p className="small muted">Commit it as your Dockerfile to take the build over (shard then builds it as it is).</p>
        )}
      </div>
    </div>
  );
}

const LABELS: Record<string, [string, string]> = {
  root_dir: ["Root directory", "the repository root"],
  install_command: ["Install command", "detected"],
  build_command: ["Build command", "detected"],
  start_command: ["Start command", "detected"],
  static_dir: ["Site directory", "detected"],
};

function Overrides({ project, onSaved }: { project: api.Project; onSaved: (p: api.Project) => void }) {
  const initial = () => Object.fromEntries(PLAN_FIELDS.map((k) => [k, (project[k as keyof api.Project] as string | null) ?? ""]));
  const [original, setOriginal] = useState<Record<string, string>>(initial);
  const [values, setValues] = useState<Record<string, string>>(initial);
  const [errors, setErrors] = useState<FormErrors>(noErrors);
  const [busy, setBusy] = useState(false);
  if (project.build_type !== "auto") return null;
  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setErrors(noErrors);
    try {
      const saved = await api.updateProject(project.id, settingsBody(values, original));
      const next = Object.fromEntries(PLAN_FIELDS.map((k) => [k, (saved[k as keyof api.Project] as string | null) ?? ""]));
      setOriginal(next);
      setValues(next);
      onSaved(saved);
    } catch (err) {
      setErrors(formErrors(err, PLAN_FIELDS));
    } finally {
      setBusy(false);
    }
  }
  return (
    <form className="card stack" onSubmit={submit} noValidate aria-label="Plan overrides">
      <h3>Overrides</h3>
      <p className="small muted">
        Empty fields keep what shard detects. They win over a <code>shard.toml</code> in the repository.
      </p>
      <div className="form-grid">
        {PLAN_FIELDS.map((k) => (
          <Field
            key={k}
            label={LABELS[k][0]}
            name={k}
            value={values[k]}
            placeholder={LABELS[k][1]}
            error={errors.fields[k]}
            onChange={(e) => setValues({ ...values, [k]: e.target.value })}
          />
        ))}
      </div>
      <Alert>{errors.message}</Alert>
      <div className="form-actions">
        <button type="submit" className="btn" disabled={busy}>
          Save overrides
        </button>
      </div>
    </form>
  );
}
