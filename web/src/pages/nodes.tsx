// The Docker Swarm nodes apps run on, read every 3 s: state, availability, labels, replicas.
// Admins change a node's labels and availability here, read the command that adds a node and
// set the credentials deploys use with the registry.
import { FormEvent, useCallback, useEffect, useState } from "react";
import * as api from "../api";
import { Ago, Alert, Badge, CopyButton, Empty, errorText, useToast } from "../ui";

const REFRESH_MS = 3000;

function memory(bytes: number): string {
  return bytes > 0 ? `${(bytes / 1024 ** 3).toFixed(1)} GiB` : "unknown";
}

function JoinCard() {
  const [join, setJoin] = useState<api.NodeJoin | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    api.nodeJoin().then(setJoin, (e) => setError(errorText(e)));
  }, []);
  if (error) return <Alert>{error}</Alert>;
  if (!join) return null;
  return (
    <section className="card stack" aria-label="Add a node">
      {join.warnings.map((warning) => (
        <Alert key={warning} tone="warn">
          <span data-testid="runtime-warning">{warning}</span>
        </Alert>
      ))}
      <h2>Add a node</h2>
      <ol className="stack small" data-testid="join-steps">
        {join.steps.map((step) => (
          <li key={step}>{step}</li>
        ))}
      </ol>
      {join.command ? (
        <div className="stack">
          <pre className="command" data-testid="join-command">
            {join.command}
          </pre>
          <div>
            <CopyButton text={join.command} label="Copy join command" />
          </div>
          <p className="small muted">The command holds the swarm's join token: share it only with machines you trust.</p>
        </div>
      ) : (
        <p className="muted small">No join command until this machine manages a swarm.</p>
      )}
    </section>
  );
}

