// End-to-end test of the embedded dashboard: starts a real `shard serve` and drives Debian's
// Chromium through a user's whole day: first-run setup, sign-in, creating a project from a git
// server (smart HTTP), deploying it while the build log streams, opening the app, a secret env
// var and a redeploy, a rollback, stop/start, runtime logs, a GitHub stand-in (connect, import,
// a signed push deploying with commit statuses, disconnect), an API token created and revoked,
// teams (invitation link, roles, team switcher, a scoped token, the audit log, a CLI sign-in
// approved; see teams.mjs), one-off commands, scheduled jobs and a terminal (tasks.mjs), and deleting the project; then the same screens at 360 px in dark mode. axe-core checks every
// page (no serious or critical violations) and a screenshot of each step goes to a temp dir
// whose path is printed. Usage: node dashboard.mjs <path to the shard binary>. Exits non-zero
// on failure. Needs git, a running Docker engine and /bin/busybox (busybox-static).
import { execFileSync, spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request as httpRequest } from "node:http";
import { freePort, serveGit } from "./gitserver.mjs";
import { CLIENT_ID, CLIENT_SECRET, startGithub } from "./github.mjs";
import { teamsFlow } from "./teams.mjs";
import { nodesFlow } from "./nodes.mjs";
import { previewsFlow, tasksFlow } from "./tasks.mjs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";
import { createHmac } from "node:crypto";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const binary = process.argv[2];
assert.ok(binary, "usage: node dashboard.mjs <shard binary>");

/** A bare repository with a busybox web app, served by `git http-backend` over smart HTTP. */
async function startGitServer(root) {
  const work = join(root, "work");
  mkdirSync(join(work, "www"), { recursive: true });
  copyFileSync("/bin/busybox", join(work, "busybox"));
  writeFileSync(join(work, "www", "index.html"), `hello from the browser test ${Date.now()}\n`);
  mkdirSync(join(work, "www", "cgi-bin"));
  writeFileSync(join(work, "www", "cgi-bin", "env"), "#!/bin/busybox sh\necho 'Content-Type: text/plain'\necho\n/bin/busybox env\n", { mode: 0o755 });
  writeFileSync(
    join(work, "Dockerfile"),
    [
      "FROM scratch",
      "COPY busybox /bin/busybox",
      "COPY www /www",
      `RUN ["/bin/busybox", "ln", "-s", "/bin/busybox", "/bin/sh"]`,
      `RUN ["/bin/busybox", "sh", "-c", "printf '\\\\033[32mgreen step\\\\033[0m\\\\n'; /bin/busybox seq 1 20"]`,
      "EXPOSE 8080",
      `CMD ["/bin/busybox", "httpd", "-f", "-vv", "-p", "8080", "-h", "/www"]`,
      "",
    ].join("\n"),
  );
  const git = (cwd, ...args) =>
    execFileSync("git", ["-c", "user.name=browser-test", "-c", "user.email=t@shard.invalid", ...args], {
      cwd,
      stdio: ["ignore", "pipe", "pipe"],
    });
  git(work, "init", "-q", "-b", "main");
  git(work, "add", "-A");
  git(work, "commit", "-q", "-m", "first");
  const repos = join(root, "repos");
  mkdirSync(repos);
  git(root, "clone", "-q", "--bare", work, join(repos, "app.git"));
  // A second repository without a Dockerfile: a plain static site the build plan serves.
  const site = join(root, "site");
  mkdirSync(site);
  writeFileSync(join(site, "index.html"), "<!doctype html><title>plain site</title><h1>planned, not Dockerfiled</h1>\n");
  git(site, "init", "-q", "-b", "main");
  git(site, "add", "-A");
  git(site, "commit", "-q", "-m", "a site");
  git(root, "clone", "-q", "--bare", site, join(repos, "site.git"));

  const server = await serveGit(repos);
  const at = `http://127.0.0.1:${server.address().port}`;
  return { server, url: `${at}/app.git`, siteUrl: `${at}/site.git` };
}

// The two-node swarm the Nodes page shows (idempotent; the Rust suite may have made it).
execFileSync(new URL("../../scripts/swarm-lab", import.meta.url).pathname, ["up"], { stdio: "inherit" });

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const shots = mkdtempSync(join(tmpdir(), "shard-screens-"));
const port = await freePort();
const dataDir = mkdtempSync(join(tmpdir(), "shard-browser-"));
const base = `http://127.0.0.1:${port}`;
// GitHub's stand-in; the repository it offers for import is the test's git server, filled in
// once that runs.
const githubRepos = {};
const github = await startGithub({ login: "octo", repos: githubRepos });
// An S3-compatible store (moto's server, installed by scripts/test) for an S3 destination.
const motoPort = await freePort();
const moto = spawn(process.env.SHARD_TEST_MOTO || "moto_server", ["-H", "127.0.0.1", "-p", String(motoPort)], { stdio: "ignore" });
const motoUrl = `http://127.0.0.1:${motoPort}`;
const shard = spawn(binary, ["serve"], {
  // Access tokens live 30 s (the shortest allowed), so they expire several times during the
  // run: every page and every open WebSocket must refresh and carry on.
  env: {
    ...process.env,
    SHARD_DATA_DIR: dataDir,
    SHARD_LISTEN: `127.0.0.1:${port}`,
    SHARD_LOG__LEVEL: "warn",
    SHARD_AUTH__ACCESS_TOKEN_TTL_SECS: "30",
    SHARD_METRICS__INTERVAL_SECS: "2",
    // One-click databases use the local stand-in images (scripts/test-images).
    SHARD_DATABASES__IMAGES__POSTGRES: "shard-test/postgres:{version}",
    SHARD_DATABASES__VERSIONS__POSTGRES: "15",
    SHARD_GITHUB__CLIENT_ID: CLIENT_ID,
    SHARD_GITHUB__CLIENT_SECRET: CLIENT_SECRET,
    SHARD_GITHUB__API_URL: github.url,
    SHARD_GITHUB__WEB_URL: github.url,
  },
  stdio: ["ignore", "inherit", "inherit"],
});

const checked = [];
let step = 0;
/** axe-core on the page as it is now: no serious or critical violations. Then a screenshot. */
async function audit(page, name) {
  await page.waitForLoadState("domcontentloaded");
  // Evaluated through the DevTools protocol: an inline <script> would be (rightly) refused by
  // the dashboard's Content-Security-Policy.
  if (!(await page.evaluate(() => typeof window.axe !== "undefined"))) await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  const detail = bad.map((v) => `${v.id} (${v.impact}): ${v.help}\n    ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join("\n    ")}`);
  assert.deepEqual(detail, [], `axe on ${name}`);
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  const viewport = page.viewportSize().width;
  assert.ok(width <= viewport, `${name}: no sideways scroll (page is ${width}px wide in a ${viewport}px window)`);
  step += 1;
  await page.screenshot({ path: join(shots, `${String(step).padStart(2, "0")}-${name.replace(/[^a-z0-9]+/gi, "-")}.png`), fullPage: true });
  checked.push(name);
}

