// End-to-end test of the embedded dashboard: starts a real `shard serve`, drives Debian's
// Chromium through first-run setup, the projects list, validation errors, the project page and
// sign-out. Usage: node dashboard.mjs <path to the shard binary>. Exits non-zero on failure.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
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

const port = await freePort();
const dataDir = mkdtempSync(join(tmpdir(), "shard-browser-"));
const base = `http://127.0.0.1:${port}`;
const shard = spawn(binary, ["serve"], {
  env: { ...process.env, SHARD_DATA_DIR: dataDir, SHARD_LISTEN: `127.0.0.1:${port}`, SHARD_LOG__LEVEL: "warn" },
  stdio: ["ignore", "inherit", "inherit"],
});

let browser;
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
  page.on("pageerror", (e) => consoleErrors.push(String(e)));

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

  assert.deepEqual(consoleErrors, [], "no uncaught errors in the page");
  console.log("browser test passed: setup, projects, validation, project page, sign-out, sign-in, two tabs");
} finally {
  await browser?.close();
  shard.kill("SIGTERM");
  rmSync(dataDir, { recursive: true, force: true });
}
