// The measuring half of bench/run-dashboard (see there). Usage: node dashboard.mjs SHARD LINES
import { execFileSync, spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, serveGit } from "../tests/browser/gitserver.mjs";

const require = createRequire(new URL("../tests/browser/package.json", import.meta.url));
const { chromium } = require("playwright-core");
const [binary, linesArg] = process.argv.slice(2);
const LINES = Number(linesArg ?? 100000);

const root = mkdtempSync(join(tmpdir(), "shard-bench-dash-"));
const work = join(root, "work");
mkdirSync(join(work, "www"), { recursive: true });
copyFileSync("/bin/busybox", join(work, "busybox"));
writeFileSync(join(work, "www", "index.html"), "ok\n");
writeFileSync(
  join(work, "Dockerfile"),
  `FROM scratch\nCOPY busybox /bin/busybox\nCOPY www /www\nRUN ["/bin/busybox", "sh", "-c", "/bin/busybox seq 1 ${LINES} | /bin/busybox sed 's/.*/build output line & with some text/'"]\nCMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]\n`,
);
const git = (...args) => execFileSync("git", ["-c", "user.name=b", "-c", "user.email=b@x", ...args], { cwd: work, stdio: "pipe" });
git("init", "-q", "-b", "main");
git("add", "-A");
git("commit", "-q", "-m", "bench");

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const dataDir = join(root, "data");
const shard = spawn(binary, ["serve"], {
  env: {
    ...process.env,
    SHARD_DATA_DIR: dataDir,
    SHARD_LISTEN: `127.0.0.1:${port}`,
    SHARD_LOG__LEVEL: "error",
    SHARD_DEPLOY__MAX_LOG_LINES: String(LINES + 1000),
  },
  stdio: ["ignore", "inherit", "inherit"],
});
const api = (path, token, body, method = body ? "POST" : "GET") =>
  fetch(`${base}/api/v1${path}`, {
    method,
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  }).then((r) => r.json());