const api = async (path, token, init = {}) =>
  fetch(`${base}/api/v1${path}`, {
    ...init,
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.headers ?? {}) },
  });

/** GET an app URL through shard on 127.0.0.1 with the app's Host (Node does not resolve *.localhost). */
const appGet = (url) =>
  new Promise((resolve, reject) => {
    const target = new URL(url);
    const req = httpRequest(
      { host: "127.0.0.1", port: target.port, path: target.pathname + target.search, headers: { host: target.host } },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString() }));
      },
    );
    req.on("error", reject);
    req.end();
  });

let browser;
let gitServer;
try {
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/health`)).ok) break;
    } catch {}
    assert.ok(i < 200, "shard did not start");
    await new Promise((r) => setTimeout(r, 50));
  }
  const token = readFileSync(join(dataDir, "setup-token"), "utf8").trim();
  gitServer = await startGitServer(join(dataDir, "git"));
  githubRepos["acme/browser-app"] = gitServer.url;

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run"],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  // Layout shifts, recorded from the first paint of every page.
  await context.addInitScript(() => {
    window.__shifts = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (!e.hadRecentInput) window.__shifts.push({ value: e.value, at: e.startTime });
    }).observe({ type: "layout-shift", buffered: true });
  });
  const page = await context.newPage();
  // The dashboard's WebSockets pass through here, so the test can cut one mid-stream.
  let cutDeploymentStream = false;
  let cuts = 0;
  await page.routeWebSocket(/\/api\/v1\/ws$/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => server.send(m));
    ws.onClose(() => server.close());
    server.onClose(() => ws.close());
    server.onMessage((m) => {
      ws.send(m);
      if (!cutDeploymentStream || typeof m !== "string") return;
      const message = JSON.parse(m);
      const seqs = message.type === "batch" ? message.events.map((e) => e.seq) : [message.seq];
      if (String(message.topic).startsWith("deployment:") && Math.max(...seqs) >= 5) {
        cutDeploymentStream = false;
        cuts += 1;
        ws.close();
      }
    });
  });
  const consoleErrors = [];
  page.on("pageerror", (e) => consoleErrors.push(String(e.stack ?? e)));
  // The dashboard runs under its strict CSP: anything the policy blocks is an error here.
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy/i.test(m.text())) consoleErrors.push(m.text());
  });

  // Signed out, the dashboard sends us to the login page. It may never be framed.
  const first = await page.goto(base + "/");
  assert.equal(first.headers()["x-frame-options"], "DENY");
  assert.match(first.headers()["content-security-policy"], /frame-ancestors 'none'/);
  await page.getByRole("heading", { name: "Sign in to shard" }).waitFor();
  await page.getByRole("link", { name: "Sign in with GitHub" }).waitFor();
  await audit(page, "login");

  // First-run setup with the token from the setup URL.
  await page.goto(`${base}/setup?token=${token}`);
  assert.equal(await page.getByLabel("Setup token").inputValue(), token);
  await audit(page, "setup");
  await page.getByLabel("Admin username").fill("admin");
  await page.getByLabel("Password (8+ characters)").fill("browser-pass-123");
  await page.getByRole("button", { name: "Create admin" }).click();
  await page.getByRole("heading", { name: "Projects", exact: true }).waitFor();
  assert.equal(await page.getByTestId("whoami").innerText(), "admin (admin)");
  await page.getByRole("heading", { name: "No projects yet" }).waitFor();
  await audit(page, "projects-empty");

  // Sign out, a wrong password, then the right one.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in to shard" }).waitFor();
  await page.getByLabel("Username").fill("admin");
  await page.getByLabel("Password").fill("wrong-password");
  await page.getByRole("button", { name: "Sign in" }).click();
  assert.match(await page.getByRole("alert").innerText(), /wrong username or password/);
  await page.getByLabel("Password").fill("browser-pass-123");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Projects", exact: true }).waitFor();

  // New project: the server's 422 appears under the field it names.
  await page.getByRole("button", { name: "New project" }).click();
  const dialog = page.getByRole("dialog", { name: "New project" });
  await dialog.getByLabel("Name").fill("Live App");
  await dialog.getByLabel("Git URL").fill("file:///etc/passwd");
  await dialog.getByRole("button", { name: "Create project" }).click();
  const gitUrl = dialog.getByLabel("Git URL");
  await dialog.locator(".field-error").waitFor();
  assert.match(await dialog.locator(".field-error").innerText(), /file:\/\/ URLs are not allowed/);
  assert.equal(await gitUrl.getAttribute("aria-invalid"), "true");
  await audit(page, "new-project-error");
  await gitUrl.fill(gitServer.url);
  await dialog.getByLabel("Health path").fill("/index.html");
  await dialog.getByRole("button", { name: "Create project" }).click();
  await page.getByRole("heading", { name: "No deployments yet" }).waitFor();
  const projectId = new URL(page.url()).pathname.split("/")[2];
  assert.match(await page.locator("h1").innerText(), /Live App/);
  // Before the first deploy the page says what will be built (build type auto by default).
  assert.match(await page.getByTestId("detected").innerText(), /has a Dockerfile: it is built as it is/);
  await audit(page, "project-new");

  // The session survives a reload through the refresh cookie, also with two tabs at once.
  const tab2 = await context.newPage();
  tab2.on("pageerror", (e) => consoleErrors.push(String(e)));
  for (let i = 0; i < 3; i++) {
    await Promise.all([page.reload(), tab2.goto(base + "/")]);
    await Promise.all([
      page.getByRole("heading", { name: "No deployments yet" }).waitFor({ timeout: 10000 }),
      tab2.getByRole("link", { name: "Live App" }).waitFor({ timeout: 10000 }),
    ]);
  }
  await tab2.close();

  // Deploy: the deployment page streams the build log to live, with the step timeline. The
  // socket is cut once mid-stream: the page reconnects and resumes from its last seq.
  cutDeploymentStream = true;
  await page.getByRole("button", { name: "Deploy", exact: true }).click();
  await page.waitForURL(/\/deployments\//);
  const firstDeployment = new URL(page.url()).pathname.split("/").pop();
  const log = page.getByTestId("log");
  let streamStart = 0;
  try {
    await log.locator(".log-row").first().waitFor({ timeout: 60000 });
    streamStart = await page.evaluate(() => performance.now());
    await page.locator(".deployment-status", { hasText: "live" }).waitFor({ timeout: 120000 });
  } catch (e) {
    const text = (locator) => locator.innerText({ timeout: 1000 }).catch((e) => `(none: ${e.message.split("\n")[0]})`);
    console.error(`page errors: ${consoleErrors.join(" | ")}\nthe page ${page.url()}: ${await text(page.locator("body"))}`);
    throw e;
  }
  await log.getByText("— live —").waitFor();
  assert.equal(cuts, 1, "the stream was cut once");
  const shifted = await page.evaluate((t) => window.__shifts.filter((s) => s.at >= t).reduce((a, s) => a + s.value, 0), streamStart);
  assert.ok(shifted < 0.01, `no layout shift while the log streams (cumulative ${shifted})`);
  // Every persisted line arrived exactly once despite the cut.
  const admin = await api("/auth/login", null, { method: "POST", body: JSON.stringify({ username: "admin", password: "browser-pass-123" }) }).then((r) => r.json());
  const persisted = await api(`/deployments/${firstDeployment}/logs`, admin.access_token).then((r) => r.json());
  assert.equal(await page.getByTestId("line-count").innerText(), `${persisted.length} lines`);
  // The log is virtualised and follows its end: search brings an early line into view.
  await page.getByLabel("Search the log").fill("green step");
  await page.getByLabel("Search the log").press("Enter");
  assert.match(await page.getByTestId("match-count").innerText(), /of [1-9]/);
  const green = log.getByText("green step", { exact: true });
  assert.equal(await green.evaluate((e) => getComputedStyle(e).color), "rgb(86, 211, 100)");
  for (const name of ["fetching", "building", "starting", "health checking", "live"]) {
    assert.match(await page.locator(".timeline li", { hasText: name }).getAttribute("class"), /done/, `step ${name} done`);
  }
  assert.match(await page.locator(".timeline li", { hasText: "building" }).innerText(), /\d+s/);
  await audit(page, "deployment-live");

  // A line number is a link that survives a reload.
  await page.getByLabel("Search the log").fill("");
  await log.evaluate((e) => (e.scrollTop = 0));
  await page.getByLabel("line 3", { exact: true }).click();
  assert.equal(new URL(page.url()).hash, "#L3");
  await page.reload();
  await page.locator(".log-row.target[data-line='3']").waitFor();
  // Copy and download give the whole log as text.
  await page.getByRole("button", { name: "Copy" }).click();
  assert.match(await page.evaluate(() => navigator.clipboard.readText()), /==> Live at/);
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download" }).click()]);
  assert.equal(download.suggestedFilename(), `deployment-${firstDeployment}.log`);
  const downloaded = readFileSync(await download.path(), "utf8").split("\n");
  assert.ok(downloaded.includes("green step"));
  for (let n = 1; n <= 20; n++) assert.equal(downloaded.filter((l) => l === String(n)).length, 1, `build line ${n} exactly once`);

  // The app at its own URL, through shard's proxy (Chromium resolves *.localhost to loopback).
  await page.getByRole("link", { name: "← Project" }).click();
  await page.locator("h1 .runtime", { hasText: "running" }).waitFor({ timeout: 15000 });
  const appUrl = await page.getByTestId("app-url").getAttribute("href");
  assert.match(appUrl, /^http:\/\/live-app\.localhost:\d+$/);
  const appPage = await context.newPage();
  const appResponse = await appPage.goto(appUrl);
  assert.equal(appResponse.status(), 200);
  assert.match(await appPage.locator("body").innerText(), /hello from the browser test/);
  await audit(page, "project-deployments");

  // A secret env var: saved, masked, never shown again; then a redeploy puts it in the app.
  await page.getByRole("link", { name: "Environment" }).click();
  await page.getByRole("button", { name: "Add variable" }).click();
  await page.getByLabel("Name of variable 1").fill("SECRET_TOKEN");
  await page.getByLabel("Value of SECRET_TOKEN").fill("s3cret-browser-value");
  await page.getByTestId("env-row").getByRole("checkbox", { name: "Secret", exact: true }).check();
  await page.getByRole("button", { name: "Paste .env" }).click();
  await page.getByRole("dialog", { name: "Paste a .env file" }).getByLabel("Contents").fill("# pasted\nGREETING=hello from env\n");
  await page.getByRole("button", { name: "Add to variables" }).click();
  await page.getByRole("button", { name: "Save variables" }).click();
  await page.getByRole("button", { name: "Redeploy now" }).waitFor();
  await audit(page, "environment");
  await page.reload();
  const secretInput = page.getByLabel("Value of SECRET_TOKEN");
  await secretInput.waitFor();
  assert.equal(await secretInput.inputValue(), "");
  assert.equal(await secretInput.getAttribute("type"), "password");
  assert.equal(await page.getByLabel("Value of GREETING").inputValue(), "hello from env");
  assert.ok(!(await page.content()).includes("s3cret-browser-value"), "the secret never comes back to the page");
  // Saving again without touching the secret keeps it; the redeploy prompt deploys.
  await page.getByLabel("Value of GREETING").fill("hello again");
  await page.getByRole("button", { name: "Save variables" }).click();
  await page.getByRole("button", { name: "Redeploy now" }).click();
  await page.getByTestId("toast").filter({ hasText: "Deploy queued" }).waitFor();
  await page.getByRole("link", { name: "Deployments" }).click();
  const waitEnv = async (needle) => {
    for (let i = 0; ; i++) {
      const env = await appGet(`${appUrl}/cgi-bin/env`).catch(() => ({ status: 0, text: "" }));
      if (env.status === 200 && env.text.includes(needle)) return env.text;
      assert.ok(i < 240, `the app's environment never showed ${needle}: ${env.status} ${env.text.slice(0, 300)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  };
  const env = await waitEnv("SECRET_TOKEN=s3cret-browser-value");
  assert.match(env, /GREETING=hello again/);
  await page.locator("tbody tr").nth(0).locator(".badge", { hasText: "live" }).waitFor({ timeout: 30000 });

  // Roll back to the first deployment: a new deployment from its image goes live.
  const firstRow = page.getByTestId(`deployment-${firstDeployment}`);
  await firstRow.getByRole("button", { name: "Roll back" }).click();
  await page.getByTestId("toast").filter({ hasText: "Rollback queued" }).waitFor();
  await page.locator("tbody tr").nth(0).getByText("rolled back by admin").waitFor({ timeout: 10000 });
  await page.locator("tbody tr").nth(0).locator(".badge", { hasText: "live" }).waitFor({ timeout: 90000 });
  assert.equal(await page.locator("tbody tr").count(), 3);

  // Stop from the page: the app's URL answers with the stopped page; start brings it back.
  await page.getByRole("button", { name: "Stop", exact: true }).click();
  await page.locator("h1 .runtime", { hasText: "stopped" }).waitFor({ timeout: 15000 });
  const stopped = await appPage.goto(`${appUrl}/?after=stop`);
  assert.equal(stopped.status(), 503);
  assert.match(await appPage.locator("body").innerText(), /Live App is stopped/);
  await page.getByRole("button", { name: "Start", exact: true }).click();
  await page.locator("h1 .runtime", { hasText: "running" }).waitFor({ timeout: 15000 });
  assert.equal((await appPage.goto(`${appUrl}/?after=start`)).status(), 200);

  // Runtime logs: the running container's output, live.
  await page.getByRole("link", { name: "Runtime logs" }).click();
  await page.getByTestId("log").waitFor();
  await appPage.goto(`${appUrl}/runtime-probe-${Date.now()}`);
  await page.getByTestId("log").getByText(/url:\/runtime-probe-/).first().waitFor({ timeout: 20000 });
  await audit(page, "runtime-logs");

  // Metrics: the running container's CPU, memory against its limit and network, streaming
  // new samples in the last-hour view; the 24 h view reads the stored averages.
  await page.getByRole("link", { name: "Metrics" }).click();
  const memoryLatest = page.getByTestId("latest-Memory");
  await memoryLatest.waitFor({ timeout: 30000 });
  assert.match(await memoryLatest.innerText(), /used [\d.]+ (B|KiB|MiB) of 512\.0 MiB/);
  const cpuChart = page.getByRole("img", { name: /^CPU: CPU [\d.]+ %$/ });
  await cpuChart.waitFor();
  const before = await page.locator(".chart polyline").first().getAttribute("points");
  await page.waitForFunction(
    (old) => document.querySelector(".chart polyline")?.getAttribute("points") !== old,
    before,
    { timeout: 20000 },
  );
  await audit(page, "metrics");
  await page.getByRole("button", { name: "24 h" }).click();
  assert.equal(await page.getByRole("button", { name: "24 h" }).getAttribute("aria-pressed"), "true");
  await page.getByText("averaged").waitFor();
  await page.getByRole("img", { name: /^CPU: / }).waitFor();
  await appPage.close();

  // Domains: a bad name is refused with the reason; a good one shows what to set in DNS.
  await page.getByRole("link", { name: "Domains" }).click();
  const domains = page.getByRole("region", { name: "Domains" });
  await domains.getByLabel("Domain").fill("not a domain");
  await domains.getByRole("button", { name: "Add domain" }).click();
  await domains.getByRole("alert").waitFor();
  assert.match(await domains.getByRole("alert").innerText(), /domain/);
  await domains.getByLabel("Domain").fill("www.example.test");
  await domains.getByRole("button", { name: "Add domain" }).click();
  const entry = domains.getByTestId("domain-www.example.test");
  await entry.waitFor();
  assert.match(await entry.innerText(), /_shard-challenge\.www\.example\.test/);
  await audit(page, "domains");

  // Settings: a rename warns that the URL changes; a bad port is refused in words.
  await page.getByRole("link", { name: "Settings" }).click();
  await page.getByLabel("Port").fill("99999");
  await page.getByLabel("Name").fill("Live App Renamed");
  await page.getByText("Renaming changes the app's URL").waitFor();
  await page.getByRole("button", { name: "Save settings" }).click();
  await page.locator(".field-error").waitFor();
  assert.match(await page.locator(".field-error").innerText(), /port|65535|range/i);
  await audit(page, "settings");
  await page.getByLabel("Port").fill("8080");
  await page.getByLabel("Name").fill("Live App");

  // Build: the plan of the branch tip (here: the repository's own Dockerfile wins) with the
  // Dockerfile to copy, and the plan's overrides, refused in words when they leave the repo.
  await page.getByRole("link", { name: "Build", exact: true }).click();
  await page.getByTestId("plan-headline").waitFor();
  assert.equal(await page.getByTestId("plan-headline").innerText(), "the repository's own Dockerfile");
  assert.match(await page.getByLabel("Dockerfile", { exact: true }).innerText(), /FROM scratch/);
  await page.getByRole("button", { name: "Copy Dockerfile" }).waitFor();
  const overrides = page.getByRole("form", { name: "Plan overrides" });
  await overrides.getByLabel("Root directory").fill("../elsewhere");
  await overrides.getByRole("button", { name: "Save overrides" }).click();
  await overrides.locator(".field-error").waitFor();
  assert.match(await overrides.locator(".field-error").innerText(), /inside the repository/);
  await audit(page, "build");
  await overrides.getByLabel("Root directory").fill("");

  // Volumes: a system path is refused in words; a volume is added, listed, then detached.
  await page.getByRole("link", { name: "Volumes", exact: true }).click();
  const addVolume = page.getByRole("form", { name: "Add a volume" });
  await addVolume.getByLabel("Name").fill("data");
  await addVolume.getByLabel("Mount path").fill("/proc/data");
  await addVolume.getByRole("button", { name: "Add volume" }).click();
  await addVolume.locator(".field-error").waitFor();
  assert.match(await addVolume.locator(".field-error").innerText(), /system directory/);
  await addVolume.getByLabel("Mount path").fill("/data");
  await addVolume.getByRole("button", { name: "Add volume" }).click();
  const volumeRows = page.getByRole("table", { name: "Project volumes" }).locator("tbody tr");
  await volumeRows.first().waitFor();
  assert.match(await volumeRows.first().innerText(), /data[\s\S]*\/data/);
  await audit(page, "volumes");
  // Its backups: none yet, and none can be taken before an admin adds a destination.
  await volumeRows.first().getByRole("button", { name: "Backups" }).click();
  const volumeBackups = page.getByRole("region", { name: "Backups of data" });
  await volumeBackups.getByText("No backups yet.").waitFor();
  await volumeBackups.getByRole("button", { name: "Back up now" }).click();
  await volumeBackups.getByRole("alert").filter({ hasText: "no backup destination yet" }).waitFor();
  await audit(page, "volume-backups");
  await volumeRows.first().getByRole("button", { name: "Detach" }).click();
  await page.getByRole("heading", { name: "No volumes" }).waitFor();

  // Files: a path out of bounds is refused in words; a file is uploaded, listed with its
  // size and version, then deleted with a typed confirmation.
  await page.getByRole("link", { name: "Files", exact: true }).click();
  const upload = page.getByRole("form", { name: "Upload a file" });
  await upload.getByLabel("File", { exact: true }).setInputFiles({ name: "app.toml", mimeType: "text/plain", buffer: Buffer.from("port = 8080\n") });
  await upload.getByLabel("Path in the app").fill("/proc/app.toml");
  await upload.getByRole("button", { name: "Upload" }).click();
  await upload.locator(".field-error").waitFor();
  assert.match(await upload.locator(".field-error").innerText(), /system directory/);
  await upload.getByLabel("Path in the app").fill("/etc/app.toml");
  await upload.getByRole("button", { name: "Upload" }).click();
  const fileRows = page.getByRole("table", { name: "Project files" }).locator("tbody tr");
  await fileRows.first().waitFor();
  assert.match(await fileRows.first().innerText(), /\/etc\/app\.toml[\s\S]*12 B[\s\S]*1/);
  // The live replica still runs without it, and says so.
  assert.match(await page.getByRole("region", { name: "Replicas" }).innerText(), /mounts no files \(outdated\)/);
  await page.getByRole("button", { name: "Restart to apply" }).waitFor();
  await audit(page, "files");
  await fileRows.first().getByRole("button", { name: "Delete" }).click();
  const deleteFile = page.getByRole("dialog", { name: "Delete /etc/app.toml?" });
  await deleteFile.getByLabel("Type app.toml to confirm").fill("app.toml");
  await deleteFile.getByRole("button", { name: "Delete file" }).click();
  await page.getByRole("heading", { name: "No files" }).waitFor();

  // Jobs and commands, and the terminal (tasks.mjs).
  await tasksFlow({ page, audit, projectId });

  // Databases: a bad name is refused in words; a Postgres comes up, shows how apps connect
  // (the password only when revealed), is attached to Live App and detached, then deleted
  // with a typed confirmation.
  await page.getByRole("link", { name: "Databases", exact: true }).click();
  const createDb = page.getByRole("form", { name: "Create a database" });
  await createDb.getByLabel("Name").fill("Web DB");
  await createDb.getByRole("button", { name: "Create database" }).click();
  await createDb.locator(".field-error").waitFor();
  await createDb.getByLabel("Name").fill("web-db");
  await createDb.getByRole("button", { name: "Create database" }).click();
  const dbCard = page.getByRole("region", { name: "Database web-db" });
  await dbCard.locator(".badge", { hasText: "running" }).waitFor({ timeout: 120000 });
  assert.equal(await dbCard.getByTestId("database-url").innerText(), "postgres://app:********@web-db:5432/web_db");
  assert.match(await dbCard.getByTestId("database-usage").innerText(), /CPU .* memory .* of 512\.0 MiB/);
  // Its samples, charted like an app's metrics.
  await dbCard.getByRole("button", { name: "Metrics", exact: true }).click();
  const dbMemory = dbCard.getByTestId("database-metrics").getByTestId("latest-Memory");
  await dbMemory.waitFor({ timeout: 30000 });
  assert.match(await dbMemory.innerText(), /used [\d.]+ (B|KiB|MiB) of 512\.0 MiB/);
  await dbCard.getByRole("button", { name: "Hide metrics" }).click();
  await dbCard.getByRole("button", { name: "Reveal" }).click();
  await dbCard.getByRole("button", { name: "Copy URL" }).waitFor();
  assert.match(await dbCard.getByTestId("database-url").innerText(), /^postgres:\/\/app:[0-9a-f]{32}@web-db:5432\/web_db$/);
  await dbCard.getByLabel("Attach to").selectOption({ label: "Live App" });
  await dbCard.getByRole("button", { name: "Attach", exact: true }).click();
  await dbCard.getByRole("button", { name: "Detach" }).waitFor();
  await audit(page, "databases");
  await dbCard.getByRole("button", { name: "Detach" }).click();
  await dbCard.getByText("None yet.", { exact: false }).waitFor();
  // A backup needs a destination (System page, admins); then it is taken and verified.
  await page.getByRole("link", { name: "System", exact: true }).click();
  const addDestination = page.getByRole("form", { name: "Add a destination" });
  await addDestination.getByLabel("Name").fill("here");
  await addDestination.getByLabel("Directory").fill("relative");
  await addDestination.getByRole("button", { name: "Add destination" }).click();
  await addDestination.locator(".field-error").waitFor();
  await addDestination.getByLabel("Directory").fill(join(dataDir, "backups"));
  await addDestination.getByRole("button", { name: "Add destination" }).click();
  await page.getByRole("table", { name: "Destinations" }).getByText("here", { exact: true }).waitFor();
  // An S3 bucket: a test write is made before it is added; the secret is never shown again.
  for (let i = 0; ; i++) {
    const made = await fetch(`${motoUrl}/dashboard`, { method: "PUT" }).catch(() => null);
    if (made?.ok) break;
    assert.ok(i < 150, "moto's S3 server did not start");
    await new Promise((r) => setTimeout(r, 200));
  }
  await addDestination.getByLabel("Name").fill("bucket");
  await addDestination.getByLabel("Kind").selectOption("s3");
  await addDestination.getByLabel("Endpoint (empty for AWS)").fill(motoUrl);
  await addDestination.getByLabel("Bucket").fill("no-such-bucket");
  await addDestination.getByLabel("Access key id").fill("AKIABROWSER");
  await addDestination.getByLabel("Secret key").fill("browser-secret");
  await addDestination.getByRole("button", { name: "Add destination" }).click();
  await addDestination.locator(".field-error", { hasText: "cannot write there" }).waitFor();
  await addDestination.getByLabel("Bucket").fill("dashboard");
  await addDestination.getByRole("button", { name: "Add destination" }).click();
  const s3Row = page.getByRole("table", { name: "Destinations" }).locator("tr", { hasText: "s3://dashboard/" });
  await s3Row.getByText("key AKIA…").waitFor();
  assert.ok(!(await page.content()).includes("browser-secret"), "the secret key is not on the page");
  await audit(page, "system-destinations");
  await page.getByRole("link", { name: "Databases", exact: true }).click();
  await dbCard.getByRole("button", { name: "Back up now" }).click();
  const backupRows = page.getByRole("table", { name: "Backups of web-db list" }).locator("tbody tr");
  await backupRows.first().locator(".badge", { hasText: "verified" }).waitFor({ timeout: 120000 });
  // A nightly schedule with retention: a bad cron expression is refused in words.
  const scheduleForm = page.getByRole("form", { name: "Backup schedule of web-db" });
  await scheduleForm.getByLabel("Schedule (cron, UTC)").fill("every night");
  await scheduleForm.getByRole("button", { name: "Save schedule" }).click();
  await scheduleForm.locator(".field-error", { hasText: "is not a cron expression" }).waitFor();
  await scheduleForm.getByLabel("Schedule (cron, UTC)").fill("0 3 * * *");
  await scheduleForm.getByLabel("Keep last").fill("3");
  await scheduleForm.getByRole("button", { name: "Save schedule" }).click();
  await scheduleForm.getByTestId("schedule-state").filter({ hasText: "Scheduled 0 3 * * * (UTC)" }).waitFor();
  await audit(page, "database-backups");
  await dbCard.getByRole("button", { name: "Delete" }).click();
  const deleteDb = page.getByRole("dialog", { name: "Delete database web-db?" });
  await deleteDb.getByLabel("Type web-db to confirm").fill("web-db");
  await deleteDb.getByRole("button", { name: "Delete database" }).click();
  await page.getByRole("heading", { name: "No databases" }).waitFor();
  await page.goto(`${base}/projects/${projectId}`);

  // A repository without a Dockerfile: "New project" shows what was detected, the Build tab
  // shows the plan (a static site: no container), and a deploy serves it at its URL.
  await page.getByRole("link", { name: "← Projects" }).click();
  await page.getByRole("button", { name: "New project" }).click();
  const siteDialog = page.getByRole("dialog", { name: "New project" });
  await siteDialog.getByLabel("Name").fill("Plain Site");
  await siteDialog.getByLabel("Git URL").fill(gitServer.siteUrl);
  await siteDialog.getByRole("button", { name: "Create project" }).click();
  await page.getByRole("heading", { name: "No deployments yet" }).waitFor();
  const siteProject = new URL(page.url()).pathname.split("/")[2];
  await page.getByTestId("detected").waitFor();
  assert.match(await page.getByTestId("detected").innerText(), /Detected static: shard builds it without a Dockerfile/);
  await page.getByRole("link", { name: "Build", exact: true }).click();
  await page.getByTestId("plan-headline").waitFor();
  assert.equal(await page.getByTestId("plan-headline").innerText(), "static");
  assert.match(await page.getByRole("table", { name: "Decisions" }).innerText(), /serve \.\/ as it is[\s\S]*index\.html/);
  await page.getByRole("button", { name: "Deploy", exact: true }).click();
  await page.waitForURL(/\/deployments\//);
  await page.locator(".deployment-status", { hasText: "live" }).waitFor({ timeout: 120000 });
  // The plan heads the build step (the log's search finds it; rows out of view are not drawn).
  await page.getByLabel("Search the log").fill("==> Plan: static in .");
  await page.waitForFunction(() => /of [1-9]/.test(document.querySelector("[data-testid=match-count]")?.textContent ?? ""));
  const sitePage = await context.newPage();
  const siteResponse = await sitePage.goto(`http://plain-site.localhost:${port}/`);
  assert.equal(siteResponse.status(), 200);
  assert.match(await sitePage.locator("h1").innerText(), /planned, not Dockerfiled/);
  await sitePage.close();
  await page.goto(`${base}/projects/${projectId}/settings`);
  await page.getByRole("button", { name: "Save settings" }).waitFor();

  // Webhook: the URL and secret to paste into GitHub; a signed ping and a push to another
  // branch show up as deliveries with what shard did.
  await page.getByRole("link", { name: "Webhook" }).click();
  const hookUrl = await page.getByTestId("webhook-url").innerText();
  assert.match(hookUrl, new RegExp(`/api/v1/webhooks/github\\?project=${projectId}$`));
  assert.doesNotMatch(await page.getByTestId("webhook-secret").innerText(), /[A-Za-z0-9]/, "the secret is hidden until asked");
  await page.getByRole("button", { name: "Show" }).click();
  const hookSecret = (await page.getByTestId("webhook-secret").innerText()).trim();
  assert.ok(hookSecret.length >= 32);
  const deliver = async (event, id, payload) => {
    const body = JSON.stringify(payload);
    const signature = "sha256=" + createHmac("sha256", hookSecret).update(body).digest("hex");
    return fetch(`${base}/api/v1/webhooks/github?project=${projectId}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-github-event": event, "x-github-delivery": id, "x-hub-signature-256": signature },
      body,
    });
  };
  assert.equal((await deliver("ping", "browser-ping", { zen: "Practicality beats purity." })).status, 200);
  const sha = "a".repeat(40);
  const other = await deliver("push", "browser-push-other", { ref: "refs/heads/feature", before: sha, after: sha, deleted: false, pusher: { name: "octocat" } });
  assert.equal(other.status, 200);
  await page.getByRole("button", { name: "Refresh" }).click();
  await page.getByTestId("delivery-browser-ping").getByText("pong").waitFor();
  assert.match(await page.getByTestId("delivery-browser-push-other").innerText(), /ignored[\s\S]*push to feature/);
  await audit(page, "webhook");
  // Pull-request previews through the same webhook (tasks.mjs).
  const again = await api("/auth/login", null, { method: "POST", body: JSON.stringify({ username: "admin", password: "browser-pass-123" }) }).then((r) => r.json());
  const liveSha = (await (await api(`/projects/${projectId}`, again.access_token)).json()).latest_deployment.commit_sha;
  await previewsFlow({ page, audit, deliver, sha: liveSha, appGet });
  await page.getByRole("link", { name: "Webhook" }).click();
  // Rotating the secret: the old one no longer signs a delivery.
  await page.getByRole("button", { name: "Rotate secret" }).click();
  await page.getByText("New secret made.").waitFor();
  assert.notEqual((await page.getByTestId("webhook-secret").innerText()).trim(), hookSecret);
  assert.equal((await deliver("ping", "browser-ping-stale", {})).status, 401);

  // GitHub: connect the account, import a private repository (search, private badge, branch
  // picker, Dockerfile check), see the webhook shard created, and a signed push deploying
  // the pushed commit with commit statuses on GitHub; then disconnect the project.
  await page.getByRole("link", { name: "Account" }).click();
  await page.getByRole("link", { name: "Connect GitHub" }).click();
  await page.waitForURL(/\/account\?github=connected$/);
  await page.getByRole("region", { name: "GitHub" }).getByText("octo", { exact: true }).waitFor();
  await page.goto(base + "/");
  await page.getByRole("link", { name: "Import from GitHub" }).click();
  await page.getByRole("heading", { name: "Import from GitHub" }).waitFor();
  await page.getByLabel("Search repositories").fill("browser");
  const repoRow = page.getByRole("table", { name: "Repositories" }).getByRole("row");
  await page.waitForFunction(() => document.querySelectorAll("table[aria-label=Repositories] tr").length === 1);
  assert.match(await repoRow.innerText(), /acme\/browser-app[\s\S]*private/);
  await page.getByLabel("Search repositories").fill("filler-11");
  await page.waitForFunction(() => document.querySelectorAll("table[aria-label=Repositories] tr").length === 10);
  assert.match(await repoRow.last().innerText(), /acme\/filler-119/, "the second page of repositories is listed");
  await page.getByLabel("Search repositories").fill("browser-app");
  await page.waitForFunction(() => document.querySelectorAll("table[aria-label=Repositories] tr").length === 1);
  await repoRow.getByRole("button", { name: "Select" }).click();
  await page.getByLabel("Branch").locator("option", { hasText: "staging" }).waitFor({ state: "attached" });
  await audit(page, "import");
  await page.getByRole("button", { name: "Import", exact: true }).click();
  const imported = page.getByTestId("import-result");
  await imported.getByText("The Dockerfile is there.").waitFor();
  await imported.getByText("webhook created").waitFor();
  assert.equal(github.state.hooks.length, 1);
  await imported.getByRole("button", { name: "Open the project" }).click();
  await page.getByRole("link", { name: "GitHub" }).click();
  assert.match(await page.getByTestId("github-webhook").innerText(), /created on GitHub/);
  await audit(page, "github-panel");
  const importedId = new URL(page.url()).pathname.split("/")[2];
  // (Not ls-remote: the git server runs in this process, which execFileSync would block.)
  const pushed = execFileSync("git", ["--git-dir", join(dataDir, "git", "repos", "app.git"), "rev-parse", "refs/heads/main"]).toString().trim();
  const hook = github.state.hooks[0];
  const pushBody = JSON.stringify({
    ref: "refs/heads/main", before: "0".repeat(40), after: pushed, created: false, deleted: false, forced: false,
    head_commit: { id: pushed, message: "first", author: { name: "Octo", email: "o@example.com" } },
    pusher: { name: "octo", email: "o@example.com" }, repository: { full_name: "acme/browser-app" },
  });
  const pushResponse = await fetch(hook.url, {
    method: "POST",
    headers: {
      "content-type": "application/json", "x-github-event": "push", "x-github-delivery": "browser-import-push",
      "x-hub-signature-256": "sha256=" + createHmac("sha256", hook.secret).update(pushBody).digest("hex"),
    },
    body: pushBody,
  });
  assert.equal(pushResponse.status, 202);
  const pushedDeployment = (await pushResponse.json()).deployment_id;
  await page.getByRole("button", { name: "Refresh" }).click();
  await page.getByTestId("delivery-browser-import-push").getByRole("link").click();
  await page.locator(".deployment-status", { hasText: "live" }).waitFor({ timeout: 120000 });
  await page.getByTestId("commit-status").getByText("success").waitFor({ timeout: 20000 });
  assert.deepEqual(
    github.state.statuses.filter((s) => s.sha === pushed).map((s) => s.state),
    ["pending", "success"],
  );
  assert.ok(github.state.statuses.every((s) => s.target_url.endsWith(`/projects/${importedId}/deployments/${pushedDeployment}`)));
  await audit(page, "imported-deployment");
  await page.goto(`${base}/projects/${importedId}/webhook`);
  await page.getByRole("button", { name: "Disconnect from GitHub" }).click();
  const unlink = page.getByRole("dialog", { name: "Disconnect browser-app from GitHub?" });
  await unlink.getByLabel("Type browser-app to confirm").fill("browser-app");
  await unlink.getByRole("button", { name: "Disconnect" }).click();
  await page.getByRole("link", { name: "Webhook" }).waitFor();
  assert.deepEqual(github.state.deletedHooks, [{ repo: "acme/browser-app", id: 1 }]);
  await page.goto(`${base}/projects/${importedId}/settings`);
  await page.getByRole("button", { name: "Delete project" }).click();
  const deleteImported = page.getByRole("dialog", { name: "Delete browser-app?" });
  await deleteImported.getByLabel("Type browser-app to confirm").fill("browser-app");
  await deleteImported.getByRole("button", { name: "Delete project" }).click();
  await page.getByRole("link", { name: "Live App" }).waitFor({ timeout: 30000 });

  // Account: an API token shown once, working, then revoked.
  await page.getByRole("link", { name: "Account" }).click();
  await page.getByLabel("Token name").fill("e2e token");
  await page.getByRole("button", { name: "Create token" }).click();
  const shown = page.getByTestId("new-token");
  await shown.waitFor();
  const apiToken = (await shown.locator(".secret-once").innerText()).trim();
  assert.match(apiToken, /^shard_/);
  assert.equal((await api("/projects", apiToken)).status, 200);
  await audit(page, "account");
  await page.getByTestId("token-e2e token").getByRole("button", { name: "Revoke" }).click();
  await page.getByTestId("token-e2e token").waitFor({ state: "detached" });
  assert.equal((await api("/projects", apiToken)).status, 401);

  // Notification channels: a signed webhook to a local receiver, a test sent and seen as
  // delivered, then removed.
  const hooks = [];
  const receiver = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      hooks.push({ headers: req.headers, body: Buffer.concat(chunks).toString() });
      res.end("ok");
    });
  });
  await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  const channels = page.getByRole("region", { name: "Notification channels" });
  await channels.getByLabel("Kind").selectOption("webhook");
  await channels.getByLabel("Payload URL").fill("ftp://nowhere");
  await channels.getByLabel("Signing secret (optional, 16+ characters)").fill("browser-channel-secret");
  await channels.getByRole("button", { name: "Add channel" }).click();
  await channels.locator(".field-error").waitFor();
  await channels.getByLabel("Payload URL").fill(`http://127.0.0.1:${receiver.address().port}/hook`);
  await channels.getByRole("checkbox", { name: "Deploy failed" }).check();
  await channels.getByRole("button", { name: "Add channel" }).click();
  const channel = channels.getByTestId("channel-webhook");
  await channel.waitFor();
  assert.match(await channel.innerText(), /deploy\.failed · signed/);
  await channel.getByRole("button", { name: "Send test" }).click();
  await channel.getByTestId("delivery-test").getByText("delivered").waitFor({ timeout: 20000 });
  assert.equal(hooks.length, 1);
  const expected = "sha256=" + createHmac("sha256", "browser-channel-secret").update(hooks[0].body).digest("hex");
  assert.equal(hooks[0].headers["x-shard-signature-256"], expected);
  assert.equal(JSON.parse(hooks[0].body).event, "test");
  await audit(page, "notification-channels");
  await channel.getByRole("button", { name: "Remove" }).click();
  await channel.waitFor({ state: "detached" });
  receiver.close();

  // Admin pages: users (add a member) and the live system snapshot.
  await page.getByRole("link", { name: "Users" }).click();
  await page.getByRole("button", { name: "Add user" }).click();
  const addUser = page.getByRole("dialog", { name: "Add user" });
  await addUser.getByLabel("Username").fill("member1");
  await addUser.getByLabel("Password").fill("member-pass-123");
  await addUser.getByRole("button", { name: "Add user" }).click();
  await page.getByTestId("user-member1").waitFor();
  await audit(page, "users");

  // Teams, invitations, roles, a scoped token, the audit log, a CLI sign-in (teams.mjs).
  const { teamId } = await teamsFlow({ browser, base, page, audit, api, member: "member1", memberPassword: "member-pass-123", gitUrl: gitServer.url });
  // Swarm nodes: listed live, labels and availability, a project's replicas (nodes.mjs).
  await nodesFlow({ base, page, audit, api, password: "browser-pass-123", projectId });
  await page.getByRole("link", { name: "System" }).click();
  await page.getByTestId("system").waitFor({ timeout: 20000 });
  assert.match(await page.getByTestId("system").innerText(), /reachable/);
  assert.match(await page.getByTestId("host").innerText(), /App containers\s+\d+ running of \d+/);
  // The doctor's checks, run now on request: Docker answers, the database passes.
  const checks = page.getByRole("region", { name: "Health checks" });
  await checks.getByRole("button", { name: "Run checks now" }).click();
  await checks.getByTestId("health-checks").locator("[data-check=database]").waitFor();
  assert.match(await checks.locator("[data-check=docker]").innerText(), /ok\s+docker\s+Docker .* answers/);
  assert.match(await checks.locator("[data-check=database]").innerText(), /ok\s+database/);
  // The installation's own backups: encrypted to an age public key (a bad one is refused in
  // words), taken now into the first destination, listed as succeeded with its size.
  const instance = page.getByRole("region", { name: "Backups of shard" });
  const instanceSchedule = page.getByRole("form", { name: "Backup schedule of shard" });
  await instanceSchedule.getByLabel("Schedule (cron, UTC)").fill("0 4 * * *");
  await instanceSchedule.getByLabel("Encrypt to (age public keys)").fill("age1notakey");
  await instanceSchedule.getByRole("button", { name: "Save schedule" }).click();
  await instanceSchedule.locator(".field-error", { hasText: "not an age recipient" }).waitFor();
  await instanceSchedule.getByLabel("Encrypt to (age public keys)").fill("age1phrqsruz80ppd4e9xmmywdywtte9n2lfu7v3je9ms8g8ug6ece8q57zqad");
  await instanceSchedule.getByRole("button", { name: "Save schedule" }).click();
  await instanceSchedule.getByTestId("schedule-state").filter({ hasText: "Scheduled 0 4 * * * (UTC)" }).waitFor();
  await instance.getByRole("button", { name: "Back up now" }).click();
  const instanceRow = page.getByRole("table", { name: "Backups of shard list" }).locator("tbody tr").first();
  await instanceRow.locator(".badge", { hasText: "succeeded" }).waitFor({ timeout: 60000 });
  assert.match(await instanceRow.innerText(), /shard-instance\/.*\.age/);
  await audit(page, "system-instance-backups");
  // The volume detached from Live App waits here for an admin (attach elsewhere, or delete).
  const detachedRow = page.getByRole("table", { name: "Detached volumes" }).locator("tbody tr").first();
  assert.match(await detachedRow.innerText(), /data[\s\S]*\/data[\s\S]*Live App/);
  await audit(page, "system");
  // Stay past an access token's 30 s life: the live snapshot keeps coming (the socket
  // re-authenticates with a refreshed token instead of going quiet).
  await page.waitForTimeout(35000);
  const updated = await page.getByTestId("system").locator("time").getAttribute("datetime");
  assert.ok(Date.now() - new Date(updated).getTime() < 15000, `the system snapshot went stale after token expiry (last ${updated})`);

  // The bell holds the deploy notifications.
  await page.getByTestId("bell").click();
  await page.getByRole("region", { name: "Notifications" }).getByText("Live App is live").first().waitFor();
  assert.match(await page.getByTestId("bell").getAttribute("aria-label"), /Notifications, [1-9]\d* unread/);
  await audit(page, "notifications");
  await page.getByRole("button", { name: "Mark all read" }).click();
  assert.equal(await page.getByTestId("bell").getAttribute("aria-label"), "Notifications");
  await page.keyboard.press("Escape");
  await page.getByRole("region", { name: "Notifications" }).waitFor({ state: "detached" });
  // Read state survives a reload (kept per user in this browser).
  await page.reload();
  await page.getByTestId("bell").click();
  const replayed = page.getByRole("region", { name: "Notifications" }).locator(".notice");
  await replayed.first().waitFor();
  assert.equal(await replayed.locator("xpath=self::*[contains(@class, 'unread')]").count(), 0);
  assert.equal(await page.getByTestId("bell").getAttribute("aria-label"), "Notifications");
  await page.keyboard.press("Escape");

  // Narrow and dark: the same screens at 360 px with the dark theme.
  const narrow = await browser.newContext({ viewport: { width: 360, height: 740 }, colorScheme: "dark" });
  const phone = await narrow.newPage();
  phone.on("pageerror", (e) => consoleErrors.push(String(e)));
  await phone.goto(base + "/login");
  await phone.getByRole("heading", { name: "Sign in to shard" }).waitFor();
  await audit(phone, "dark-360-login");
  await phone.getByLabel("Username").fill("admin");
  await phone.getByLabel("Password").fill("browser-pass-123");
  await phone.getByRole("button", { name: "Sign in" }).click();
  await phone.getByRole("link", { name: "Live App" }).waitFor();
  assert.equal(await phone.evaluate(() => getComputedStyle(document.body).backgroundColor), "rgb(15, 15, 20)");
  await audit(phone, "dark-360-projects");
  await phone.getByRole("button", { name: "New project" }).click();
  await phone.getByRole("dialog", { name: "New project" }).getByLabel("Name").waitFor();
  await audit(phone, "dark-360-new-project");
  await phone.keyboard.press("Escape");
  await phone.getByRole("dialog", { name: "New project" }).waitFor({ state: "hidden" });
  for (const [path, name, ready] of [
    [`/projects/${projectId}`, "dark-360-deployments", "View log"],
    [`/projects/${projectId}/deployments/${firstDeployment}`, "dark-360-deployment", "Download"],
    [`/projects/${projectId}/metrics`, "dark-360-metrics", "24 h"],
    [`/projects/${projectId}/env`, "dark-360-environment", "Save variables"],
    [`/projects/${projectId}/domains`, "dark-360-domains", "Add domain"],
    [`/projects/${projectId}/settings`, "dark-360-settings", "Save settings"],
    [`/projects/${siteProject}/build`, "dark-360-build", "Copy Dockerfile"],
    [`/projects/${projectId}/volumes`, "dark-360-volumes", "Add volume"],
    [`/projects/${projectId}/files`, "dark-360-files", "Upload"],
    [`/projects/${projectId}/jobs`, "dark-360-jobs", "Save job"],
    [`/projects/${projectId}/previews`, "dark-360-previews", "Save preview settings"],
    [`/projects/${projectId}/terminal`, "dark-360-terminal", "Connect"],
    ["/databases", "dark-360-databases", "Create database"],
    [`/projects/${projectId}/webhook`, "dark-360-webhook", "Refresh"],
    ["/account", "dark-360-account", "Create token"],
    ["/admin/users", "dark-360-users", "Add user"],
    ["/teams", "dark-360-teams", "New team"],
    [`/teams/${teamId}`, "dark-360-team", "Invite"],
    ["/audit", "dark-360-audit", "Filter"],
    ["/nodes", "dark-360-nodes", "Save labels"],
  ]) {
    await phone.goto(base + path);
    await phone.getByText(ready, { exact: true }).first().waitFor();
    await audit(phone, name);
  }
  await narrow.close();

  // Keyboard: the first Tab lands on a visible, focus-ringed control.
  await page.goto(base + "/");
  await page.getByRole("link", { name: "Live App" }).waitFor();
  await page.keyboard.press("Tab");
  const focused = await page.evaluate(() => {
    const e = document.activeElement;
    return { tag: e.tagName, text: e.textContent, outline: getComputedStyle(e).outlineStyle };
  });
  assert.notEqual(focused.tag, "BODY", "Tab reaches a control");
  assert.notEqual(focused.outline, "none", `focus is visible on ${JSON.stringify(focused)}`);

  // The site project goes through the API; then the last one with a typed confirmation.
  const signedIn = await api("/auth/login", null, { method: "POST", body: JSON.stringify({ username: "admin", password: "browser-pass-123" }) }).then((r) => r.json());
  assert.equal((await api(`/projects/${siteProject}`, signedIn.access_token, { method: "DELETE" })).status, 204);
  await page.goto(`${base}/projects/${projectId}/settings`);
  await page.getByRole("button", { name: "Delete project" }).click();
  const confirm = page.getByRole("dialog", { name: "Delete Live App?" });
  const confirmButton = confirm.getByRole("button", { name: "Delete project" });
  assert.ok(await confirmButton.isDisabled());
  await confirm.getByLabel("Type live-app to confirm").fill("live-app");
  await confirmButton.click();
  await page.getByRole("heading", { name: "No projects yet" }).waitFor({ timeout: 30000 });
  assert.equal((await appGet(`${appUrl}/?after=delete`)).status, 404);

  assert.deepEqual(consoleErrors, [], "no uncaught errors in the page");
  console.log(`browser test passed; axe clean and no sideways scroll on: ${checked.join(", ")}`);
  console.log(`screenshots: ${shots}`);
} finally {
  await browser?.close();
  gitServer?.server.close();
  github.server.close();
  moto.kill("SIGTERM");
  shard.kill("SIGTERM");
  rmSync(dataDir, { recursive: true, force: true });
}
