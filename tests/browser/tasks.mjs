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
