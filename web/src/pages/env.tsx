// The Environment tab: variables with a secret flag (write-only once saved: the API never
// returns a secret's value, and the editor never asks for it), a build flag, a previews flag
// (which secrets pull-request previews get), `.env` paste,
// and a prompt to redeploy after a change.
import { useEffect, useState } from "react";
import * as api from "../api";
import { Alert, Dialog, Empty, errorText } from "../ui";

export type Row = {
  key: string;
  value: string;
  secret: boolean;
  build: boolean;
  /** A secret that pull-request previews get too (plain variables always do). */
  preview?: boolean;
  /** A secret saved before: its value stays on the server unless a new one is typed. */
  stored: boolean;
};

/** Parses `.env` text: KEY=value lines, `export` prefixes, quotes, comments and blank lines. */
export function parseDotenv(text: string): { key: string; value: string }[] {
  const out: { key: string; value: string }[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$/.exec(line);
    if (!match) continue;
    let value = match[2];
    const quote = value[0];
    if ((quote === '"' || quote === "'") && value.lastIndexOf(quote) > 0) {
      value = value.slice(1, value.lastIndexOf(quote));
      if (quote === '"') value = value.replace(/\\n/g, "\n").replace(/\\"/g, '"');
    } else {
      value = value.replace(/\s+#.*$/, "");
    }
    out.push({ key: match[1], value });
  }
  return out;
}

/** Pasted pairs merged into rows: an existing key gets the new value, new keys are appended. */
export function mergeRows(rows: Row[], pairs: { key: string; value: string }[]): Row[] {
  const next = rows.map((r) => ({ ...r }));
  for (const { key, value } of pairs) {
    const found = next.find((r) => r.key === key);
    if (found) found.value = value;
    else next.push({ key, value, secret: false, build: false, stored: false });
  }
  return next;
}

/** The PUT body: a stored secret left empty is sent without a value (the server keeps it). */
export function toInput(rows: Row[]): api.EnvVarInput[] {
  return rows
    .filter((r) => r.key.trim() !== "")
    .map((r) => {
      const input: api.EnvVarInput =
        r.stored && r.value === ""
          ? { key: r.key.trim(), secret: true, build: r.build }
          : { key: r.key.trim(), value: r.value, secret: r.secret, build: r.build };
      if (input.secret && r.preview) input.preview = true;
      return input;
    });
}

const fromApi = (vars: api.EnvVar[]): Row[] =>
  vars.map((v) => ({
    key: v.key,
    value: v.secret ? "" : (v.value ?? ""),
    secret: v.secret,
    build: v.build,
    preview: v.preview ?? false,
    stored: v.secret,
  }));

export function EnvEditor({ project, onDeploy }: { project: api.Project; onDeploy: () => Promise<void> }) {
  const [rows, setRows] = useState<Row[] | null>(null);
  const [error, setError] = useState("");
  const [saved, setSaved] = useState(false);
  const [dirty, setDirty] = useState(false);
  const [pasting, setPasting] = useState(false);
  const [pasted, setPasted] = useState("");
  useEffect(() => {
    api.getEnv(project.id).then((e) => setRows(fromApi(e.vars)), (e) => setError(errorText(e)));
  }, [project.id]);

  if (rows === null) return error ? <Alert>{error}</Alert> : <p className="muted">Loading…</p>;
  const update = (i: number, change: Partial<Row>) => {
    setRows(rows.map((r, j) => (j === i ? { ...r, ...change } : r)));
    setDirty(true);
    setSaved(false);
  };

  return (
    <section aria-label="Environment" className="card stack">
      <div className="spread">
        <h2>Environment variables</h2>
        <div className="row">
          <button className="btn secondary small" onClick={() => setPasting(true)}>
            Paste .env
          </button>
          <button
            className="btn secondary small"
            onClick={() => {
              setRows([...rows, { key: "", value: "", secret: false, build: false, stored: false }]);
              setDirty(true);
            }}
          >
            Add variable
          </button>
        </div>
      </div>
      <p className="small muted">
        Secrets are sealed on the server and never shown again after saving; leave a saved secret empty to keep it.
        Build variables are also passed to the image build. Pull-request previews get the plain variables, and a secret only when
        its Previews box is ticked.
      </p>
      {rows.length === 0 && <Empty title="No variables">The app gets PORT from shard; add your own here.</Empty>}
      {rows.map((r, i) => (
        <div className="env-row" key={i} data-testid="env-row">
          <input aria-label={`Name of variable ${i + 1}`} placeholder="NAME" value={r.key} onChange={(e) => update(i, { key: e.target.value })} />
          <input
            aria-label={`Value of ${r.key || `variable ${i + 1}`}`}
            type={r.secret ? "password" : "text"}
            autoComplete="off"
            placeholder={r.stored ? "•••••• saved secret (type to replace)" : "value"}
            value={r.value}
            onChange={(e) => update(i, { value: e.target.value })}
          />
          <label className="check">
            <input
              type="checkbox"
              checked={r.secret}
              disabled={r.stored && r.value === ""}
              onChange={(e) => update(i, { secret: e.target.checked })}
            />
            Secret
          </label>
          <label className="check">
            <input type="checkbox" checked={r.build} onChange={(e) => update(i, { build: e.target.checked })} />
            Build
          </label>
          <label className="check" title="Pull-request previews get plain variables; a secret only when this is ticked">
            <input type="checkbox" checked={r.secret && (r.preview ?? false)} disabled={!r.secret} onChange={(e) => update(i, { preview: e.target.checked })} />
            Previews
          </label>
          <button className="btn ghost small" aria-label={`Delete ${r.key || `variable ${i + 1}`}`} onClick={() => {
            setRows(rows.filter((_, j) => j !== i));
            setDirty(true);
          }}>
            Delete
          </button>
        </div>
      ))}
      <Alert>{error}</Alert>
      {saved && (
        <Alert tone="info">
          Saved. The running app keeps its old environment until the next deploy.{" "}
          <button className="btn small" onClick={() => onDeploy().then(() => setSaved(false))}>
            Redeploy now
          </button>
        </Alert>
      )}
      <div className="form-actions">
        <button
          className="btn"
          disabled={!dirty}
          onClick={async () => {
            setError("");
            try {
              const result = await api.putEnv(project.id, toInput(rows));
              setRows(fromApi(result.vars));
              setDirty(false);
              setSaved(true);
            } catch (e) {
              setError(errorText(e));
            }
          }}
        >
          Save variables
        </button>
      </div>
      <Dialog open={pasting} onClose={() => setPasting(false)} title="Paste a .env file">
        <label className="field">
          Contents
          <textarea value={pasted} onChange={(e) => setPasted(e.target.value)} placeholder={"DATABASE_URL=postgres://…\nDEBUG=false"} />
        </label>
        <div className="form-actions">
          <button
            className="btn"
            onClick={() => {
              setRows(mergeRows(rows, parseDotenv(pasted)));
              setDirty(true);
              setPasted("");
              setPasting(false);
            }}
          >
            Add to variables
          </button>
        </div>
      </Dialog>
    </section>
  );
}
