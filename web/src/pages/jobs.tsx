// The Jobs tab: one-off commands (run in a new container from the live image, output live,
// exit code kept) and scheduled jobs (cron in UTC, "Run now", each run's output and exit
// code). A command is typed as words, split like a shell splits them (quotes group words),
// but no shell runs it: `sh -c '…'` for pipes and variables.
import { FormEvent, useEffect, useMemo, useState } from "react";
import * as api from "../api";
import { follow } from "../live";
import { LogStore, LogView } from "../logview";
import { Ago, Alert, Badge, ConfirmDialog, Empty, errorText, Field, formErrors, FormErrors, noErrors, useToast } from "../ui";

/** Splits a command line into words: whitespace separates, '…' and "…" group, \ escapes. */
export function splitWords(line: string): string[] | null {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = null;
      else if (c === "\\" && quote === '"' && i + 1 < line.length) word += line[++i];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === "\\" && i + 1 < line.length) {
      word += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (quote) return null;
  if (inWord) words.push(word);
  return words;
}

const commandText = (words: string[]) => words.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)).join(" ");

function exitText(run: api.Run): string {
  if (run.status === "running") return "running";
  const code = run.exit_code === null ? "" : `exit ${run.exit_code}`;
  return [code, run.error && run.error !== `exited with code ${run.exit_code}` ? run.error : ""].filter(Boolean).join(" · ");
}

/** A run's output, live until its status arrives. */
function RunOutput({ project, run, onEnded }: { project: string; run: api.Run; onEnded?: () => void }) {
  const store = useMemo(() => new LogStore(50_000), [run.id]);
  const [ended, setEnded] = useState<api.Run | null>(run.status === "running" ? null : run);
  useEffect(
    () =>
      follow(`run:${run.id}`, (m) => {
        if (m.type === "status") {
          api.getRun(project, run.id).then(setEnded, () => undefined);
          onEnded?.();
        } else store.push(m);
      }),
    [run.id],
  );
  const shown = ended ?? run;
  return (
    <section className="stack" aria-label={`Output of run ${run.id.slice(-8)}`}>
      <p className="row small">
        <code className="wrap-anywhere">{commandText(run.command)}</code>
        <Badge status={shown.status} />
        <span data-testid="run-exit">{exitText(shown)}</span>
      </p>
      <LogView store={store} name={`run-${run.id}.log`} height={320} emptyText={shown.status === "running" ? "Waiting for output…" : "No output."} />
    </section>
  );
}

