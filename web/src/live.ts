// Following topics of the live hub over one WebSocket per follower. A follower remembers the
// last seq it saw and resubscribes with `since` after anything that breaks the stream: a
// network drop (reconnect with exponential backoff), a tab that was hidden long enough for the
// browser to drop the socket, or an access token that expired while the socket was open.
import { currentToken, refresh } from "./api";

export type LiveMessage = {
  topic?: string;
  seq?: number;
  type: string;
  ts?: string;
  stream?: string;
  line?: string;
  status?: string;
  code?: string;
  message?: string;
  [field: string]: unknown;
};

export type Connection = "connecting" | "open" | "reconnecting";

/** What a follower needs from the browser; tests hand in a fake. */
export type SocketFactory = (url: string) => WebSocket;

export type FollowOptions = {
  /** Start after this seq (0: from the beginning). */
  since?: number;
  onState?: (state: Connection) => void;
  socket?: SocketFactory;
};

const MAX_BACKOFF_MS = 15000;

/** The messages inside one received frame: a `batch` unpacked, anything else as is. */
export function unpack(data: string): LiveMessage[] {
  const message = JSON.parse(data) as LiveMessage & { events?: LiveMessage[] };
  if (message.type === "batch" && Array.isArray(message.events)) return message.events;
  return [message];
}

/**
 * Follows one topic, calling `onMessage` once per event in seq order (duplicates after a
 * resubscribe are dropped). Returns a function that stops it.
 */
export function follow(topic: string, onMessage: (m: LiveMessage) => void, options: FollowOptions = {}): () => void {
  let lastSeq = options.since ?? 0;
  let socket: WebSocket | null = null;
  let stopped = false;
  let failures = 0;
  let timer: ReturnType<typeof setTimeout> | null = null;
  const makeSocket = options.socket ?? ((url: string) => new WebSocket(url));
  const setState = (state: Connection) => options.onState?.(state);

  const subscribe = () => {
    socket?.send(JSON.stringify({ op: "auth", token: currentToken() }));
    socket?.send(JSON.stringify({ op: "subscribe", topic, since: lastSeq }));
  };

  const handle = (message: LiveMessage) => {
    if (message.topic === topic && typeof message.seq === "number" && message.type !== "lagged") {
      if (message.seq <= lastSeq) return;
      lastSeq = message.seq;
    }
    onMessage(message);
  };

  const open = async () => {
    timer = null;
    if (stopped) return;
    if (!currentToken()) await refresh();
    if (stopped) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = makeSocket(`${scheme}://${location.host}/api/v1/ws`);
    socket = ws;
    ws.onopen = () => {
      failures = 0;
      setState("open");
      subscribe();
    };
    ws.onmessage = async (event) => {
      for (const message of unpack(String(event.data))) {
        if (message.type === "error" && message.code === "unauthorized" && !message.topic) {
          // The access token expired: refresh it and authenticate this socket again.
          if (await refresh()) subscribe();
          else onMessage(message);
          return;
        }
        handle(message);
      }
    };
    ws.onclose = () => {
      if (socket !== ws) return;
      socket = null;
      if (stopped) return;
      setState("reconnecting");
      schedule();
    };
  };

  const schedule = () => {
    if (timer || stopped) return;
    const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** failures) * (0.75 + Math.random() * 0.5);
    failures += 1;
    timer = setTimeout(open, delay);
  };

  // A tab coming back reconnects at once instead of waiting out the backoff.
  const onVisible = () => {
    if (document.visibilityState === "visible" && !socket && !stopped) {
      if (timer) clearTimeout(timer);
      timer = null;
      failures = 0;
      open();
    }
  };
  document.addEventListener("visibilitychange", onVisible);
  setState("connecting");
  open();
  return () => {
    stopped = true;
    document.removeEventListener("visibilitychange", onVisible);
    if (timer) clearTimeout(timer);
    socket?.close();
  };
}
