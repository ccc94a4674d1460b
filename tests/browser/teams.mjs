// The teams part of the dashboard's end-to-end test: a team created, a member invited by a
// link they open signed out (and accept after signing in), the team switcher and a project
// created in the team, a role change felt at once, a scoped API token, the audit log with its
// filters, and a command-line sign-in approved on the /cli page.
import assert from "node:assert/strict";

/**
 * `page` is signed in as the instance admin `admin`; `member` (with `memberPassword`) exists
 * and is in no team but their own. `gitUrl` is a repository the project may point at.
 */
export async function teamsFlow({ browser, base, page, audit, api, member, memberPassword, gitUrl }) {
  const signIn = async (username, password) => {
    const response = await api("/auth/login", null, { method: "POST", body: JSON.stringify({ username, password }) });
    assert.equal(response.status, 200);
    return (await response.json()).access_token;
  };

  // A team, created from the Teams page.
  await page.getByRole("link", { name: "Teams" }).click();
  await page.getByRole("heading", { name: "Teams", exact: true }).waitFor();
  await page.getByTestId("team-personal").getByRole("link", { name: "admin (personal)" }).waitFor();
  await audit(page, "teams");
  await page.getByRole("button", { name: "New team" }).click();
  await page.getByRole("dialog", { name: "New team" }).getByLabel("Team name").fill("Acme Web");
  await page.getByRole("button", { name: "Create team" }).click();
  await page.getByRole("heading", { name: "Acme Web" }).waitFor();
  const teamId = page.url().split("/teams/")[1];

  // An invitation for the member: a link shown once.
  await page.getByLabel("Username to invite").fill(member);
  await page.locator("#invite-role").selectOption("admin");
  await page.getByRole("button", { name: "Invite" }).click();
  const shown = page.getByTestId("new-invitation");
  await shown.waitFor();
  const link = (await shown.locator(".secret-once").innerText()).trim();
  assert.match(link, /\/invitations\/shinv_/);
  await page.getByTestId(`invitation-${member}`).waitFor();
  await audit(page, "team");

  // The member opens the link signed out, signs in, lands back on it and accepts.
  const other = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const tab = await other.newPage();
  const errors = [];
  tab.on("pageerror", (e) => errors.push(String(e)));
  await tab.goto(link);
  await tab.getByRole("heading", { name: "Sign in to shard" }).waitFor();
  await tab.getByLabel("Username").fill(member);
  await tab.getByLabel("Password").fill(memberPassword);
  await tab.getByRole("button", { name: "Sign in" }).click();
  await tab.getByRole("heading", { name: "Team invitation" }).waitFor();
  await audit(tab, "invitation");
  await tab.getByRole("button", { name: "Accept invitation" }).click();
  await tab.getByText("You joined Acme Web as admin.").waitFor();
  // Used once: the same link again is refused in words.
  await tab.goto(link);
  await tab.getByRole("button", { name: "Accept invitation" }).click();
  await tab.getByText("this invitation was already used").waitFor();

  // The admin sees the member join and creates a project in the team (the team select).
  await page.reload();
  await page.getByTestId(`member-${member}`).waitFor();
  assert.equal(await page.getByLabel(`Role of ${member}`).inputValue(), "admin");
  await page.getByRole("link", { name: "Projects", exact: true }).click();
  await page.locator("#team-switch").selectOption(teamId);
  await page.getByRole("heading", { name: "No projects yet" }).waitFor();
  await page.getByRole("button", { name: "New project" }).click();
  const dialog = page.getByRole("dialog", { name: "New project" });
  await dialog.getByLabel("Name").fill("Team Site");
  await dialog.getByLabel("Git URL").fill(gitUrl);
  assert.equal(await dialog.locator("#project-team").inputValue(), teamId, "the switched-to team is preselected");
  await dialog.getByRole("button", { name: "Create project" }).click();
  await page.waitForURL(/\/projects\/[0-9a-f-]+/);
  const projectId = page.url().split("/projects/")[1].split("/")[0];

  // The member sees it under the team, and not under their personal team.
  await tab.goto(base + "/");
  await tab.locator("#team-switch").selectOption(teamId);
  await tab.getByRole("link", { name: "Team Site" }).waitFor();
  await audit(tab, "projects-team-switched");
  const personal = await tab.locator("#team-switch option", { hasText: "(personal)" }).getAttribute("value");
  await tab.locator("#team-switch").selectOption(personal);
  await tab.getByRole("heading", { name: "No projects yet" }).waitFor();

  // Demoted to viewer, the member can no longer change settings: the API says so in words.
  await page.goto(`${base}/teams/${teamId}`);
  await page.getByLabel(`Role of ${member}`).selectOption("viewer");
  await page.getByText(`${member} is now viewer`).waitFor();
  await tab.goto(`${base}/projects/${projectId}/settings`);
  await tab.getByLabel("Branch").fill("develop");
  await tab.getByRole("button", { name: "Save settings" }).click();
  await tab.getByText("your role in this team is 'viewer'").waitFor();

  // A read-scoped token limited to the project: reads it, cannot deploy it.
  await page.getByRole("link", { name: "Account" }).click();
  await page.getByLabel("Token name").fill("dashboard reader");
  await page.locator("#token-scope").selectOption("read");
  await page.locator("#token-expiry").selectOption("30");
  await page.locator("label.check", { hasText: "Team Site" }).locator("input").check();
  await page.getByRole("button", { name: "Create token" }).click();
  const fresh = page.getByTestId("new-token");
  await fresh.waitFor();
  const reader = (await fresh.locator(".secret-once").innerText()).trim();
  const row = page.getByTestId("token-dashboard reader");
  assert.match(await row.innerText(), /read\s+Team Site/);
  assert.equal((await api(`/projects/${projectId}`, reader)).status, 200);
  const refused = await api(`/projects/${projectId}/deployments`, reader, { method: "POST", body: "{}" });
  assert.equal(refused.status, 403);
  await audit(page, "account-scoped-token");

  // The audit log: everything above is there, and the filters narrow it.
  await page.getByRole("link", { name: "Audit" }).click();
  await page.getByRole("heading", { name: "Audit log" }).waitFor();
  await page.getByTestId("audit-entry").first().waitFor();
  await page.locator("#audit-team").selectOption(teamId);
  await page.getByLabel("Action").fill("member");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.getByRole("cell", { name: "member.role" }).waitFor();
  const actions = await page.getByTestId("audit-entry").locator("code").allInnerTexts();
  assert.ok(actions.length > 0 && actions.every((a) => a.startsWith("member.")), `filtered: ${actions}`);
  assert.ok(actions.includes("member.invite") && actions.includes("member.join"), `${actions}`);
  await audit(page, "audit");
  await page.getByLabel("Action").fill("");
  await page.getByLabel("User").fill(member);
  await page.getByRole("button", { name: "Filter" }).click();
  await page.getByRole("cell", { name: "projects.update" }).waitFor();
  const who = await page.getByTestId("audit-entry").locator("td:nth-child(2)").allInnerTexts();
  assert.ok(who.every((w) => w.startsWith(member)), `${who}`);

  // A command-line sign-in, approved on the /cli page.
  const started = await (await api("/cli/logins", null, { method: "POST", body: JSON.stringify({ name: "e2e laptop" }) })).json();
  // The link carries no code: it is typed from the terminal, so a framed or forwarded link
  // alone approves nothing.
  assert.ok(!started.verify_url.includes(started.code), started.verify_url);
  await page.goto(started.verify_url);
  await page.getByLabel("Code from your terminal").fill(started.code.toLowerCase());
  await page.getByRole("button", { name: "Continue" }).click();
  await page.getByTestId("cli-code").waitFor();
  assert.equal(await page.getByTestId("cli-code").innerText(), started.code);
  await page.getByText("e2e laptop").waitFor();
  await audit(page, "cli-approve");
  await page.getByRole("button", { name: "Approve" }).click();
  await page.getByText("Approved.").waitFor();
  const polled = await (await api("/cli/logins/poll", null, { method: "POST", body: JSON.stringify({ poll_token: started.poll_token }) })).json();
  assert.equal(polled.status, "approved");
  assert.equal((await api("/auth/me", polled.token)).status, 200);

  // Clean up: the team project goes and the switcher shows all teams again, so the rest of the
  // test sees what it expects.
  const admin = await signIn("admin", "browser-pass-123");
  assert.equal((await api(`/projects/${projectId}`, admin, { method: "DELETE" })).status, 204);
  await page.goto(base + "/");
  await page.locator("#team-switch").selectOption("");
  await page.getByRole("link", { name: "Live App" }).waitFor();
  assert.deepEqual(errors, [], "no uncaught errors in the member's page");
  await other.close();
  return { teamId };
}