let browser;
try {
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/health`)).ok) break;
    } catch {}
    if (i > 200) throw new Error("shard did not start");
    await new Promise((r) => setTimeout(r, 50));
  }
  const setupToken = readFileSync(join(dataDir, "setup-token"), "utf8").trim();
  const { access_token: token } = await api("/auth/setup", null, { token: setupToken, username: "bench", password: "bench-password-1" });
  const { url } = await startGit(root, work);
  const project = await api("/projects", token, { name: "bench-log", git_url: url });
  const { id: deployment } = await api(`/projects/${project.id}/deployments`, token, {});
  for (let i = 0; ; i++) {
    const d = await api(`/deployments/${deployment}`, token);
    if (["live", "failed", "cancelled"].includes(d.status)) {
      if (d.status !== "live") throw new Error(`deploy ended ${d.status}: ${d.error}`);
      break;
    }
    if (i > 600) throw new Error("deploy did not finish");
    await new Promise((r) => setTimeout(r, 500));
  }
  let persisted = 0;
  for (let since = 0; ; ) {
    const page = await api(`/deployments/${deployment}/logs?since=${since}`, token);
    if (!page.length) break;
    persisted += page.length;
    since = page[page.length - 1].seq;
  }

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--enable-precise-memory-info"],
  });
  const frameProbe = () => {
    window.__frames = [];
    let last = performance.now();
    const loop = (t) => {
      window.__frames.push(t - last);
      last = t;
      window.__rafId = requestAnimationFrame(loop);
    };
    window.__rafId = requestAnimationFrame(loop);
  };
  const stats = async (page) =>
    page.evaluate(() => {
      cancelAnimationFrame(window.__rafId);
      const f = window.__frames.slice(1).sort((a, b) => a - b);
      const q = (p) => f[Math.min(f.length - 1, Math.floor(p * f.length))] ?? 0;
      return { p50: q(0.5), p95: q(0.95), max: f[f.length - 1] ?? 0, long: f.filter((x) => x > 50).length };
    });
  const scrollThrough = async (page, selector) => {
    await page.evaluate(frameProbe);
    await page.evaluate(async (sel) => {
      const el = sel === "document" ? document.scrollingElement : document.querySelector(sel);
      el.scrollTop = 0;
      const steps = 120;
      for (let i = 1; i <= steps; i++) {
        el.scrollTop = (el.scrollHeight * i) / steps;
        await new Promise((r) => requestAnimationFrame(() => r()));
      }
    }, selector);
    return stats(page);
  };
  const memory = (page) =>
    page.evaluate(() => ({ nodes: document.getElementsByTagName("*").length, heap: performance.memory?.usedJSHeapSize ?? 0 }));

  const results = {};
  // shard's dashboard.
  {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.goto(`${base}/login`);
    await page.getByLabel("Username").fill("bench");
    await page.getByLabel("Password").fill("bench-password-1");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Projects", exact: true }).waitFor();
    await page.addInitScript(frameProbe);
    const start = Date.now();
    await page.goto(`${base}/projects/${project.id}/deployments/${deployment}`);
    await page.waitForFunction((n) => document.querySelector('[data-testid="line-count"]')?.textContent === `${n.toLocaleString()} lines`, persisted, { timeout: 300000, polling: 50 });
    const loaded = Date.now() - start;
    const load = await stats(page);
    const mem = await memory(page);
    const scroll = await scrollThrough(page, ".log");
    results.shard = { loaded, load, scroll, ...mem };
    await context.close();
  }
  // The naive page: same replay, a <div> per line.
  {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.goto(`${base}/health`);
    await page.evaluate(frameProbe);
    const start = Date.now();
    await page.evaluate(
      ({ token, topic }) => {
        document.documentElement.innerHTML = "<body style='font:12.5px monospace;white-space:pre'></body>";
        window.__count = 0;
        const ws = new WebSocket(`ws://${location.host}/api/v1/ws`);
        ws.onopen = () => {
          ws.send(JSON.stringify({ op: "auth", token }));
          ws.send(JSON.stringify({ op: "subscribe", topic, since: 0 }));
        };
        const add = (m) => {
          if (m.type !== "log" && m.type !== "status") return;
          const div = document.createElement("div");
          div.textContent = m.type === "log" ? m.line : `— ${m.status} —`;
          document.body.append(div);
          window.__count++;
        };
        ws.onmessage = (e) => {
          const m = JSON.parse(e.data);
          if (m.type === "batch") m.events.forEach(add);
          else add(m);
        };
      },
      { token, topic: `deployment:${deployment}` },
    );
    await page.waitForFunction((n) => window.__count >= n, persisted, { timeout: 300000, polling: 50 });
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
    const loaded = Date.now() - start;
    const load = await stats(page);
    const mem = await memory(page);
    const scroll = await scrollThrough(page, "document");
    results.naive = { loaded, load, scroll, ...mem };
    await context.close();
  }

  const ms = (x) => `${x.toFixed(1)} ms`;
  const rows = [
    ["all lines shown", (r) => `${r.loaded} ms`, (r) => r.loaded],
    ["frame p50 while loading", (r) => ms(r.load.p50), (r) => r.load.p50],
    ["frame p95 while loading", (r) => ms(r.load.p95), (r) => r.load.p95],
    ["longest frame while loading", (r) => ms(r.load.max), (r) => r.load.max],
    ["frame p95 scrolling end to end", (r) => ms(r.scroll.p95), (r) => r.scroll.p95],
    ["longest frame scrolling", (r) => ms(r.scroll.max), (r) => r.scroll.max],
    ["frames > 50 ms scrolling", (r) => String(r.scroll.long), (r) => r.scroll.long],
    ["DOM elements", (r) => String(r.nodes), (r) => r.nodes],
    ["JS heap", (r) => `${(r.heap / 1048576).toFixed(1)} MiB`, (r) => r.heap],
  ];
  console.log(`\nlog of ${persisted.toLocaleString()} lines (build printed ${LINES.toLocaleString()}), Chromium ${browser.version()}`);
  console.log("| measure | shard dashboard | naive <div> per line | shard / naive |");
  console.log("|---|---|---|---|");
  for (const [name, show, value] of rows) {
    const a = value(results.shard);
    const b = value(results.naive);
    console.log(`| ${name} | ${show(results.shard)} | ${show(results.naive)} | ${b ? (a / b).toFixed(2) : "–"} |`);
  }
} finally {
  await browser?.close();
  shard.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 500));
  rmSync(root, { recursive: true, force: true });
}

/** The bench repository as a bare clone, served over smart HTTP. */
async function startGit(root, work) {
  const repos = join(root, "repos");
  mkdirSync(repos);
  execFileSync("git", ["clone", "-q", "--bare", work, join(repos, "app.git")]);
  const server = await serveGit(repos);
  server.unref();
  return { url: `http://127.0.0.1:${server.address().port}/app.git` };
}
