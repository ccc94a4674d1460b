// The audit log: who did what, to which team and project, from where, and how it ended;
// filtered by team, user, action and time, newest first, a page at a time. Instance admins see
// everything, team owners their teams.
import { FormEvent, useEffect, useState } from "react";
import * as api from "../api";
import { Ago, Alert, Empty, errorText } from "../ui";

const PAGE = 50;

function describe(e: api.AuditEntry): string {
  if (!e.detail) return "";
  return Object.entries(e.detail)
    .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(", ") || "–" : String(v)}`)
    .join("; ");
}

export default function AuditPage() {
  const [teams, setTeams] = useState<api.Team[]>([]);
  const [filter, setFilter] = useState<api.AuditFilter>({});
  const [entries, setEntries] = useState<api.AuditEntry[] | null>(null);
  const [more, setMore] = useState(false);
  const [error, setError] = useState("");
  async function load(f: api.AuditFilter, append: api.AuditEntry[] = []) {
    setError("");
    try {
      const page = await api.listAudit(f, PAGE);
      setEntries([...append, ...page]);
      setMore(page.length === PAGE);
    } catch (e) {
      setError(errorText(e));
      setEntries([]);
    }
  }
  useEffect(() => {
    api.listTeams().then((all) => setTeams(all.filter((t) => t.role === "owner")), () => setTeams([]));
    load({});
  }, []);
  function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const data = new FormData(e.currentTarget);
    const since = String(data.get("since") ?? "");
    const f: api.AuditFilter = {
      team_id: String(data.get("team_id") ?? ""),
      actor: String(data.get("actor") ?? "").trim(),
      action: String(data.get("action") ?? "").trim(),
      since: since ? new Date(since).toISOString() : "",
    };
    setFilter(f);
    load(f);
  }
  return (
    <section className="stack">
      <div className="page-head">
        <h1>Audit log</h1>
      </div>
      <form className="card form-grid" aria-label="Filter the audit log" onSubmit={submit}>
        <div className="field">
          <label htmlFor="audit-team">Team</label>
          <select id="audit-team" name="team_id" defaultValue="">
            <option value="">All I may read</option>
            {teams.map((t) => (
              <option key={t.id} value={t.id}>
                {t.personal ? `${t.name} (personal)` : t.name}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="audit-actor">User</label>
          <input id="audit-actor" name="actor" placeholder="username" />
        </div>
        <div className="field">
          <label htmlFor="audit-action">Action</label>
          <input id="audit-action" name="action" placeholder="deploy, env, member…" />
        </div>
        <div className="field">
          <label htmlFor="audit-since">Since</label>
          <input id="audit-since" name="since" type="date" />
        </div>
        <div className="form-actions">
          <button className="btn">Filter</button>
        </div>
      </form>
      <Alert>{error}</Alert>
      {entries && entries.length === 0 && !error && <Empty title="No entries match" />}
      {entries && entries.length > 0 && (
        <table className="table" aria-label="Audit entries">
          <thead>
            <tr>
              <th>When</th>
              <th>Who</th>
              <th>Action</th>
              <th>Detail</th>
              <th>From</th>
              <th>Result</th>
            </tr>
          </thead>
          <tbody>
            {entries.map((e) => (
              <tr key={e.id} data-testid="audit-entry">
                <td data-label="When">
                  <Ago at={e.at} />
                </td>
                <td data-label="Who">
                  {e.actor ?? "–"}
                  {e.token_id && <span className="muted small"> (token)</span>}
                </td>
                <td data-label="Action">
                  <code>{e.action}</code>
                </td>
                <td data-label="Detail" className="wrap-anywhere small">
                  {describe(e)}
                </td>
                <td data-label="From" className="small">
                  {e.ip ?? ""}
                </td>
                <td data-label="Result">{e.status ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {more && entries && (
        <button className="btn secondary" onClick={() => load({ ...filter, before: String(entries[entries.length - 1].id) }, entries)}>
          Older entries
        </button>
      )}
    </section>
  );
}
