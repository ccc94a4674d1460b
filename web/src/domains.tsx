import { useEffect, useState } from "react";
import * as api from "./api";

/** A project's custom domains: add one, see what to set in DNS, verify, certificate state. */
export function Domains({ project }: { project: string }) {
  const [domains, setDomains] = useState<api.Domain[]>([]);
  const [name, setName] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState<string | null>(null);

  const reload = () => api.listDomains(project).then(setDomains, (e) => setError(e.message));
  useEffect(() => {
    reload();
  }, [project]);

  const run = async (key: string, action: () => Promise<unknown>) => {
    setError("");
    setBusy(key);
    try {
      await action();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(null);
      await reload();
    }
  };

  return (
    <section aria-label="Domains">
      <h2>Domains</h2>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          run("add", () => api.addDomain(project, name).then(() => setName("")));
        }}
      >
        <label>
          Domain <input value={name} onChange={(e) => setName(e.target.value)} placeholder="app.example.com" required />
        </label>{" "}
        <button disabled={busy === "add"}>Add domain</button>
      </form>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {domains.length === 0 && <p className="muted">No custom domains. The app answers at its own URL above.</p>}
      {domains.map((d) => (
        <div key={d.domain} className="domain" data-testid={`domain-${d.domain}`}>
          <h3>
            <a href={d.url} target="_blank" rel="noreferrer">
              {d.domain}
            </a>{" "}
            <span className={`badge ${d.status}`}>{d.status}</span>{" "}
            <span className="badge" title={d.certificate.message ?? ""}>
              certificate: {d.certificate.status}
              {d.certificate.expires_at && ` until ${new Date(d.certificate.expires_at).toLocaleDateString()}`}
            </span>
          </h3>
          {d.status !== "verified" && (
            <>
              <p>Set one of these DNS records, then verify:</p>
              <table>
                <thead>
                  <tr>
                    <th>Type</th>
                    <th>Name</th>
                    <th>Value</th>
                  </tr>
                </thead>
                <tbody>
                  {[d.routing, d.verification].map((r) => (
                    <tr key={r.type}>
                      <td>{r.type}</td>
                      <td>
                        <code>{r.name}</code>
                      </td>
                      <td>
                        <code>{r.value}</code>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
              {d.message && <p className="muted">{d.message}</p>}
            </>
          )}
          {d.certificate.message && <p className="error">{d.certificate.message}</p>}
          <button disabled={busy === d.domain} onClick={() => run(d.domain, () => api.verifyDomain(project, d.domain))}>
            Verify
          </button>{" "}
          <button className="danger" onClick={() => run(d.domain, () => api.deleteDomain(project, d.domain))}>
            Remove
          </button>
        </div>
      ))}
    </section>
  );
}
