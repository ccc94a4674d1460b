// A small client for shard's REST API. The access token lives in memory only; the refresh
// token is an HttpOnly cookie the browser sends to /api/v1/auth/refresh.

export type User = { id: string; username: string; role: string; created_at: string };
export type Project = {
  id: string;
  name: string;
  slug: string;
  git_url: string;
  branch: string;
  url: string;
  status: string;
  /** How the app runs now: not_deployed, running, stopped or crashed. */
  runtime: string;
  live_deployment: string | null;
  created_at: string;
};
type TokenResponse = { access_token: string; expires_in: number; user: User };

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public field?: string,
  ) {
    super(message);
  }
}

let accessToken: string | null = null;

async function request<T>(method: string, path: string, body?: unknown, retry = true): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (accessToken) headers["Authorization"] = `Bearer ${accessToken}`;
  const res = await fetch(`/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  if (res.status === 401 && retry && !path.startsWith("/auth/")) {
    if (await refresh()) return request<T>(method, path, body, false);
  }
  if (!res.ok) {
    const data = await res.json().catch(() => null);
    const err = data?.error ?? { code: "http_error", message: res.statusText };
    throw new ApiError(res.status, err.code, err.message, err.field);
  }
  return res.status === 204 ? (undefined as T) : ((await res.json()) as T);
}

let refreshing: Promise<User | null> | null = null;

/**
 * Trades the refresh cookie for a new access token; null when signed out.
 *
 * Refresh tokens are single-use and a reused one signs the whole login out, so refreshes never
 * overlap: calls in this tab share one request, and tabs take turns through a Web Lock (the
 * next tab then presents the cookie the previous one received).
 */
export function refresh(): Promise<User | null> {
  if (!refreshing) {
    const run = async (): Promise<User | null> => {
      try {
        const data = await request<TokenResponse>("POST", "/auth/refresh", undefined, false);
        accessToken = data.access_token;
        return data.user;
      } catch {
        accessToken = null;
        return null;
      }
    };
    const locked: Promise<User | null> = navigator.locks
      ? navigator.locks.request("shard-refresh", run).then((user) => user)
      : run();
    refreshing = locked.finally(() => {
      refreshing = null;
    });
    return refreshing;
  }
  return refreshing;
}

export async function login(username: string, password: string): Promise<User> {
  const data = await request<TokenResponse>("POST", "/auth/login", { username, password });
  accessToken = data.access_token;
  return data.user;
}

export async function setup(token: string, username: string, password: string): Promise<User> {
  const data = await request<TokenResponse>("POST", "/auth/setup", { token, username, password });
  accessToken = data.access_token;
  return data.user;
}

export async function logout(): Promise<void> {
  await request<void>("POST", "/auth/logout").catch(() => undefined);
  accessToken = null;
}

export const listProjects = () => request<Project[]>("GET", "/projects");
export const createProject = (p: { name: string; git_url: string; branch: string }) =>
  request<Project>("POST", "/projects", p);
export const deleteProject = (id: string) => request<void>("DELETE", `/projects/${id}`);

export type Deployment = {
  id: string;
  project_id: string;
  status: string;
  trigger: string;
  commit_sha: string | null;
  commit_message: string | null;
  error: string | null;
  error_step: string | null;
  created_at: string;
  finished_at: string | null;
};

export const getProject = (id: string) => request<Project>("GET", `/projects/${id}`);
export const listDeployments = (id: string) => request<Deployment[]>("GET", `/projects/${id}/deployments`);
export const deploy = (id: string, fromDeployment?: string) =>
  request<{ id: string; status: string }>(
    "POST",
    `/projects/${id}/deployments`,
    fromDeployment ? { from_deployment: fromDeployment } : {},
  );
export const cancelDeployment = (id: string) => request<unknown>("POST", `/deployments/${id}/cancel`);
export const control = (id: string, action: "start" | "stop" | "restart") =>
  request<unknown>("POST", `/projects/${id}/${action}`, {});

export type DnsRecord = { type: string; name: string; value: string };
export type Domain = {
  domain: string;
  status: string;
  verification: DnsRecord;
  routing: DnsRecord;
  message: string | null;
  checked_at: string | null;
  verified_at: string | null;
  certificate: { status: string; expires_at: string | null; message: string | null };
  url: string;
};
const domainPath = (id: string, domain?: string) =>
  `/projects/${id}/domains${domain ? `/${encodeURIComponent(domain)}` : ""}`;
export const listDomains = (id: string) => request<Domain[]>("GET", domainPath(id));
export const addDomain = (id: string, domain: string) => request<Domain>("POST", domainPath(id), { domain });
export const verifyDomain = (id: string, domain: string) =>
  request<Domain>("POST", `${domainPath(id, domain)}/verify`, {});
export const deleteDomain = (id: string, domain: string) => request<void>("DELETE", domainPath(id, domain));

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
};

/**
 * Follows one topic over the WebSocket, resuming after the last seq it saw when the
 * connection drops. Returns a function that stops it.
 */
export function follow(topic: string, onMessage: (m: LiveMessage) => void): () => void {
  let lastSeq = 0;
  let socket: WebSocket | null = null;
  let stopped = false;
  const open = async () => {
    if (!accessToken) await refresh();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/api/v1/ws`);
    socket.onopen = () => {
      socket?.send(JSON.stringify({ op: "auth", token: accessToken }));
      socket?.send(JSON.stringify({ op: "subscribe", topic, since: lastSeq }));
    };
    const handle = (message: LiveMessage) => {
      if (message.topic === topic && typeof message.seq === "number" && (message.type === "log" || message.type === "status")) {
        if (message.seq <= lastSeq) return;
        lastSeq = message.seq;
      }
      onMessage(message);
    };
    socket.onmessage = async (event) => {
      const message = JSON.parse(event.data) as LiveMessage & { events?: LiveMessage[] };
      if (message.type === "batch" && Array.isArray(message.events)) {
        // Several events of one topic in one message, each exactly as it would come alone.
        for (const one of message.events) handle(one);
        return;
      }
      if (message.type === "error" && message.code === "unauthorized" && !message.topic) {
        // The access token expired while the socket was open: refresh it and sign in again.
        if (await refresh()) {
          socket?.send(JSON.stringify({ op: "auth", token: accessToken }));
          socket?.send(JSON.stringify({ op: "subscribe", topic, since: lastSeq }));
        }
        return;
      }
      handle(message);
    };
    socket.onclose = () => {
      if (!stopped) setTimeout(open, 1000);
    };
  };
  open();
  return () => {
    stopped = true;
    socket?.close();
  };
}
