// API tokens on the Account page: created with a scope (read, deploy, admin), optionally
// limited to some projects and given an expiry; shown once, copied, revoked.
import { useEffect, useState } from "react";
import * as api from "../api";
import { Ago, Alert, Empty, errorText, Field, formErrors, FormErrors, noErrors, ShownOnce, useToast } from "../ui";

const SCOPES: [string, string][] = [
  ["read", "read — see projects, logs and metrics"],
  ["deploy", "deploy — also deploy, roll back, start, stop"],
  ["admin", "admin — everything you may do"],
];
const EXPIRY: [string, string][] = [
  ["", "never"],
  ["7", "in 7 days"],
  ["30", "in 30 days"],
  ["90", "in 90 days"],
  ["365", "in a year"],
];

export function Tokens() {
  const [tokens, setTokens] = useState<api.ApiToken[] | null>(null);
  const [projects, setProjects] = useState<api.Project[]>([]);
  const [name, setName] = useState("");
  const [scope, setScope] = useState("deploy");
  const [expiry, setExpiry] = useState("");
  const [limited, setLimited] = useState<string[]>([]);
  const [fresh, setFresh] = useState<api.ApiToken | null>(null);
  const [errors, setErrors] = useState<FormErrors>(noErrors);
  const toast = useToast();
  const reload = () => api.listTokens().then(setTokens, (e) => setErrors(formErrors(e)));
  useEffect(() => {
    reload();
    api.listProjects().then(setProjects, () => setProjects([]));
  }, []);
  const projectName = (id: string) => projects.find((p) => p.id === id)?.name ?? id.slice(0, 8);
  return (
    <section className="card stack" aria-label="API tokens">
      <h2>API tokens</h2>
      <p className="small muted">
        For scripts, CI and the <code>shard</code> command line: send one as <code>Authorization: Bearer …</code>. A token acts as you,
        narrowed to its scope and projects.
      </p>
      <form
        className="stack"
        onSubmit={async (e) => {
          e.preventDefault();
          setErrors(noErrors);
          try {
            const body: api.NewToken = { name, scope };
            if (expiry) body.expires_in_days = Number(expiry);
            if (limited.length > 0) body.project_ids = limited;
            setFresh(await api.createToken(body));
            setName("");
            setLimited([]);
            await reload();
          } catch (err) {
            setErrors(formErrors(err));
          }
        }}
      >
        <div className="form-grid">
          <Field label="Token name" value={name} onChange={(e) => setName(e.target.value)} placeholder="ci deploy" error={errors.fields.name} />
          <div className="field">
            <label htmlFor="token-scope">Scope</label>
            <select id="token-scope" value={scope} onChange={(e) => setScope(e.target.value)}>
              {SCOPES.map(([value, label]) => (
                <option key={value} value={value}>
                  {label}
                </option>
              ))}
            </select>
          </div>
          <div className="field">
            <label htmlFor="token-expiry">Expires</label>
            <select id="token-expiry" value={expiry} onChange={(e) => setExpiry(e.target.value)}>
              {EXPIRY.map(([value, label]) => (
                <option key={value} value={value}>
                  {label}
                </option>
              ))}
            </select>
          </div>
        </div>
        {projects.length > 0 && (
          <fieldset className="checks">
            <legend>Only these projects (none ticked: all of yours)</legend>
            {projects.map((p) => (
              <label key={p.id} className="check">
                <input
                  type="checkbox"
                  checked={limited.includes(p.id)}
                  onChange={(e) => setLimited(e.target.checked ? [...limited, p.id] : limited.filter((id) => id !== p.id))}
                />{" "}
                {p.name}
              </label>
            ))}
          </fieldset>
        )}
        <div className="form-actions">
          <button className="btn">Create token</button>
        </div>
      </form>
      <Alert>{errors.message}</Alert>
      {fresh?.token && (
        <ShownOnce
          title="Copy your new token now — it is shown only once."
          secret={fresh.token}
          copyLabel="Copy token"
          testId="new-token"
          onDone={() => setFresh(null)}
        />
      )}
      {tokens && tokens.length === 0 && <Empty title="No tokens" />}
      {tokens && tokens.length > 0 && (
        <table className="table" aria-label="Tokens">
          <thead>
            <tr>
              <th>Name</th>
              <th>Scope</th>
              <th>Projects</th>
              <th>Last used</th>
              <th>Expires</th>
              <th>
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {tokens.map((t) => (
              <tr key={t.id} data-testid={`token-${t.name}`}>
                <td data-label="Name" className="wrap-anywhere">
                  {t.name} <code className="small">{t.prefix}…</code>
                </td>
                <td data-label="Scope">{t.scope}</td>
                <td data-label="Projects" className="wrap-anywhere">
                  {t.project_ids ? t.project_ids.map(projectName).join(", ") : "all"}
                </td>
                <td data-label="Last used">{t.last_used_at ? <Ago at={t.last_used_at} /> : "never"}</td>
                <td data-label="Expires">{t.expires_at ? new Date(t.expires_at).toLocaleDateString() : "never"}</td>
                <td className="actions">
                  <button
                    className="btn danger small"
                    aria-label={`Revoke ${t.name}`}
                    onClick={async () => {
                      try {
                        await api.deleteToken(t.id);
                        toast(`Token ${t.name} revoked`, "success");
                        if (fresh?.id === t.id) setFresh(null);
                        await reload();
                      } catch (e) {
                        setErrors({ fields: {}, message: errorText(e) });
                      }
                    }}
                  >
                    Revoke
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