function RunsTable({ project, runs, label, onShow }: { project: string; runs: api.Run[]; label: string; onShow: (r: api.Run) => void }) {
  const toast = useToast();
  return (
    <table className="table" aria-label={label}>
      <thead>
        <tr>
          <th>Status</th>
          <th>Command</th>
          <th>Started</th>
          <th>Result</th>
          <th>
            <span className="sr-only">Actions</span>
          </th>
        </tr>
      </thead>
      <tbody>
        {runs.map((r) => (
          <tr key={r.id} data-testid="run">
            <td data-label="Status">
              <Badge status={r.status} />
            </td>
            <td data-label="Command" className="wrap-anywhere">
              <code>{commandText(r.command)}</code>
            </td>
            <td data-label="Started">
              <Ago at={r.started_at} />
            </td>
            <td data-label="Result">
              {exitText(r)}
              {r.duration_ms !== null && <span className="muted"> · {(r.duration_ms / 1000).toFixed(1)} s</span>}
            </td>
            <td className="actions">
              <button className="btn secondary small" onClick={() => onShow(r)}>
                Output
              </button>
              {r.status === "running" && (
                <button
                  className="btn danger small"
                  onClick={() => api.cancelRun(project, r.id).then(() => toast("Run cancelled", "success"), (e) => toast(errorText(e), "error"))}
                >
                  Cancel
                </button>
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function JobsPanel({ project }: { project: api.Project }) {
  const [runs, setRuns] = useState<api.Run[] | null>(null);
  const [jobs, setJobs] = useState<api.Job[] | null>(null);
  const [shown, setShown] = useState<api.Run | null>(null);
  const [line, setLine] = useState("");
  const [runError, setRunError] = useState("");
  const [job, setJob] = useState({ name: "", schedule: "", command: "", timeout_secs: "", concurrency: "forbid" });
  const [jobErrors, setJobErrors] = useState<FormErrors>(noErrors);
  const [error, setError] = useState("");
  const [openJob, setOpenJob] = useState<string | null>(null);
  const [jobRuns, setJobRuns] = useState<api.Run[]>([]);
  const [deleting, setDeleting] = useState<api.Job | null>(null);
  const toast = useToast();

  const reload = async () => {
    try {
      const [r, j] = await Promise.all([api.listRuns(project.id), api.listJobs(project.id)]);
      setRuns(r);
      setJobs(j);
      if (openJob) setJobRuns(await api.jobRuns(project.id, openJob));
    } catch (e) {
      setError(errorText(e));
    }
  };
  useEffect(() => {
    reload();
  }, [project.id, openJob]);

  async function run(e: FormEvent) {
    e.preventDefault();
    setRunError("");
    const words = splitWords(line);
    if (!words || words.length === 0) {
      setRunError(words ? "Type a command, e.g. ls -l /" : "A quote is not closed.");
      return;
    }
    try {
      const started = await api.startRun(project.id, words);
      const record = await api.getRun(project.id, started.id);
      setShown(record);
      await reload();
    } catch (err) {
      setRunError(errorText(err));
    }
  }

  async function saveJob(e: FormEvent) {
    e.preventDefault();
    setJobErrors(noErrors);
    const words = splitWords(job.command);
    if (!words || words.length === 0) {
      setJobErrors({ fields: { command: words ? "Type the command to run." : "A quote is not closed." }, message: "" });
      return;
    }
    try {
      await api.putJob(project.id, {
        name: job.name.trim(),
        schedule: job.schedule.trim(),
        command: words,
        timeout_secs: job.timeout_secs ? Number(job.timeout_secs) : undefined,
        concurrency: job.concurrency as "forbid" | "allow",
      });
      toast(`Job ${job.name} saved`, "success");
      setJob({ name: "", schedule: "", command: "", timeout_secs: "", concurrency: "forbid" });
      await reload();
    } catch (err) {
      setJobErrors(formErrors(err, ["name", "schedule", "command", "timeout_secs", "concurrency"]));
    }
  }

  const live = project.live_deployment !== null;
  return (
    <section className="stack" aria-label="Jobs and commands">
      <div className="card stack">
        <h2>Run a command</h2>
        <p className="small muted">
          Runs once in a new container from the live image, with the app's environment, volumes and limits — for migrations, a seed
          script, a one-off task. No shell runs it: use <code>sh -c '…'</code> for pipes and variables.
        </p>
        {!live && <Alert tone="info">Deploy the project first: commands run from its live image.</Alert>}
        <form className="row" onSubmit={run} aria-label="Run a command">
          <div className="grow">
            <Field label="Command" name="command" value={line} placeholder="./manage.py migrate" onChange={(e) => setLine(e.target.value)} />
          </div>
          <button type="submit" className="btn" disabled={!live}>
            Run
          </button>
        </form>
        <Alert>{runError}</Alert>
        {shown && <RunOutput key={shown.id} project={project.id} run={shown} onEnded={reload} />}
      </div>
      <Alert>{error}</Alert>
      {runs && runs.length > 0 && <RunsTable project={project.id} runs={runs.slice(0, 20)} label="Recent commands" onShow={setShown} />}

      <div className="card stack">
        <h2>Scheduled jobs</h2>
        <p className="small muted">
          Cron in UTC: <code>*/15 * * * *</code> every 15 minutes, <code>0 3 * * *</code> daily at 03:00, <code>@hourly</code>. Each run is a new
          container like a command above; a failed run notifies the channels listening to <code>job.failed</code>. "Forbid" skips a run
          while the previous one still runs.
        </p>
        <form className="form-grid" onSubmit={saveJob} noValidate aria-label="Add a job">
          <Field label="Name" name="name" value={job.name} placeholder="nightly-report" error={jobErrors.fields.name} onChange={(e) => setJob({ ...job, name: e.target.value })} />
          <Field
            label="Schedule"
            name="schedule"
            value={job.schedule}
            placeholder="0 3 * * *"
            error={jobErrors.fields.schedule}
            onChange={(e) => setJob({ ...job, schedule: e.target.value })}
          />
          <Field
            label="Job command"
            name="job-command"
            value={job.command}
            placeholder="./report --email"
            error={jobErrors.fields.command}
            onChange={(e) => setJob({ ...job, command: e.target.value })}
          />
          <Field
            label="Timeout (seconds)"
            name="timeout_secs"
            inputMode="numeric"
            value={job.timeout_secs}
            placeholder="3600"
            error={jobErrors.fields.timeout_secs}
            onChange={(e) => setJob({ ...job, timeout_secs: e.target.value })}
          />
          <div className="field">
            <label htmlFor="job-concurrency">Overlapping runs</label>
            <select id="job-concurrency" value={job.concurrency} onChange={(e) => setJob({ ...job, concurrency: e.target.value })}>
              <option value="forbid">Forbid (skip while running)</option>
              <option value="allow">Allow</option>
            </select>
          </div>
          <div className="form-actions">
            <button type="submit" className="btn">
              Save job
            </button>
          </div>
        </form>
        <Alert>{jobErrors.message}</Alert>
      </div>
      {jobs && jobs.length === 0 && <Empty title="No scheduled jobs">Add one above; it runs from the live image on its schedule.</Empty>}
      {jobs && jobs.length > 0 && (
        <table className="table" aria-label="Scheduled jobs">
          <thead>
            <tr>
              <th>Name</th>
              <th>Schedule</th>
              <th>Command</th>
              <th>Last run</th>
              <th>Next run</th>
              <th>
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {jobs.map((j) => (
              <tr key={j.id} data-testid="job">
                <td data-label="Name">{j.name}</td>
                <td data-label="Schedule">
                  <code>{j.schedule}</code>
                </td>
                <td data-label="Command" className="wrap-anywhere">
                  <code>{commandText(j.command)}</code>
                </td>
                <td data-label="Last run">
                  {j.last_run ? (
                    <>
                      <Badge status={j.last_run.status} /> <Ago at={j.last_run.started_at} />
                    </>
                  ) : (
                    <span className="muted">never</span>
                  )}
                </td>
                <td data-label="Next run">
                  <Ago at={j.next_run_at} />
                </td>
                <td className="actions">
                  <button
                    className="btn secondary small"
                    onClick={() =>
                      api.runJob(project.id, j.name).then(
                        async (s) => {
                          toast(`${j.name} started`, "success");
                          setOpenJob(j.name);
                          setShown(await api.getRun(project.id, s.id));
                          await reload();
                        },
                        (e) => toast(errorText(e), "error"),
                      )
                    }
                  >
                    Run now
                  </button>
                  <button className="btn secondary small" aria-expanded={openJob === j.name} onClick={() => setOpenJob(openJob === j.name ? null : j.name)}>
                    Runs
                  </button>
                  <button className="btn danger small" onClick={() => setDeleting(j)}>
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {openJob && (
        <section className="stack" aria-label={`Runs of ${openJob}`}>
          <h3>Runs of {openJob}</h3>
          {jobRuns.length === 0 ? <p className="muted">No runs yet.</p> : <RunsTable project={project.id} runs={jobRuns} label={`Runs of ${openJob}`} onShow={setShown} />}
        </section>
      )}
      <ConfirmDialog
        open={deleting !== null}
        onClose={() => setDeleting(null)}
        title={`Delete job ${deleting?.name ?? ""}?`}
        word={deleting?.name ?? ""}
        action="Delete job"
        onConfirm={async () => {
          const name = deleting?.name ?? "";
          await api.deleteJob(project.id, name);
          if (openJob === name) setOpenJob(null);
          toast(`Job ${name} deleted`, "success");
          await reload();
        }}
      >
        <p>Its runs and their output go too. A run in progress is stopped.</p>
      </ConfirmDialog>
    </section>
  );
}
