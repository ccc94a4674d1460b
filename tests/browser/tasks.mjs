// The jobs-and-terminal part of the dashboard's end-to-end test, on the live busybox app: a
// one-off command's output and exit code, a scheduled job (a bad cron refused in words, saved,
// run now, its runs listed, deleted with a typed confirmation), and a terminal (xterm.js,
// under the dashboard's strict CSP) answering a command and ending with the shell's code.
import assert from "node:assert/strict";

/** `page` shows the project `projectId`, which is live, as an instance admin. */
export async function tasksFlow({ page, audit, projectId }) {
  await page.getByRole("link", { name: "Jobs", exact: true }).click();
  const runForm = page.getByRole("form", { name: "Run a command" });
  await runForm.getByLabel("Command").fill(`/bin/busybox sh -c 'echo hello-from-a-run; echo to-stderr >&2; exit 4'`);
  await runForm.getByRole("button", { name: "Run" }).click();
  const output = page.getByRole("region", { name: /^Output of run / });
  await output.getByText("hello-from-a-run").waitFor({ timeout: 30000 });
  await output.getByTestId("run-exit").filter({ hasText: "exit 4" }).waitFor({ timeout: 30000 });
  await page.getByRole("table", { name: "Recent commands" }).locator("tbody tr").first().waitFor();
  await audit(page, "jobs-command");

  // A job: the server's word on a bad schedule appears under the field.
  const jobForm = page.getByRole("form", { name: "Add a job" });
  await jobForm.getByLabel("Name").fill("nightly");
  await jobForm.getByLabel("Schedule").fill("every night");
  await jobForm.getByLabel("Job command").fill("/bin/busybox echo nightly-report");
  await jobForm.getByRole("button", { name: "Save job" }).click();
  await jobForm.locator(".field-error").waitFor();
  assert.match(await jobForm.locator(".field-error").innerText(), /cron/);
  await jobForm.getByLabel("Schedule").fill("0 3 * * *");
  await jobForm.getByRole("button", { name: "Save job" }).click();
  const jobRow = page.getByRole("table", { name: "Scheduled jobs" }).getByTestId("job").first();
  await jobRow.waitFor();
  assert.match(await jobRow.innerText(), /nightly[\s\S]*0 3 \* \* \*[\s\S]*never/);
  await jobRow.getByRole("button", { name: "Run now" }).click();
  await output.getByText("nightly-report").waitFor({ timeout: 30000 });
  await output.getByTestId("run-exit").filter({ hasText: "exit 0" }).waitFor({ timeout: 30000 });
  const jobRuns = page.getByRole("table", { name: "Runs of nightly" });
  await jobRuns.locator("tbody tr").first().waitFor();
  await page.reload();
  await page.getByRole("table", { name: "Scheduled jobs" }).getByTestId("job").first().getByText("succeeded").waitFor({ timeout: 30000 });
  await audit(page, "jobs");
  await page.getByRole("table", { name: "Scheduled jobs" }).getByRole("button", { name: "Delete" }).click();
  const confirm = page.getByRole("dialog", { name: "Delete job nightly?" });
  await confirm.getByLabel("Type nightly to confirm").fill("nightly");
  await confirm.getByRole("button", { name: "Delete job" }).click();
  await page.getByRole("heading", { name: "No scheduled jobs" }).waitFor();

  // The terminal: xterm.js loaded on demand, a shell in the running container.
  await page.getByRole("link", { name: "Terminal", exact: true }).click();
  await page.getByRole("button", { name: "Connect" }).click();
  const terminal = page.getByTestId("terminal");
  await page.locator('[data-testid="terminal"][data-state="open"]').waitFor({ timeout: 20000 });
  await terminal.locator(".xterm-helper-textarea").focus();
  await page.keyboard.type("echo $((6*7))-answer\n");
  await terminal.locator(".xterm-rows").getByText("42-answer").waitFor({ timeout: 20000 });
  // Its size follows the panel: the rows xterm measured are drawn (the CSP-safe styles apply).
  const rows = await terminal.locator(".xterm-rows > div").count();
  assert.ok(rows >= 10, `the terminal has ${rows} rows`);
  assert.equal(await page.getByRole("alert").filter({ hasText: /\S/ }).count(), 0, "no error beside the terminal");
  await audit(page, "terminal");
  await page.keyboard.type("exit 2\n");
  await page.getByText("The session ended with code 2").waitFor({ timeout: 20000 });
  assert.ok(projectId);
}

/**
 * Previews on the Previews tab: turned on (a bad limit refused in words), a signed
 * `pull_request` delivery deploys the pull request's head at its own address, a fork's waits
 * for Approve, and Delete removes one with a typed confirmation.
 */
export async function previewsFlow({ page, audit, deliver, sha, appGet }) {
  await page.getByRole("link", { name: "Previews", exact: true }).click();
  const form = page.getByRole("form", { name: "Preview settings" });
  await form.getByLabel("Build previews of pull requests").check();
  await form.getByLabel("Previews at most").fill("0");
  await form.getByRole("button", { name: "Save preview settings" }).click();
  await form.locator(".field-error").waitFor();
  assert.match(await form.locator(".field-error").innerText(), /must be 1 to/);
  await form.getByLabel("Previews at most").fill("3");
  await form.getByRole("button", { name: "Save preview settings" }).click();
  await page.getByText("Previews on").first().waitFor();

  const pull = (action, number, headRepo) => ({
    action,
    number,
    pull_request: {
      title: `Change ${number}`,
      user: { login: "contributor" },
      head: { sha, ref: `feature-${number}`, repo: { full_name: headRepo } },
      base: { sha, ref: "main", repo: { full_name: "acme/live-app" } },
    },
  });
  assert.equal((await deliver("pull_request", "browser-pr-3", pull("opened", 3, "acme/live-app"))).status, 202);
  const three = page.getByTestId("preview-3");
  await three.getByText("live", { exact: true }).waitFor({ timeout: 120000 });
  const url = await three.getByRole("link", { name: /^http/ }).innerText();
  assert.match(url, /^http:\/\/pr-3-live-app\.localhost:\d+$/);
  assert.equal((await appGet(`${url}/`)).status, 200);
  await audit(page, "previews");

  // A fork's pull request builds only once approved.
  assert.equal((await deliver("pull_request", "browser-pr-4", pull("opened", 4, "mallory/live-app"))).status, 200);
  const four = page.getByTestId("preview-4");
  await four.getByText("awaiting approval").waitFor({ timeout: 20000 });
  await four.getByRole("button", { name: "Approve" }).click();
  await four.getByText("live", { exact: true }).waitFor({ timeout: 120000 });

  // Deleted from the page: its address stops answering.
  await three.getByRole("button", { name: "Delete" }).click();
  const confirm = page.getByRole("dialog", { name: "Delete the preview of #3?" });
  await confirm.getByLabel("Type 3 to confirm").fill("3");
  await confirm.getByRole("button", { name: "Delete preview" }).click();
  await three.waitFor({ state: "detached", timeout: 30000 });
  assert.equal((await appGet(`${url}/`)).status, 404);
}
