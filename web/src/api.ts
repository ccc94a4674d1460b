// A small client for shard's REST API. The access token lives in memory only; the refresh
// token is an HttpOnly cookie the browser sends to /api/v1/auth/refresh.

export type User = { id: string; username: string; role: string; created_at: string };
export type LatestDeployment = {
  id: string;
  status: string;
  trigger: string;
  commit_sha: string | null;
  commit_message: string | null;
  created_by: string | null;
  pusher: string | null;
  created_at: string;
  finished_at: string | null;
};
export type Project = {
  id: string;
  name: string;
  slug: string;
  git_url: string;
  branch: string;
  dockerfile: string;
  port: number | null;
  health_path: string;
  health_timeout_secs: number;
  memory_limit_mb: number | null;
  cpu_limit_millis: number | null;
  /** auto (its Dockerfile, else the build plan), dockerfile or static. */
  build_type: string;
  static_dir: string | null;
  /** For auto: the repository's subdirectory the app lives in, and commands over the plan's. */
  root_dir: string | null;
  install_command: string | null;
  build_command: string | null;
  start_command: string | null;
  /** Copies of the app (Swarm runtime). */
  replicas: number;
  /** Node labels its replicas are placed by (Swarm runtime). */
  placement: Record<string, string>;
  url: string;
  status: string;
  /** How the app runs now: not_deployed, running, stopped or crashed. */
  runtime: string;
  live_deployment: string | null;
  latest_deployment: LatestDeployment | null;
  /** For a project imported from GitHub: its repository and how pushes reach shard. */
  github: ProjectGithub | null;
  /** The team it belongs to. */
  team_id: string | null;
  previews: PreviewSettings;
  /** On a pull request's preview: the project it previews. */
  preview_of: string | null;
  pr_number: number | null;
  created_at: string;
  updated_at: string;
};
export type PreviewSettings = { enabled: boolean; ttl_days: number; max: number; basic_auth: boolean };
/** Preview settings to save: `basic_auth` "user:password" sets it, null removes it, absent keeps it. */
export type PreviewSettingsInput = { enabled: boolean; ttl_days: number; max: number; basic_auth?: string | null };
export type ProjectGithub = {
  /** owner/name */
  repo: string;
  /** created: shard added the push webhook on GitHub; manual: add it by hand. */
  webhook: "created" | "manual";
  /** Whether the GitHub account that imported it is still connected. */
  connected: boolean;
};
/** The fields POST /projects and PATCH /projects/{id} take. */
export type ProjectSettings = Partial<{
  previews: PreviewSettingsInput;
  name: string;
  git_url: string;
  branch: string;
  dockerfile: string;
  port: number | null;
  health_path: string;
  health_timeout_secs: number;
  memory_limit_mb: number | null;
  cpu_limit_millis: number | null;
  build_type: string;
  static_dir: string | null;
  root_dir: string | null;
  install_command: string | null;
  build_command: string | null;
  start_command: string | null;
  team_id: string;
  replicas: number;
  placement: Record<string, string>;
}>;
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
  // A Blob (an uploaded file) goes as it is; anything else as JSON.
  const raw = body instanceof Blob;
  if (body !== undefined) headers["Content-Type"] = raw ? "application/octet-stream" : "application/json";
  if (accessToken) headers["Authorization"] = `Bearer ${accessToken}`;
  const res = await fetch(`/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : raw ? body : JSON.stringify(body),
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
  if (res.status === 204) return undefined as T;
  // A file's content comes back as it is.
  if (res.headers.get("Content-Type")?.startsWith("application/octet-stream")) return (await res.blob()) as T;
  return (await res.json()) as T;
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

export const listProjects = (teamId?: string) =>
  request<Project[]>("GET", teamId ? `/projects?team_id=${encodeURIComponent(teamId)}` : "/projects");
export const createProject = (p: ProjectSettings) => request<Project>("POST", "/projects", p);
export const updateProject = (id: string, p: ProjectSettings) => request<Project>("PATCH", `/projects/${id}`, p);
export const deleteProject = (id: string) => request<void>("DELETE", `/projects/${id}`);

export type Deployment = {
  id: string;
  project_id: string;
  status: string;
  trigger: string;
  created_by: string | null;
  /** For trigger `push`: the GitHub login that pushed. */
  pusher: string | null;
  from_deployment: string | null;
  image: string | null;
  preview_url: string | null;
  started_at: string | null;
  commit_sha: string | null;
  commit_message: string | null;
  error: string | null;
  error_step: string | null;
  /** The commit status last posted on GitHub (pending, success, failure). */
  commit_status: string | null;
  commit_status_error: string | null;
  created_at: string;
  finished_at: string | null;
};

export const getProject = (id: string) => request<Project>("GET", `/projects/${id}`);

/** What shard builds for a project without a Dockerfile, and why (GET /projects/{id}/plan). */
export type Plan = {
  language: string;
  framework: string | null;
  package_manager: string | null;
  versions: { tool: string; version: string; source: string }[];
  install: string | null;
  build: string | null;
  start: string | null;
  port: number | null;
  static_dir: string | null;
  root_dir: string;
  decisions: { what: string; source: string }[];
  dockerfile: string;
};
export const getPlan = (id: string) => request<Plan>("GET", `/projects/${id}/plan`);
export const listDeployments = (id: string) => request<Deployment[]>("GET", `/projects/${id}/deployments`);
export const getDeployment = (id: string) => request<Deployment>("GET", `/deployments/${id}`);
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

export type EnvVar = { key: string; value: string | null; secret: boolean; build: boolean; preview?: boolean };
/** A var to PUT: a secret's `value` may be left out to keep the stored one. */
export type EnvVarInput = { key: string; value?: string; secret: boolean; build: boolean; preview?: boolean };
export const getEnv = (id: string) => request<{ vars: EnvVar[] }>("GET", `/projects/${id}/env`);
export const putEnv = (id: string, vars: EnvVarInput[]) =>
  request<{ vars: EnvVar[] }>("PUT", `/projects/${id}/env`, { vars });

export type ApiToken = {
  id: string;
  name: string;
  prefix: string;
  /** read, deploy or admin */
  scope: string;
  project_ids: string[] | null;
  created_at: string;
  last_used_at: string | null;
  expires_at: string | null;
  token?: string | null;
};
export type NewToken = { name: string; scope: string; project_ids?: string[]; expires_in_days?: number };
export const listTokens = () => request<ApiToken[]>("GET", "/tokens");
export const createToken = (body: NewToken) => request<ApiToken>("POST", "/tokens", body);
export const deleteToken = (id: string) => request<void>("DELETE", `/tokens/${id}`);

export const changePassword = (current_password: string, new_password: string) =>
  request<void>("POST", "/auth/password", { current_password, new_password });
export const listUsers = () => request<User[]>("GET", "/users");
export const createUser = (username: string, password: string, role: string) =>
  request<User>("POST", "/users", { username, password, role });
export const setRole = (id: string, role: string) => request<User>("PATCH", `/users/${id}`, { role });
export const deleteUser = (id: string) => request<void>("DELETE", `/users/${id}`);

export type Webhook = { url: string; secret: string; content_type: string; events: string[] };
export type Delivery = {
  delivery_id: string;
  event: string;
  outcome: string;
  detail: string | null;
  deployment_id: string | null;
  received_at: string;
};
export const getWebhook = (id: string) => request<Webhook>("GET", `/projects/${id}/webhook`);
/** A new webhook secret (GitHub's hook gets it first when shard created the hook). */
export const rotateWebhook = (id: string) => request<Webhook>("POST", `/projects/${id}/webhook/rotate`);
/** One point of GET /projects/{id}/metrics (network and block I/O are cumulative counters). */
export type MetricsPoint = {
  ts: string;
  cpu_percent: number;
  memory_bytes: number;
  memory_limit_bytes: number;
  net_rx_bytes: number;
  net_tx_bytes: number;
  block_read_bytes: number;
  block_write_bytes: number;
  restart_count: number;
};
export const projectMetrics = (id: string, from: number, to: number) =>
  request<{ from: string; to: string; step: number; points: MetricsPoint[] }>("GET", `/projects/${id}/metrics?from=${from}&to=${to}`);
export type Overview = {
  docker_reachable: boolean;
  docker_version: string | null;
  disk_free_bytes: number | null;
  disk_total_bytes: number | null;
  memory_total_bytes: number | null;
  memory_available_bytes: number | null;
  queue_depth: number | null;
  containers: number | null;
  containers_running: number | null;
  shard_rss_bytes: number | null;
  metrics_samples: number | null;
};
export const systemOverview = () => request<Overview>("GET", "/system/overview");

/** `shard doctor` on the server's host: each check, what it found and what to do. */
export type DoctorCheck = { name: string; status: "ok" | "warn" | "fail" | "skip"; message: string; fix: string | null };
export type DoctorReport = { ok: boolean; checked_at: string; checks: DoctorCheck[] };
export const doctorReport = (run: boolean) => request<DoctorReport>("GET", `/system/doctor${run ? "?run=true" : ""}`);

/** A Docker Swarm node apps run on. */
export type SwarmNode = {
  id: string;
  hostname: string;
  address: string;
  /** ready, down, disconnected or unknown */
  state: string;
  /** active, pause or drain */
  availability: string;
  role: string;
  leader: boolean;
  labels: Record<string, string>;
  cpus: number;
  memory_bytes: number;
  engine_version: string | null;
  last_seen: string | null;
  this_machine: boolean;
  replicas: number;
};
export type NodeJoin = {
  runtime: string;
  swarm: boolean;
  command: string | null;
  registry: string | null;
  steps: string[];
  /** What is wrong with how shard runs now (e.g. instances on different Docker engines). */
  warnings: string[];
};
export const nodes = () => request<SwarmNode[]>("GET", "/nodes");
export const nodeJoin = () => request<NodeJoin>("GET", "/nodes/join");
export const updateNode = (id: string, body: { labels?: Record<string, string>; availability?: string }) =>
  request<SwarmNode>("PATCH", `/nodes/${encodeURIComponent(id)}`, body);
export type Registry = {
  url: string | null;
  ca_file: string | null;
  username: string | null;
  password_set: boolean;
};
export const registry = () => request<Registry>("GET", "/registry");
export const setRegistryCredentials = (username: string, password: string) =>
  request<Registry>("PUT", "/registry/credentials", { username, password });
export const clearRegistryCredentials = () => request<void>("DELETE", "/registry/credentials");

/** `group=edge, zone=a` → `{group: "edge", zone: "a"}`; a part without `=` keeps an empty value (the API names it). */
export function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const part of text.split(/[,\n]/)) {
    const item = part.trim();
    if (!item) continue;
    const at = item.indexOf("=");
    if (at < 0) labels[item] = "";
    else labels[item.slice(0, at).trim()] = item.slice(at + 1).trim();
  }
  return labels;
}

export const labelsText = (labels: Record<string, string>) =>
  Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
export type Channel = {
  id: string;
  kind: string;
  /** The destination, masked. */
  target: string;
  has_secret: boolean;
  project_id: string | null;
  events: string[];
  created_at: string;
};
export type ChannelDelivery = {
  id: string;
  event: string;
  status: string;
  attempts: number;
  last_error: string | null;
  created_at: string;
  updated_at: string;
};
export const listChannels = () => request<Channel[]>("GET", "/notifications/channels");
export const createChannel = (body: { kind: string; target: string; secret?: string; project_id?: string; events?: string[] }) =>
  request<Channel>("POST", "/notifications/channels", body);
export const deleteChannel = (id: string) => request<void>("DELETE", `/notifications/channels/${id}`);
export const testChannel = (id: string) => request<{ delivery_id: string }>("POST", `/notifications/channels/${id}/test`);
export const channelDeliveries = (id: string) => request<ChannelDelivery[]>("GET", `/notifications/channels/${id}/deliveries`);
export const unlinkGithub = (id: string) =>
  request<{ unlinked: boolean; webhook_error: string | null }>("DELETE", `/projects/${id}/github`);
export const listDeliveries = (id: string) => request<Delivery[]>("GET", `/projects/${id}/webhook/deliveries`);

export const providers = () => request<{ github: boolean }>("GET", "/auth/providers");
export type GithubAccount = { enabled: boolean; connected: boolean; login: string | null; scopes: string | null };
export const githubAccount = () => request<GithubAccount>("GET", "/auth/github");
export const disconnectGithub = () =>
  request<{ disconnected: boolean; revoke_error: string | null }>("DELETE", "/auth/github");

export type GithubRepo = {
  full_name: string;
  name: string;
  private: boolean;
  default_branch: string | null;
  clone_url: string;
  html_url: string;
  updated_at: string | null;
};
export type ImportResult = {
  project: Project;
  private: boolean;
  dockerfile_found: boolean;
  webhook: "created" | "manual";
  webhook_error: string | null;
};
export const githubRepos = (q: string) => request<GithubRepo[]>("GET", `/github/repos?q=${encodeURIComponent(q)}`);
export const githubBranches = (fullName: string) =>
  request<{ name: string; commit_sha: string }[]>("GET", `/github/repos/${fullName}/branches`);
export const importRepo = (body: { repo: string; branch?: string; dockerfile?: string; name?: string }) =>
  request<ImportResult>("POST", "/github/import", body);

/** The current access token, for the WebSocket's auth message. */
export const currentToken = () => accessToken;

export type Team = { id: string; name: string; slug: string; personal: boolean; role: string; created_at: string };
export type Member = { user_id: string; username: string; role: string; joined_at: string };
export type Invitation = {
  id: string;
  username: string;
  role: string;
  created_at: string;
  expires_at: string;
  token?: string;
  url?: string;
};
export const listTeams = () => request<Team[]>("GET", "/teams");
export const createTeam = (name: string) => request<Team>("POST", "/teams", { name });
export const getTeam = (id: string) => request<Team & { members: Member[] }>("GET", `/teams/${id}`);
export const renameTeam = (id: string, name: string) => request<Team>("PATCH", `/teams/${id}`, { name });
export const deleteTeam = (id: string) => request<void>("DELETE", `/teams/${id}`);
export const setMemberRole = (team: string, user: string, role: string) =>
  request<Member>("PATCH", `/teams/${team}/members/${user}`, { role });
export const removeMember = (team: string, user: string) => request<void>("DELETE", `/teams/${team}/members/${user}`);
export const listInvitations = (team: string) => request<Invitation[]>("GET", `/teams/${team}/invitations`);
export const invite = (team: string, body: { username: string; role: string; expires_in_hours?: number }) =>
  request<Invitation>("POST", `/teams/${team}/invitations`, body);
export const withdrawInvitation = (team: string, id: string) =>
  request<void>("DELETE", `/teams/${team}/invitations/${id}`);
export const acceptInvitation = (token: string) =>
  request<Team>("POST", `/invitations/${encodeURIComponent(token)}/accept`, {});

export type AuditEntry = {
  id: number;
  at: string;
  actor_id: string | null;
  actor: string | null;
  token_id: string | null;
  action: string;
  target_type: string;
  target_id: string | null;
  team_id: string | null;
  project_id: string | null;
  detail: Record<string, unknown> | null;
  ip: string | null;
  status: number | null;
};
export type AuditFilter = Partial<Record<"team_id" | "project_id" | "actor" | "action" | "since" | "until" | "before", string>>;
export const listAudit = (filter: AuditFilter, limit = 100) => {
  const query = new URLSearchParams({ limit: String(limit) });
  for (const [key, value] of Object.entries(filter)) if (value) query.set(key, value);
  return request<AuditEntry[]>("GET", `/audit?${query}`);
};

export type CliLogin = { code: string; name: string; expires_in: number };
export const cliLogin = (code: string) => request<CliLogin>("GET", `/cli/logins/${encodeURIComponent(code)}`);
export const approveCliLogin = (code: string) =>
  request<void>("POST", `/cli/logins/${encodeURIComponent(code)}/approve`, {});
export const denyCliLogin = (code: string) => request<void>("POST", `/cli/logins/${encodeURIComponent(code)}/deny`, {});

/** A named volume: data a project keeps across deployments. */
export type Run = {
  id: string;
  project_id: string;
  job_id: string | null;
  command: string[];
  trigger: "command" | "schedule" | "manual" | "terminal";
  status: "running" | "succeeded" | "failed";
  exit_code: number | null;
  error: string | null;
  deployment_id: string | null;
  started_at: string;
  finished_at: string | null;
  duration_ms: number | null;
  topic: string;
};
export type Job = {
  id: string;
  name: string;
  schedule: string;
  command: string[];
  timeout_secs: number;
  concurrency: "forbid" | "allow";
  next_run_at: string;
  last_run_at: string | null;
  last_run: Run | null;
};
export type NewJob = { name: string; schedule: string; command: string[]; timeout_secs?: number; concurrency?: "forbid" | "allow" };
type Started = { id: string; status: string; topic: string };
export const listRuns = (project: string) => request<Run[]>("GET", `/projects/${project}/runs`);
export const getRun = (project: string, run: string) => request<Run>("GET", `/projects/${project}/runs/${run}`);
export const startRun = (project: string, command: string[], timeout_secs?: number) =>
  request<Started>("POST", `/projects/${project}/runs`, timeout_secs ? { command, timeout_secs } : { command });
export const cancelRun = (project: string, run: string) => request<void>("POST", `/projects/${project}/runs/${run}/cancel`);
export const listJobs = (project: string) => request<Job[]>("GET", `/projects/${project}/jobs`);
export const putJob = (project: string, job: NewJob) => request<Job>("POST", `/projects/${project}/jobs`, job);
export const deleteJob = (project: string, name: string) => request<void>("DELETE", `/projects/${project}/jobs/${encodeURIComponent(name)}`);
export const runJob = (project: string, name: string) => request<Started>("POST", `/projects/${project}/jobs/${encodeURIComponent(name)}/run`);
export const jobRuns = (project: string, name: string) => request<Run[]>("GET", `/projects/${project}/jobs/${encodeURIComponent(name)}/runs`);

export type Preview = {
  id: string;
  pr_number: number;
  title: string;
  author: string | null;
  head_sha: string;
  head_ref: string;
  head_repo: string;
  fork: boolean;
  state: "awaiting_approval" | "deploying" | "live" | "failed" | "closed";
  approved_sha: string | null;
  url: string | null;
  preview_project_id: string | null;
  deployment_id: string | null;
  note: string | null;
  opened_at: string;
  updated_at: string;
  closed_at: string | null;
  expires_at: string | null;
};
export const listPreviews = (project: string) => request<Preview[]>("GET", `/projects/${project}/previews`);
export const approvePreview = (project: string, pr: number) => request<unknown>("POST", `/projects/${project}/previews/${pr}/approve`);
export const redeployPreview = (project: string, pr: number) => request<unknown>("POST", `/projects/${project}/previews/${pr}/redeploy`);
export const deletePreview = (project: string, pr: number) => request<void>("DELETE", `/projects/${project}/previews/${pr}`);

export type Volume = {
  id: string;
  name: string;
  mount_path: string;
  project_id: string | null;
  project_name: string | null;
  created_at: string;
  detached_at: string | null;
  expires_at: string | null;
  /** Bytes when last sampled (every few minutes); null before the first sample. */
  size_bytes: number | null;
};
export const listVolumes = (project: string) => request<Volume[]>("GET", `/projects/${project}/volumes`);
export const addVolume = (project: string, v: { name: string; mount_path: string }) =>
  request<Volume>("POST", `/projects/${project}/volumes`, v);
export const detachVolume = (project: string, name: string, purge = false) =>
  request<void>("DELETE", `/projects/${project}/volumes/${encodeURIComponent(name)}${purge ? "?purge=true" : ""}`);
export const allVolumes = () => request<Volume[]>("GET", "/volumes");
export const attachVolume = (id: string, project_id: string) => request<Volume>("POST", `/volumes/${id}/attach`, { project_id });
export const purgeVolume = (id: string) => request<void>("DELETE", `/volumes/${id}`);

/** A file mount: uploaded to the project, mounted read-only at `path` from the next deployment on. */
export type ProjectFile = {
  path: string;
  size_bytes: number;
  sha256: string;
  version: number;
  updated_at: string;
  updated_by: string | null;
};
export type ReplicaFiles = {
  deployment_id: string;
  status: string;
  replica: number;
  files_version: number | null;
  current: boolean;
};
export type Files = { version: number; files: ProjectFile[]; replicas: ReplicaFiles[] };
/** `/etc/app.toml` → `etc/app.toml`, each part escaped, the slashes kept. */
const filePath = (path: string) => path.replace(/^\/+/, "").split("/").map(encodeURIComponent).join("/");
export const listFiles = (project: string) => request<Files>("GET", `/projects/${project}/files`);
export const putFile = (project: string, path: string, content: Blob) =>
  request<{ path: string; version: number; size_bytes: number; sha256: string }>(
    "PUT",
    `/projects/${project}/files/${filePath(path)}`,
    content,
  );
export const deleteFile = (project: string, path: string) =>
  request<void>("DELETE", `/projects/${project}/files/${filePath(path)}`);
/** The file's content (team admins), for a download. */
export const fileContent = (project: string, path: string) =>
  request<Blob>("GET", `/projects/${project}/files/${filePath(path)}`);

/** A one-click database (postgres, mysql, mariadb or redis) in a container of its own. */
export type Database = {
  id: string;
  name: string;
  kind: "postgres" | "mysql" | "mariadb" | "redis";
  version: string;
  image: string;
  status: "starting" | "running" | "stopped" | "failed";
  message: string | null;
  team_id: string | null;
  public_port: number | null;
  memory_limit_mb: number;
  attached_project_ids: string[];
  connection: { host: string; port: number; user: string; database: string; url: string; env: string[] };
  created_at: string;
};
export const listDatabases = () => request<Database[]>("GET", "/databases");
export const createDatabase = (d: { kind: string; name: string; version?: string; team_id?: string }) =>
  request<Database>("POST", "/databases", d);
export const deleteDatabase = (id: string) => request<void>("DELETE", `/databases/${id}`);
export const controlDatabase = (id: string, action: "start" | "stop" | "restart") =>
  request<Database>("POST", `/databases/${id}/${action}`, {});
export const databaseLogs = (id: string) => request<string[]>("GET", `/databases/${id}/logs`);
/** A running database's use now (like an app's metrics sample). */
/** A database's use now (null when it is not running) and its samples over a range. */
export type DatabaseMetrics = {
  running: boolean;
  cpu_percent: number | null;
  memory_bytes: number | null;
  memory_limit_bytes: number | null;
  net_rx_bytes: number | null;
  net_tx_bytes: number | null;
  block_read_bytes: number | null;
  block_write_bytes: number | null;
  restart_count: number | null;
  from: string;
  to: string;
  step: number;
  points: MetricsPoint[];
};
export const databaseMetrics = (id: string, from?: number, to?: number) =>
  request<DatabaseMetrics>("GET", `/databases/${id}/metrics${from === undefined ? "" : `?from=${from}&to=${to}`}`);
export const databaseConnection = (id: string) => request<{ url: string; password: string }>("GET", `/databases/${id}/connection`);
export const setDatabasePort = (id: string, public_port: number | null) =>
  request<Database>("PATCH", `/databases/${id}`, { public_port });
export const attachDatabase = (id: string, project: string) =>
  request<void>("POST", `/databases/${id}/attachments/${project}`, {});
export const detachDatabase = (id: string, project: string) =>
  request<void>("DELETE", `/databases/${id}/attachments/${project}`);

/** Where backups go (instance admins). */
export type Destination = {
  id: string;
  name: string;
  kind: "local" | "s3";
  path: string | null;
  endpoint: string | null;
  bucket: string | null;
  prefix: string | null;
  region: string | null;
  /** Masked: its first four characters. */
  access_key: string | null;
  created_at: string;
};
export const listDestinations = () => request<Destination[]>("GET", "/backups/destinations");
export const addDestination = (d: {
  name: string;
  kind: string;
  path?: string;
  endpoint?: string;
  bucket?: string;
  prefix?: string;
  region?: string;
  access_key?: string;
  secret_key?: string;
}) =>
  request<Destination>("POST", "/backups/destinations", d);
export const deleteDestination = (id: string) => request<void>("DELETE", `/backups/destinations/${id}`);
/** A backup: `verified` only once a restore of it was checked. */
export type Backup = {
  id: string;
  status: "running" | "succeeded" | "verified" | "failed";
  step: string | null;
  error: string | null;
  database_id: string | null;
  source_name: string;
  destination_id: string | null;
  key: string;
  size_bytes: number | null;
  sha256: string | null;
  started_at: string;
  finished_at: string | null;
  verified_at: string | null;
};
/** What backups are of: `/databases/{id}`, `/projects/{id}/volumes/{name}`, or `/system` (the installation). */
export const databaseBackups = (database: string) => `/databases/${database}`;
export const volumeBackups = (project: string, volume: string) => `/projects/${project}/volumes/${encodeURIComponent(volume)}`;
export const listBackups = (source: string) => request<Backup[]>("GET", `${source}/backups`);
/** A backup schedule: `cron` (UTC) is null when there is none. */
export type BackupSchedule = {
  cron: string | null;
  destination_ids: string[];
  keep_last: number | null;
  keep_days: number | null;
  next_run_at: string | null;
  last_run_at: string | null;
  /** The instance's schedule: the age public keys its archives are encrypted to. */
  recipients?: string[];
};
export const getBackupSchedule = (source: string) => request<BackupSchedule>("GET", `${source}/backup-schedule`);
export const putBackupSchedule = (
  source: string,
  s: { cron: string; destination_ids?: string[]; keep_last?: number | null; keep_days?: number | null; recipients?: string[] },
) => request<BackupSchedule>("PUT", `${source}/backup-schedule`, s);
export const deleteBackupSchedule = (source: string) => request<void>("DELETE", `${source}/backup-schedule`);
export const takeBackup = (source: string, destination_id?: string) =>
  request<{ id: string; status: string }>("POST", `${source}/backups`, destination_id ? { destination_id } : {});
export const verifyBackup = (id: string) => request<{ id: string; status: string }>("POST", `/backups/${id}/verify`, {});
export const restoreBackup = (id: string, target: "same" | "new") => request<unknown>("POST", `/backups/${id}/restore`, { target });
