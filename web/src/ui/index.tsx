// The dashboard's own components: buttons, fields with API errors, badges, dialogs, toasts,
// empty states and relative times. Styling lives in style.css, keyed by these class names.
import {
  createContext,
  ReactNode,
  useCallback,
  useContext,
  useEffect,
  useId,
  useRef,
  useState,
  InputHTMLAttributes,
} from "react";
import { ApiError } from "../api";

/** An error in words: the API's message from its body, or the exception's. */
export function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.message || `request failed (${e.status})`;
  if (e instanceof Error) return e.message;
  return String(e);
}

/** Field-level errors from a 422 (`field` names the input), plus one message for the rest. */
export type FormErrors = { fields: Record<string, string>; message: string };
export const noErrors: FormErrors = { fields: {}, message: "" };
export function formErrors(e: unknown, shown?: string[]): FormErrors {
  if (e instanceof ApiError && e.field) {
    if (!shown || shown.includes(e.field)) return { fields: { [e.field]: e.message }, message: "" };
    return { fields: {}, message: `${e.field}: ${e.message}` };
  }
  return { fields: {}, message: errorText(e) };
}

export function Alert({ tone = "error", children }: { tone?: "error" | "info" | "warn" | "ok"; children: ReactNode }) {
  if (!children) return null;
  return (
    <div className={`alert ${tone}`} role={tone === "error" ? "alert" : "status"}>
      {children}
    </div>
  );
}

type FieldProps = InputHTMLAttributes<HTMLInputElement> & {
  label: string;
  hint?: string;
  error?: string;
};

/** A labelled input whose error (from the API) is announced and tied to it. */
export function Field({ label, hint, error, ...input }: FieldProps) {
  const id = useId();
  const described = [hint && `${id}-hint`, error && `${id}-error`].filter(Boolean).join(" ") || undefined;
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <input id={id} aria-invalid={error ? true : undefined} aria-describedby={described} {...input} />
      {hint && (
        <span className="hint" id={`${id}-hint`}>
          {hint}
        </span>
      )}
      {error && (
        <span className="field-error" id={`${id}-error`} role="alert">
          {error}
        </span>
      )}
    </div>
  );
}

const TONES: Record<string, string> = {
  live: "ok",
  running: "ok",
  succeeded: "ok",
  verified: "ok",
  success: "ok",
  issued: "ok",
  file: "ok",
  failed: "error",
  crashed: "error",
  error: "error",
  cancelled: "warn",
  stopped: "warn",
  pending: "warn",
  queued: "info",
  fetching: "info",
  building: "info",
  starting: "info",
  health_checking: "info",
};

/** A status pill: colour from the status, text always spelled out. */
export function Badge({ status, label, className = "" }: { status: string; label?: string; className?: string }) {
  const tone = TONES[status];
  return (
    <span className={`badge ${tone ? `tone-${tone}` : ""} ${className}`} data-status={status}>
      {label ?? status.replace(/_/g, " ")}
    </span>
  );
}

/** A modal dialog on the native <dialog> (focus trap and Escape come from the browser). */
export function Dialog({
  open,
  onClose,
  title,
  children,
}: {
  open: boolean;
  onClose: () => void;
  title: string;
  children: ReactNode;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) dialog.showModal?.();
    if (!open && dialog.open) dialog.close();
  }, [open]);
  return (
    <dialog ref={ref} aria-labelledby={titleId} onClose={onClose} onCancel={onClose}>
      {open && (
        <>
          <div className="spread">
            <h2 id={titleId}>{title}</h2>
            <button className="btn ghost small" onClick={onClose} aria-label="Close dialog">
              ✕
            </button>
          </div>
          <div className="stack" style={{ marginTop: "var(--space-3)" }}>
            {children}
          </div>
        </>
      )}
    </dialog>
  );
}

/**
 * A destructive action confirmed by typing a name: the button stays disabled until it matches.
 */
