import { useEffect, useState } from "react";
import * as api from "./api";
import { Alert, Badge, Empty, errorText } from "./ui";

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
      setError(errorText(e));
    } finally {
      setBusy(null);
      await reload();
    }
  };

  return (
    <section aria-label="Domains" className="card stack">
      <h2>Domains</h2>
      <form
        className="row"
        onSubmit={(e) => {
          e.preventDefault();
          run("add", () => api.addDomain(project, name).then(() => setName("")));
        }}
      >
        <label className="field grow">
          Domain <input value={name} onChange={(e) => setName(e.target.value)} placeholder="app.example.com" required />
        </label>
        <button className="btn" style={{ alignSelf: "end" }} disabled={busy === "add"}>
          Add domain
        </button>
      </form>
      <Alert>{error}</Alert>
      {domains.length === 0 && <Empty title="No custom domains">The app answers at its own URL above.</Empty>}
      {domains.map((d) => (
        <div key={d.domain} className="stack" style={{ borderTop: "1px solid var(--border)", paddingTop: "var(--space-3)" }} data-testid={`domain-${d.domain}`}>
          <h3>
            <a href={d.url} target="_blank" rel="noreferrer">
              {d.domain}
            </a>{" "}
            <Badge status={d.status} />{" "}
            <Badge
              status={d.certificate.status}
              label={`certificate: ${d.certificate.status}${d.certificate.expires_at ? ` until ${new Date(d.certificate.expires_at).toLocaleDateString()}` : ""}`}
            />
          </h3>
          {d.status !== "verified" && (
            <>
              <p>Set one of these DNS records, then verify:</p>
              <table className="table">
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
                      <td data-label="Type">{r.type}</td>
                      <td data-label="Name" className="wrap-anywhere">
                        <code>{r.name}</code>
                      </td>
                      <td data-label="Value" className="wrap-anywhere">
                        <code>{r.value}</code>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
              {d.message && <p className="muted">{d.message}</p>}
            </>
          )}
          {d.certificate.message && <Alert>{d.certificate.message}</Alert>}
          <button className="btn secondary small" disabled={busy === d.domain} onClick={() => run(d.domain, () => api.verifyDomain(project, d.domain))}>
            Verify
          </button>{" "}
          <button className="btn danger small" onClick={() => run(d.domain, () => api.deleteDomain(project, d.domain))}>
            Remove
          </button>
        </div>
      ))}
    </section>
  );
}