/** Where images travel (registry.url) and the credentials deploys push and pull with. */
function RegistryCard() {
  const toast = useToast();
  const [shown, setShown] = useState<api.Registry | null>(null);
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    api.registry().then(setShown, (e) => setError(errorText(e)));
  }, []);
  async function save(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError("");
    try {
      setShown(await api.setRegistryCredentials(username, password));
      setPassword("");
      toast("registry credentials saved");
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  }
  async function forget() {
    try {
      await api.clearRegistryCredentials();
      setShown((s) => (s ? { ...s, username: null, password_set: false } : s));
      toast("registry credentials removed");
    } catch (err) {
      toast(errorText(err), "error");
    }
  }
  if (!shown) return error ? <Alert>{error}</Alert> : null;
  return (
    <section className="card stack" aria-label="Registry">
      <h2>Registry</h2>
      <p className="small" data-testid="registry-state">
        {shown.url ? (
          <>
            Images travel through <code>{shown.url}</code>
            {shown.ca_file && <> (its certificate checked against {shown.ca_file})</>}.{" "}
          </>
        ) : (
          <>No registry.url is set: Swarm deploys need one every node can reach. </>
        )}
        {shown.password_set ? (
          <>Deploys sign in as <strong>{shown.username}</strong>; the password is stored sealed and never shown.</>
        ) : (
          <>No credentials: the registry is reached without signing in.</>
        )}
      </p>
      <form className="stack" onSubmit={save}>
        <div className="field">
          <label htmlFor="registry-user">Registry user</label>
          <input id="registry-user" value={username} autoComplete="off" onChange={(e) => setUsername(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor="registry-password">Registry password</label>
          <input
            id="registry-password"
            type="password"
            value={password}
            autoComplete="new-password"
            onChange={(e) => setPassword(e.target.value)}
          />
        </div>
        {error && (
          <p className="field-error" role="alert">
            {error}
          </p>
        )}
        <div className="row">
          <button className="btn" disabled={busy}>
            Save credentials
          </button>
          {shown.password_set && (
            <button type="button" className="btn secondary" onClick={forget}>
              Forget credentials
            </button>
          )}
        </div>
      </form>
    </section>
  );
}

function LabelsEditor({ node, onSaved }: { node: api.SwarmNode; onSaved: (n: api.SwarmNode) => void }) {
  const [text, setText] = useState(api.labelsText(node.labels));
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const id = `labels-${node.id}`;
  async function save(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError("");
    try {
      onSaved(await api.updateNode(node.id, { labels: api.parseLabels(text) }));
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  }
  return (
    <form className="inline-form" onSubmit={save}>
      <label htmlFor={id} className="sr-only">
        Labels of {node.hostname} ({node.address})
      </label>
      <input
        id={id}
        value={text}
        onChange={(e) => setText(e.target.value)}
        placeholder="group=edge"
        aria-invalid={error ? true : undefined}
      />
      <button className="btn secondary small" disabled={busy}>
        Save labels
      </button>
      {error && (
        <span className="field-error" role="alert">
          {error}
        </span>
      )}
    </form>
  );
}

export default function NodesPage({ admin }: { admin: boolean }) {
  const toast = useToast();
  const [nodes, setNodes] = useState<api.SwarmNode[] | null>(null);
  const [error, setError] = useState("");
  const load = useCallback(
    () =>
      api.nodes().then(
        (list) => {
          setNodes(list);
          setError("");
        },
        (e) => setError(errorText(e)),
      ),
    [],
  );
  useEffect(() => {
    load();
    const timer = setInterval(load, REFRESH_MS);
    return () => clearInterval(timer);
  }, [load]);

  const saved = (node: api.SwarmNode, what: string) => {
    setNodes((list) => list?.map((n) => (n.id === node.id ? node : n)) ?? null);
    toast(`${node.hostname} (${node.address}): ${what}`);
  };

  return (
    <section className="stack">
      <div className="page-head">
        <h1>Nodes</h1>
        <span className="small muted">refreshed every {REFRESH_MS / 1000} s</span>
      </div>
      {error && !nodes && (
        <Empty title="No swarm nodes">
          <p>{error}</p>
        </Empty>
      )}
      {error && nodes && <Alert tone="warn">{error}</Alert>}
      {nodes && (
        <table className="table" aria-label="Nodes">
          <thead>
            <tr>
              <th>Node</th>
              <th>Address</th>
              <th>State</th>
              <th>Availability</th>
              <th>Labels</th>
              <th>Replicas</th>
              <th>Resources</th>
              <th>Last seen</th>
            </tr>
          </thead>
          <tbody>
            {nodes.map((n) => (
              <tr key={n.id} data-testid="node" data-address={n.address}>
                <td data-label="Node">
                  {n.hostname} <span className="muted small">{n.id.slice(0, 10)}</span>{" "}
                  {n.this_machine && <span className="muted small">(this machine)</span>}{" "}
                  {n.role === "manager" && <span className="muted small">manager</span>}
                </td>
                <td data-label="Address">{n.address || "unknown"}</td>
                <td data-label="State">
                  <Badge status={n.state === "ready" ? "running" : "failed"} label={n.state} />
                </td>
                <td data-label="Availability">
                  {admin ? (
                    <select
                      aria-label={`Availability of ${n.hostname} (${n.address})`}
                      value={n.availability}
                      onChange={async (e) => {
                        const availability = e.target.value;
                        try {
                          saved(await api.updateNode(n.id, { availability }), `availability ${availability}`);
                        } catch (err) {
                          toast(errorText(err), "error");
                        }
                      }}
                    >
                      <option value="active">active</option>
                      <option value="pause">pause (no new replicas)</option>
                      <option value="drain">drain (move replicas away)</option>
                    </select>
                  ) : (
                    n.availability
                  )}
                </td>
                <td data-label="Labels">
                  {admin ? (
                    <LabelsEditor key={api.labelsText(n.labels)} node={n} onSaved={(node) => saved(node, "labels saved")} />
                  ) : (
                    api.labelsText(n.labels) || <span className="muted">none</span>
                  )}
                </td>
                <td data-label="Replicas">{n.replicas}</td>
                <td data-label="Resources">
                  {n.cpus} CPU, {memory(n.memory_bytes)}
                </td>
                <td data-label="Last seen">
                  <Ago at={n.last_seen} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {admin && <JoinCard />}
      {admin && <RegistryCard />}
    </section>
  );
}