export function ConfirmDialog({
  open,
  onClose,
  title,
  word,
  action,
  onConfirm,
  children,
}: {
  open: boolean;
  onClose: () => void;
  title: string;
  word: string;
  action: string;
  onConfirm: () => Promise<unknown>;
  children?: ReactNode;
}) {
  const [typed, setTyped] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (open) {
      setTyped("");
      setError("");
    }
  }, [open]);
  return (
    <Dialog open={open} onClose={onClose} title={title}>
      {children}
      <form
        className="stack"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError("");
          try {
            await onConfirm();
            onClose();
          } catch (err) {
            setError(errorText(err));
          } finally {
            setBusy(false);
          }
        }}
      >
        <Field
          label={`Type ${word} to confirm`}
          value={typed}
          onChange={(e) => setTyped(e.target.value)}
          autoComplete="off"
          autoFocus
        />
        <Alert>{error}</Alert>
        <div className="form-actions">
          <button type="button" className="btn secondary" onClick={onClose}>
            Keep it
          </button>
          <button type="submit" className="btn danger" disabled={typed !== word || busy}>
            {action}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="empty">
      <h2>{title}</h2>
      {children}
    </div>
  );
}

const UNITS: [Intl.RelativeTimeFormatUnit, number][] = [
  ["year", 31536000],
  ["month", 2592000],
  ["day", 86400],
  ["hour", 3600],
  ["minute", 60],
  ["second", 1],
];
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

/** "3 minutes ago", with the exact time on hover. */
export function Ago({ at }: { at: string | null | undefined }) {
  if (!at) return <span className="muted">—</span>;
  const date = new Date(at);
  const seconds = Math.round((date.getTime() - Date.now()) / 1000);
  const [unit, size] = UNITS.find(([, size]) => Math.abs(seconds) >= size) ?? ["second", 1];
  return (
    <time dateTime={at} title={date.toLocaleString()}>
      {relative.format(Math.round(seconds / size), unit)}
    </time>
  );
}

/** "1m 05s" for a span between two times (or until now). */
export function duration(from: string | null | undefined, to?: string | null): string {
  if (!from) return "";
  const ms = (to ? new Date(to).getTime() : Date.now()) - new Date(from).getTime();
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

// Toasts: short messages in a polite live region, gone after a few seconds.
type Toast = { id: number; text: string; tone: "info" | "success" | "error" };
const ToastContext = createContext<(text: string, tone?: Toast["tone"]) => void>(() => undefined);
export const useToast = () => useContext(ToastContext);

export function Toasts({ children }: { children: ReactNode }) {
  const [toasts, setToasts] = useState<Toast[]>([]);
  const next = useRef(1);
  const push = useCallback((text: string, tone: Toast["tone"] = "info") => {
    const id = next.current++;
    setToasts((old) => [...old.slice(-3), { id, text, tone }]);
    setTimeout(() => setToasts((old) => old.filter((t) => t.id !== id)), 6000);
  }, []);
  return (
    <ToastContext.Provider value={push}>
      {children}
      <div className="toasts" aria-live="polite">
        {toasts.map((t) => (
          <div key={t.id} className={`toast ${t.tone}`} data-testid="toast">
            <span className="grow">{t.text}</span>
            <button
              className="btn ghost small"
              aria-label="Dismiss"
              onClick={() => setToasts((old) => old.filter((o) => o.id !== t.id))}
            >
              ✕
            </button>
          </div>
        ))}
      </div>
    </ToastContext.Provider>
  );
}

/** A secret shown once (a new API token, an invitation link): copy it, then dismiss it. */
export function ShownOnce({
  title,
  secret,
  copyLabel,
  testId,
  onDone,
}: {
  title: ReactNode;
  secret: string;
  copyLabel: string;
  testId: string;
  onDone: () => void;
}) {
  return (
    <div className="alert ok stack" role="status" data-testid={testId}>
      <strong>{title}</strong>
      <div className="secret-once">{secret}</div>
      <div className="row">
        <CopyButton text={secret} label={copyLabel} />
        <button className="btn ghost small" onClick={onDone}>
          Done
        </button>
      </div>
    </div>
  );
}

/** Copies text and says so. */
export function CopyButton({ text, label = "Copy" }: { text: string | (() => string); label?: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      className="btn secondary small"
      onClick={async () => {
        const value = typeof text === "function" ? text() : text;
        try {
          await navigator.clipboard.writeText(value);
        } catch {
          // Clipboard refused (no permission, plain HTTP): fall back to a selection copy.
          const area = document.createElement("textarea");
          area.value = value;
          document.body.append(area);
          area.select();
          document.execCommand("copy");
          area.remove();
        }
        setDone(true);
        setTimeout(() => setDone(false), 1500);
      }}
    >
      {done ? "Copied" : label}
    </button>
  );
}

/** 1536 → "1.5 KiB"; "unknown" for anything but a number. */
export function bytes(n: unknown): string {
  if (typeof n !== "number") return "unknown";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}
