// Backups of a database (on the Databases page), of a volume (the project's Volumes tab) or of
// the whole installation (System page: encrypted to age keys, restored with `shard restore`), and
// backup destinations (on the System page).
// A backup is listed with its size, how long it took and whether a restore of it was checked
// (`verified`); a failure shows its step and reason. Restore asks for the database's name.
import { FormEvent, useCallback, useEffect, useState } from "react";
import * as api from "../api";
import { Ago, Alert, Badge, bytes, ConfirmDialog, duration, Empty, errorText, Field, formErrors, FormErrors, noErrors, useToast } from "../ui";

/** What a panel's backups are of: a database, a project's volume, or the installation. */
export type BackupSource = { kind: "database" | "volume" | "instance"; base: string; name: string };

export function BackupsPanel({ source, onRestored }: { source: BackupSource; onRestored: () => void }) {
  const toast = useToast();
  const [backups, setBackups] = useState<api.Backup[] | null>(null);
  const [error, setError] = useState("");
  const [restoring, setRestoring] = useState<{ backup: api.Backup; target: "same" | "new" } | null>(null);
  const reload = useCallback(() => {
    api.listBackups(source.base).then(setBackups, (e) => setError(errorText(e)));
  }, [source.base]);
  useEffect(() => {
    reload();
    const timer = setInterval(reload, 3000);
    return () => clearInterval(timer);
  }, [reload]);
  const act = async (what: string, action: () => Promise<unknown>) => {
    setError("");
    try {
      await action();
      toast(what, "success");
    } catch (e) {
      setError(errorText(e));
    }
    reload();
  };
  return (
    <div className="stack" aria-label={`Backups of ${source.name}`} role="region">
      <div className="row wrap">
        <h3>Backups</h3>
        <button className="btn secondary small" onClick={() => act("Backup started", () => api.takeBackup(source.base))}>
          Back up now
        </button>
      </div>
      {source.kind === "instance" ? (
        <p className="muted small">
          The whole installation (database, key, config, certificates, sites) in one archive, encrypted to the age public keys of the
          schedule: shard keeps no key that opens it. Restore it on any machine with{" "}
          <code>shard restore FILE --data-dir DIR --identity KEYFILE</code>.
        </p>
      ) : (
        <p className="muted small">
          A backup is streamed to a destination with its checksum, then restored into a throwaway copy and checked row by row: only
          then is it verified.
        </p>
      )}
      <Alert>{error}</Alert>
      <Schedule source={source} />
      {backups && backups.length === 0 && <p className="muted small">No backups yet.</p>}
      {backups && backups.length > 0 && (
        <table className="table" aria-label={`Backups of ${source.name} list`}>
          <thead>
            <tr>
              <th>Started</th>
              <th>Status</th>
              <th>Size</th>
              <th>Took</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {backups.map((b) => (
              <tr key={b.id}>
                <td data-label="Started">
                  <Ago at={b.started_at} />
                  {b.key.endsWith("-safety.dump") && <span className="muted small"> (safety)</span>}
                </td>
                <td data-label="Status">
                  <Badge status={b.status} />
                  {b.error && (
                    <span className="small">
                      {" "}
                      {b.step}: {b.error}
                    </span>
                  )}
                </td>
                <td data-label="Size">{b.size_bytes === null ? "" : bytes(b.size_bytes)}</td>
                <td data-label="Took">{b.finished_at ? duration(b.started_at, b.finished_at) : ""}</td>
                <td className="actions">
                  {source.kind === "instance" ? (
                    <code className="small">{b.key}</code>
                  ) : (
                    <>
                  <button className="btn secondary small" disabled={!b.sha256} onClick={() => act("Verification started", () => api.verifyBackup(b.id))}>
                    Verify
                  </button>
                  <button className="btn secondary small" disabled={!b.sha256} onClick={() => setRestoring({ backup: b, target: "same" })}>
                    Restore
                  </button>
                  {source.kind === "database" && (
                    <button className="btn secondary small" disabled={!b.sha256} onClick={() => setRestoring({ backup: b, target: "new" })}>
                      Restore as new
                    </button>
                  )}
                    </>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {restoring && (
        <ConfirmDialog
          open
          onClose={() => setRestoring(null)}
          title={restoring.target === "same" ? `Restore ${source.name} from this backup?` : `Restore this backup into a new database?`}
          word={source.name}
          action="Restore"
          onConfirm={() =>
            api.restoreBackup(restoring.backup.id, restoring.target).then(() => {
              toast("Restore started", "success");
              onRestored();
            })
          }
        >
          {source.kind === "volume" ? (
            <p>
              The backup is unpacked into a new volume that the app uses from its next deployment, which starts now. The files the volume
              holds today are kept as a detached volume (System page) until its retention ends.
            </p>
          ) : restoring.target === "same" ? (
            <p>
              A safety backup is taken first, then the database's other connections are ended and its content replaced in one
              transaction: if the restore fails, nothing changes.
            </p>
          ) : (
            <p>A new database of the same kind and team gets the backup's content; {source.name} is not touched.</p>
          )}
        </ConfirmDialog>
      )}
    </div>
  );
}

/** Optional whole number from a text field: empty is none. */
const count = (text: string) => (text.trim() === "" ? null : Number(text));

/** The database's backup schedule: cron (UTC), destinations (admins see the list), retention. */
function Schedule({ source }: { source: BackupSource }) {
  const toast = useToast();
  const [schedule, setSchedule] = useState<api.BackupSchedule | null>(null);
  const [destinations, setDestinations] = useState<api.Destination[] | null>(null);
  const [cron, setCron] = useState("");
  const [chosen, setChosen] = useState<string[]>([]);
  const [keepLast, setKeepLast] = useState("");
  const [keepDays, setKeepDays] = useState("");
  const [recipients, setRecipients] = useState("");
  const [errors, setErrors] = useState<FormErrors>(noErrors);
  const show = (s: api.BackupSchedule) => {
    setSchedule(s);
    setRecipients((s.recipients ?? []).join("\n"));
    setCron(s.cron ?? "");
    setChosen(s.destination_ids);
    setKeepLast(s.keep_last === null ? "" : String(s.keep_last));
    setKeepDays(s.keep_days === null ? "" : String(s.keep_days));
  };
  useEffect(() => {
    api.getBackupSchedule(source.base).then(show, (e) => setErrors({ ...noErrors, message: errorText(e) }));
    // Only admins may list destinations; others schedule to the first one.
    api.listDestinations().then(setDestinations, () => setDestinations(null));
  }, [source.base]);
  async function save(e: FormEvent) {
    e.preventDefault();
    setErrors(noErrors);
    try {
      const keys = recipients.split(/\s+/).filter((k) => k !== "");
      const body = {
        cron,
        keep_last: count(keepLast),
        keep_days: count(keepDays),
        ...(chosen.length ? { destination_ids: chosen } : {}),
        ...(source.kind === "instance" ? { recipients: keys } : {}),
      };
      show(await api.putBackupSchedule(source.base, body));
      toast("Schedule saved", "success");
    } catch (err) {
      setErrors(formErrors(err, ["cron", "destination_ids", "keep_last", "keep_days", "recipients"]));
    }
  }
  async function remove() {
    setErrors(noErrors);
    try {
      await api.deleteBackupSchedule(source.base);
      show({ cron: null, destination_ids: [], keep_last: null, keep_days: null, next_run_at: null, last_run_at: null, recipients: [] });
      toast("Schedule removed", "success");
    } catch (err) {
      setErrors(formErrors(err, []));
    }
  }
  return (
    <form className="stack" onSubmit={save} noValidate aria-label={`Backup schedule of ${source.name}`}>
      <p className="small muted" data-testid="schedule-state">
        {schedule?.cron && schedule.next_run_at ? (
          <>
            Scheduled <code>{schedule.cron}</code> (UTC); next run <Ago at={schedule.next_run_at} />.
          </>
        ) : (
          "No schedule: backups are taken only when asked."
        )}
      </p>
      <div className="form-grid">
        <Field label="Schedule (cron, UTC)" name="cron" value={cron} placeholder="0 3 * * *" hint="0 3 * * * is daily at 03:00" error={errors.fields.cron} onChange={(e) => setCron(e.target.value)} />
        <Field label="Keep last" name="keep_last" inputMode="numeric" value={keepLast} placeholder="7" error={errors.fields.keep_last} onChange={(e) => setKeepLast(e.target.value)} />
        <Field label="Keep days" name="keep_days" inputMode="numeric" value={keepDays} placeholder="" error={errors.fields.keep_days} onChange={(e) => setKeepDays(e.target.value)} />
        {source.kind === "instance" && (
          <Field
            label="Encrypt to (age public keys)"
            name="recipients"
            value={recipients}
            placeholder="age1…"
            hint="from age-keygen; keep the private key off this server"
            error={errors.fields.recipients}
            onChange={(e) => setRecipients(e.target.value)}
          />
        )}
      </div>
      {destinations && destinations.length > 0 && (
        <fieldset className="row wrap">
          <legend className="small">Destinations (none chosen: the first)</legend>
          {destinations.map((d) => (
            <label key={d.id} className="row small">
              <input
                type="checkbox"
                checked={chosen.includes(d.id)}
                onChange={(e) => setChosen(e.target.checked ? [...chosen, d.id] : chosen.filter((c) => c !== d.id))}
              />
              {d.name}
            </label>
          ))}
        </fieldset>
      )}
      {errors.fields.destination_ids && <Alert>{errors.fields.destination_ids}</Alert>}
      <Alert>{errors.message}</Alert>
      <p className="small muted">Retention after each backup: either rule keeps a backup (neither set: the newest 7); the newest verified one is always kept.</p>
      <div className="row">
        <button type="submit" className="btn secondary small">
          Save schedule
        </button>
        {schedule?.cron && (
          <button type="button" className="btn secondary small" onClick={remove}>
            Remove schedule
          </button>
        )}
      </div>
    </form>
  );
}

const S3_FIELDS = ["endpoint", "bucket", "prefix", "region", "access_key", "secret_key"] as const;
type S3Form = Record<(typeof S3_FIELDS)[number], string>;
const NO_S3: S3Form = { endpoint: "", bucket: "", prefix: "", region: "", access_key: "", secret_key: "" };

/** Where a destination is, in words. */
function where(d: api.Destination) {
  if (d.kind === "local") return d.path ?? "";
  const at = d.endpoint ? ` at ${d.endpoint}` : " (AWS)";
  return `s3://${d.bucket}/${d.prefix ? d.prefix + "/" : ""}${at}`;
}

/** Admin, on the System page: where backups go. */
export function Destinations() {
  const [destinations, setDestinations] = useState<api.Destination[] | null>(null);
  const [name, setName] = useState("");
  const [kind, setKind] = useState<"local" | "s3">("local");
  const [path, setPath] = useState("");
  const [s3, setS3] = useState<S3Form>(NO_S3);
  const [adding, setAdding] = useState(false);
  const [errors, setErrors] = useState<FormErrors>(noErrors);
  const [error, setError] = useState("");
  const reload = () => api.listDestinations().then(setDestinations, (e) => setError(errorText(e)));
  useEffect(() => {
    reload();
  }, []);
  async function add(e: FormEvent) {
    e.preventDefault();
    setErrors(noErrors);
    setAdding(true);
    try {
      await api.addDestination(kind === "local" ? { name, kind, path } : { name, kind, ...s3 });
      setName("");
      setPath("");
      setS3(NO_S3);
      await reload();
    } catch (err) {
      setErrors(formErrors(err, ["name", "path", "kind", ...S3_FIELDS]));
    } finally {
      setAdding(false);
    }
  }
  const s3Field = (field: (typeof S3_FIELDS)[number], label: string, placeholder: string, type = "text") => (
    <Field
      label={label}
      name={field}
      type={type}
      value={s3[field]}
      placeholder={placeholder}
      autoComplete="off"
      error={errors.fields[field]}
      onChange={(e) => setS3({ ...s3, [field]: e.target.value })}
    />
  );
  return (
    <section className="card stack" aria-label="Backup destinations">
      <h2>Backup destinations</h2>
      <p className="small muted">
        A directory on this host, or a bucket of an S3-compatible store (AWS S3, MinIO, R2…). A destination is added only after a test write to it
        worked; an S3 secret key is kept sealed and never shown again.
      </p>
      <form className="form-grid" onSubmit={add} noValidate aria-label="Add a destination">
        <Field label="Name" name="name" value={name} placeholder="local" error={errors.fields.name} onChange={(e) => setName(e.target.value)} />
        <div className="field">
          <label htmlFor="destination-kind">Kind</label>
          <select id="destination-kind" value={kind} onChange={(e) => setKind(e.target.value as "local" | "s3")}>
            <option value="local">Directory on this host</option>
            <option value="s3">S3-compatible bucket</option>
          </select>
        </div>
        {kind === "local" ? (
          <Field label="Directory" name="path" value={path} placeholder="/var/backups/shard" error={errors.fields.path} onChange={(e) => setPath(e.target.value)} />
        ) : (
          <>
            {s3Field("endpoint", "Endpoint (empty for AWS)", "https://s3.example.com")}
            {s3Field("bucket", "Bucket", "backups")}
            {s3Field("prefix", "Key prefix", "shard/prod")}
            {s3Field("region", "Region", "us-east-1")}
            {s3Field("access_key", "Access key id", "AKIA…")}
            {s3Field("secret_key", "Secret key", "", "password")}
          </>
        )}
        <div className="form-actions">
          <button type="submit" className="btn" disabled={adding}>
            {adding ? "Checking…" : "Add destination"}
          </button>
        </div>
      </form>
      <Alert>{errors.message || error}</Alert>
      {destinations && destinations.length === 0 && <Empty title="No destinations">Backups need one.</Empty>}
      {destinations && destinations.length > 0 && (
        <table className="table" aria-label="Destinations">
          <thead>
            <tr>
              <th>Name</th>
              <th>Where</th>
              <th>Added</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {destinations.map((d) => (
              <tr key={d.id}>
                <td data-label="Name">{d.name}</td>
                <td data-label="Where">
                  <code>{where(d)}</code>
                  {d.access_key && <span className="small muted"> key {d.access_key}</span>}
                </td>
                <td data-label="Added">
                  <Ago at={d.created_at} />
                </td>
                <td className="actions">
                  <button className="btn secondary small" onClick={() => api.deleteDestination(d.id).then(reload, (e) => setError(errorText(e)))}>
                    Remove
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
