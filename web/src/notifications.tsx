// The notifications bell: fed by the signed-in user's `user:<id>` topic (deploy succeeded or
// failed). The hub replays the stored ones on subscribe; new ones also pop up as toasts. What
// was read is remembered in this browser as the highest seq seen with the list open.
import { useEffect, useRef, useState } from "react";
import { Link } from "react-router";
import type { User } from "./api";
import { follow, LiveMessage } from "./live";
import { Ago, useToast } from "./ui";

const KEEP = 50;

type Notice = {
  seq: number;
  ts?: string;
  level: string;
  title: string;
  body: string;
  project?: string;
  deployment?: string;
};

export function Bell({ user }: { user: User }) {
  const [notices, setNotices] = useState<Notice[]>([]);
  const [open, setOpen] = useState(false);
  const key = `shard.read.${user.id}`;
  const [readSeq, setReadSeq] = useState(() => Number(localStorage.getItem(key) ?? 0));
  const toast = useToast();
  const mounted = useRef(Date.now());
  const panel = useRef<HTMLDivElement>(null);

  useEffect(
    () =>
      follow(`user:${user.id}`, (m: LiveMessage) => {
        if (m.type !== "notification" || typeof m.seq !== "number") return;
        const notice: Notice = {
          seq: m.seq,
          ts: m.ts,
          level: String(m.level ?? "info"),
          title: String(m.title ?? "notification"),
          body: String(m.body ?? ""),
          project: m.project as string | undefined,
          deployment: m.deployment as string | undefined,
        };
        setNotices((old) => [notice, ...old].slice(0, KEEP));
        // Replayed ones are history; only news gets a toast.
        if (m.ts && new Date(m.ts).getTime() > mounted.current - 2000) {
          toast(notice.title, notice.level === "error" ? "error" : notice.level === "success" ? "success" : "info");
        }
      }),
    [user.id],
  );

  useEffect(() => {
    if (!open) return;
    const close = (e: MouseEvent | KeyboardEvent) => {
      if (e instanceof KeyboardEvent ? e.key === "Escape" : !panel.current?.parentElement?.contains(e.target as Node))
        setOpen(false);
    };
    document.addEventListener("mousedown", close);
    document.addEventListener("keydown", close);
    return () => {
      document.removeEventListener("mousedown", close);
      document.removeEventListener("keydown", close);
    };
  }, [open]);

  const unread = notices.filter((n) => n.seq > readSeq).length;
  const markRead = () => {
    const top = notices[0]?.seq ?? readSeq;
    localStorage.setItem(key, String(top));
    setReadSeq(top);
  };

  return (
    <div>
      <button
        className="btn ghost small icon-btn"
        aria-label={unread ? `Notifications, ${unread} unread` : "Notifications"}
        aria-expanded={open}
        onClick={() => setOpen(!open)}
        data-testid="bell"
      >
        <svg width="18" height="18" viewBox="0 0 24 24" aria-hidden="true" fill="none" stroke="currentColor" strokeWidth="2">
          <path d="M6 8a6 6 0 1 1 12 0c0 7 3 9 3 9H3s3-2 3-9M10 21a2 2 0 0 0 4 0" />
        </svg>
        {unread > 0 && <span className="bell-count">{unread}</span>}
      </button>
      {open && (
        <div className="card popover" ref={panel} role="region" aria-label="Notifications">
          <div className="spread">
            <h2>Notifications</h2>
            <button className="btn secondary small" onClick={markRead} disabled={!unread}>
              Mark all read
            </button>
          </div>
          {notices.length === 0 && <p className="muted small">Nothing yet. Deploy results show up here.</p>}
          {notices.map((n) => (
            <div key={n.seq} className={`notice ${n.seq > readSeq ? "unread" : ""}`}>
              <div className="spread">
                <span className={n.level === "error" ? "badge tone-error plain" : "badge tone-ok plain"}>{n.level}</span>
                <span className="small muted">
                  <Ago at={n.ts} />
                </span>
              </div>
              {n.project && n.deployment ? (
                <Link to={`/projects/${n.project}/deployments/${n.deployment}`} onClick={() => setOpen(false)}>
                  {n.title}
                </Link>
              ) : (
                <span>{n.title}</span>
              )}
              {n.body && <div className="small muted wrap-anywhere">{n.body}</div>}
            </div>
          ))}
        </div>
      )}
    </div>
  );
}
