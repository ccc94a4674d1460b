// End-to-end test of the embedded dashboard: starts a real `shard serve`, drives Debian's
// Chromium through first-run setup, the projects list, validation errors, the project page,
// sign-out, two tabs, and a real deploy (git over smart HTTP, Docker) whose build log streams
// into the page live. Usage: node dashboard.mjs <path to the shard binary>. Exits non-zero on
// failure. Needs git, a running Docker engine and /bin/busybox (busybox-static).
import { execFileSync, spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const binary = process.argv[2];
assert.ok(binary, "usage: node dashboard.mjs <shard binary>");

const freePort = () =>
  new Promise((resolve) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

/** A bare repository with a busybox web app, served by `git http-backend` over smart HTTP. */
async function startGitServer(root) {
  const work = join(root, "work");
  mkdirSync(join(work, "www"), { recursive: true });
  copyFileSync("/bin/busybox", join(work, "busybox"));
  writeFileSync(join(work, "www", "index.html"), `hello from the browser test ${Date.now()}\n`);
  writeFileSync(
    join(work, "Dockerfile"),
    [
      "FROM scratch",
      "COPY busybox /bin/busybox",
      "COPY www /www",
      `RUN ["/bin/busybox", "sh", "-c", "printf '\\\\033[32mgreen step\\\\033[0m\\\\n'; /bin/busybox seq 1 20"]`,
      "EXPOSE 8080",
      `CMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]`,
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

  const server = createHttpServer((req, res) => {
    const url = new URL(req.url, "http://x");
    const cgi = spawn("git", ["http-backend"], {
      env: {
        PATH: process.env.PATH,
        GIT_PROJECT_ROOT: repos,
        GIT_HTTP_EXPORT_ALL: "1",
        PATH_INFO: url.pathname,
        QUERY_STRING: url.search.slice(1),
        REQUEST_METHOD: req.method,
        CONTENT_TYPE: req.headers["content-type"] ?? "",
        GIT_PROTOCOL: req.headers["git-protocol"] ?? "",
        HTTP_CONTENT_ENCODING: req.headers["content-encoding"] ?? "",
        REMOTE_ADDR: "127.0.0.1",
      },
    });
    req.pipe(cgi.stdin);
    const chunks = [];
    cgi.stdout.on("data", (c) => chunks.push(c));
    cgi.on("close", () => {
      const out = Buffer.concat(chunks);
      let end = out.indexOf("\r\n\r\n");
      let sep = 4;
      if (end < 0) [end, sep] = [out.indexOf("\n\n"), 2];
      if (end < 0) return res.writeHead(502).end();
      let status = 200;
      const headers = {};
      for (const line of out.subarray(0, end).toString().split(/\r?\n/)) {
        const at = line.indexOf(":");
        if (at < 0) continue;
        const [name, value] = [line.slice(0, at).trim(), line.slice(at + 1).trim()];
        if (name.toLowerCase() === "status") status = parseInt(value, 10);
        else headers[name] = value;
      }
      res.writeHead(status, headers).end(out.subarray(end + sep));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, url: `http://127.0.0.1:${server.address().port}/app.git` };
}

const port = await freePort();
const dataDir = mkdtempSync(join(tmpdir(), "shard-browser-"));
const base = `http://127.0.0.1:${port}`;
const shard = spawn(binary, ["serve"], {
  env: { ...process.env, SHARD_DATA_DIR: dataDir, SHARD_LISTEN: `127.0.0.1:${port}`, SHARD_LOG__LEVEL: "warn" },
  stdio: ["ignore", "inherit", "inherit"],
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

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run"],
  });
  const context = await browser.newContext();
  const page = await context.newPage();
  const consoleErrors = [];
  page.on("pageerror", (e) => consoleErrors.push(String(e.stack ?? e)));

  // Signed out, the dashboard sends us to the login page.
  await page.goto(base + "/");
  await page.getByRole("heading", { name: "Sign in to shard" }).waitFor();

  // First-run setup with the token from the setup URL.
  await page.goto(`${base}/setup?token=${token}`);
  assert.equal(await page.getByLabel("Setup token").inputValue(), token);
  await page.getByLabel("Admin username").fill("admin");
  await page.getByLabel("Password (8+ characters)").fill("browser-pass-123");
  await page.getByRole("button", { name: "Create admin" }).click();
  await page.getByRole("heading", { name: "Projects" }).waitFor();
  assert.ok(await page.getByText("admin (admin)").isVisible());

  // A bad git URL shows the server's field error.
  await page.getByLabel("Name").fill("My Blog");
  await page.getByLabel("Git URL").fill("file:///etc/passwd");
  await page.getByRole("button", { name: "Create project" }).click();
  const alert = page.getByRole("alert");
  await alert.waitFor();
  assert.match(await alert.innerText(), /git_url: file:\/\/ URLs are not allowed/);

  // A good project appears in the list with its URL.
  await page.getByLabel("Git URL").fill("https://example.com/acme/blog.git");
  await page.getByRole("button", { name: "Create project" }).click();
  const link = page.getByRole("link", { name: "My Blog" });
  await link.waitFor();
  assert.ok(await page.getByText(`http://my-blog.localhost:${port}`).isVisible());

  // The project page (a client-side route, also served on reload).
  await link.click();
  await page.getByRole("button", { name: "Deploy now" }).waitFor();
  await page.reload();
  await page.getByRole("button", { name: "Deploy now" }).waitFor();
  assert.match(await page.locator("h1").innerText(), /My Blog\s+new/);

  // The session survives a reload through the refresh cookie; sign-out ends it.
  await page.goto(base + "/");
  await page.getByRole("heading", { name: "Projects" }).waitFor();
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in to shard" }).waitFor();
  await page.reload();
  await page.getByRole("heading", { name: "Sign in to shard" }).waitFor();

  // Wrong password, then the right one.
  await page.getByLabel("Username").fill("admin");
  await page.getByLabel("Password").fill("wrong-password");
  await page.getByRole("button", { name: "Sign in" }).click();
  assert.match(await page.getByRole("alert").innerText(), /wrong username or password/);
  await page.getByLabel("Password").fill("browser-pass-123");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("link", { name: "My Blog" }).waitFor();

  // Two tabs of one browser share the single-use refresh cookie; loading both at the same
  // moment must not look like token reuse (which would sign both out).
  const tab2 = await context.newPage();
  tab2.on("pageerror", (e) => consoleErrors.push(String(e)));
  for (let i = 0; i < 5; i++) {
    await Promise.all([page.reload(), tab2.goto(base + "/")]);
    await Promise.all([
      page.getByRole("link", { name: "My Blog" }).waitFor({ timeout: 10000 }),
      tab2.getByRole("link", { name: "My Blog" }).waitFor({ timeout: 10000 }),
    ]);
  }

  // A real deploy, watched live: the build log streams into the page, ANSI colours rendered,
  // and the project turns live.
  gitServer = await startGitServer(join(dataDir, "git"));
  await page.goto(base + "/");
  await page.getByLabel("Name").fill("Live App");
  await page.getByLabel("Git URL").fill(gitServer.url);
  await page.getByRole("button", { name: "Create project" }).click();
  await page.getByRole("link", { name: "Live App" }).click();
  await page.getByRole("button", { name: "Deploy now" }).click();
  const log = page.getByTestId("log");
  try {
    await log.getByText("==> Building").waitFor({ timeout: 60000 });
    await log.getByText(/==> Live at/).waitFor({ timeout: 120000 });
  } catch (e) {
    const text = (locator) => locator.innerText({ timeout: 1000 }).catch((e) => `(none: ${e.message.split("\n")[0]})`);
    console.error(`page errors: ${consoleErrors.join(" | ")}\nthe page ${page.url()}: ${await text(page.locator("body"))}\nits build log:\n${await text(log)}`);
    throw e;
  }
  assert.match(await log.innerText(), /— live —/);
  const green = log.getByText("green step").last();
  assert.equal(await green.evaluate((e) => getComputedStyle(e).color), "rgb(39, 174, 96)");
  for (let n = 1; n <= 20; n++) assert.ok(await log.getByText(String(n), { exact: true }).count(), `build line ${n} shown`);
  await page.locator("h1 .badge", { hasText: "live" }).waitFor({ timeout: 30000 });
  await page.locator("h1 .badge.runtime", { hasText: "running" }).waitFor({ timeout: 10000 });

  // The app at its own URL, through shard's proxy (Chromium resolves *.localhost to loopback).
  const appUrl = await page.getByTestId("app-url").getAttribute("href");
  assert.match(appUrl, /^http:\/\/live-app\.localhost:\d+$/);
  const appPage = await page.context().newPage();
  const appResponse = await appPage.goto(appUrl);
  assert.equal(appResponse.status(), 200);
  assert.match(await appPage.locator("body").innerText(), /hello from the browser test/);

  // Domains: a bad name is refused with the reason; a good one shows what to set in DNS.
  const domains = page.getByRole("region", { name: "Domains" });
  await domains.getByLabel("Domain").fill("not a domain");
  await domains.getByRole("button", { name: "Add domain" }).click();
  await domains.getByRole("alert").waitFor();
  assert.match(await domains.getByRole("alert").innerText(), /domain/);
  await domains.getByLabel("Domain").fill("www.example.test");
  await domains.getByRole("button", { name: "Add domain" }).click();
  const entry = domains.getByTestId("domain-www.example.test");
  await entry.waitFor();
  assert.match(await entry.innerText(), /pending/);
  assert.match(await entry.innerText(), /_shard-challenge\.www\.example\.test/);
  assert.match(await entry.innerText(), /live-app\.localhost/);

  // Stop from the page: the app's URL answers with the stopped page; start brings it back.
  await page.getByRole("button", { name: "Stop", exact: true }).click();
  await page.locator("h1 .badge.runtime", { hasText: "stopped" }).waitFor({ timeout: 15000 });
  // A query of its own each time: the browser may answer a repeated URL from its cache.
  const stopped = await appPage.goto(`${appUrl}/?after=stop`);
  assert.equal(stopped.status(), 503);
  assert.match(await appPage.locator("body").innerText(), /Live App is stopped/);
  await page.getByRole("button", { name: "Start", exact: true }).click();
  await page.locator("h1 .badge.runtime", { hasText: "running" }).waitFor({ timeout: 15000 });
  assert.equal((await appPage.goto(`${appUrl}/?after=start`)).status(), 200);
  await appPage.close();

  // Clean up its container and image through the API.
  const login = await fetch(`${base}/api/v1/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: "admin", password: "browser-pass-123" }),
  }).then((r) => r.json());
  const projectId = new URL(page.url()).pathname.split("/").pop();
  const deleted = await fetch(`${base}/api/v1/projects/${projectId}`, {
    method: "DELETE",
    headers: { authorization: `Bearer ${login.access_token}` },
  });
  assert.equal(deleted.status, 204);

  assert.deepEqual(consoleErrors, [], "no uncaught errors in the page");
  console.log("browser test passed: setup, projects, validation, project page, sign-out, sign-in, two tabs, live deploy, app URL, domains, stop/start");
} finally {
  await browser?.close();
  gitServer?.server.close();
  shard.kill("SIGTERM");
  rmSync(dataDir, { recursive: true, force: true });
}
