// The nodes part of the dashboard's end-to-end test, on the two-node swarm `scripts/swarm-lab`
// makes (shard's engine is its manager): both nodes listed with their state, the join command
// for admins, labels and availability changed from the page, and a project's replicas and
// placement set in its settings.
import assert from "node:assert/strict";

/** `page` is signed in as the instance admin `admin` (`password`). */
export async function nodesFlow({ base, page, audit, api, password, projectId }) {
  const login = await api("/auth/login", null, { method: "POST", body: JSON.stringify({ username: "admin", password }) });
  const { access_token: token } = await login.json();
  await page.getByRole("link", { name: "Nodes" }).click();
  await page.getByRole("heading", { name: "Nodes", exact: true }).waitFor();
  const node2 = page.locator('[data-testid="node"][data-address="10.251.0.2"]');
  await node2.waitFor({ timeout: 20000 });
  assert.equal(await page.getByTestId("node").count(), 2);
  assert.match(await node2.innerText(), /ready/);
  assert.match(await page.getByTestId("node").filter({ hasText: "(this machine)" }).innerText(), /manager/);
  assert.match(await page.getByTestId("join-command").innerText(), /^docker swarm join --token SWMTKN-\S+ \S+:2377$/);
  await audit(page, "nodes");

  // Labels: a bad one is refused in words, a good one is saved and listed by the API.
  const labels = node2.getByLabel(/^Labels of /);
  await labels.fill("zone=a b");
  await node2.getByRole("button", { name: "Save labels" }).click();
  assert.match(await node2.locator(".field-error").innerText(), /letters, digits/);
  await labels.fill("zone=lab, tier=2");
  await node2.getByRole("button", { name: "Save labels" }).click();
  await page.getByText("labels saved").first().waitFor();
  const listed = async () => (await (await api("/nodes", token)).json()).find((n) => n.address === "10.251.0.2");
  assert.deepEqual((await listed()).labels, { tier: "2", zone: "lab" });

  // Availability: paused from the page, then active again.
  const availability = node2.getByLabel(/^Availability of /);
  await availability.selectOption("pause");
  await page.getByText("availability pause").first().waitFor();
  assert.equal((await listed()).availability, "pause");
  await availability.selectOption("active");
  await page.getByText("availability active").first().waitFor();
  assert.equal((await listed()).availability, "active");

  // Registry credentials: a blank user is refused in words; saved ones show the user, never
  // the password (not even in the API's answer), and can be forgotten.
  const registry = page.getByRole("region", { name: "Registry" });
  assert.match(await registry.getByTestId("registry-state").innerText(), /No credentials/);
  await registry.getByLabel("Registry user").fill(" ");
  await registry.getByLabel("Registry password").fill("pw-browser-1");
  await registry.getByRole("button", { name: "Save credentials" }).click();
  assert.match(await registry.locator(".field-error").innerText(), /username/);
  await registry.getByLabel("Registry user").fill("deployer");
  const [saved] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/api/v1/registry/credentials")),
    registry.getByRole("button", { name: "Save credentials" }).click(),
  ]);
  assert.equal(saved.status(), 200);
  assert.ok(!(await saved.text()).includes("pw-browser-1"));
  await page.getByText("registry credentials saved").first().waitFor();
  assert.match(await registry.getByTestId("registry-state").innerText(), /sign in as deployer/);
  assert.equal(await registry.getByLabel("Registry password").inputValue(), "");
  await audit(page, "nodes-registry");
  await registry.getByRole("button", { name: "Forget credentials" }).click();
  await page.getByText("registry credentials removed").first().waitFor();
  assert.equal((await (await api("/registry", token)).json()).password_set, false);

  // A project's replicas and placement, from its settings (each save waits for its answer).
  await page.goto(`${base}/projects/${projectId}/settings`);
  const save = async (status) => {
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith(`/api/v1/projects/${projectId}`) && r.request().method() === "PATCH"),
      page.getByRole("button", { name: "Save settings" }).click(),
    ]);
    assert.equal(response.status(), status, `PATCH ${response.request().postData()} → ${await response.text()}`);
  };
  await page.getByLabel("Replicas").fill("2");
  await page.getByLabel("Placement labels").fill("zone=lab");
  await save(200);
  const project = await (await api(`/projects/${projectId}`, token)).json();
  assert.equal(project.replicas, 2);
  assert.deepEqual(project.placement, { zone: "lab" });
  assert.equal(await page.getByLabel("Placement labels").inputValue(), "zone=lab");
  await page.getByLabel("Placement labels").fill("zone=a==b");
  await save(422);
  assert.match(await page.locator(".field-error").first().innerText(), /letters, digits/);
  await page.getByLabel("Placement labels").fill("");
  await page.getByLabel("Replicas").fill("1");
  await save(200);
  const cleared = await (await api(`/projects/${projectId}`, token)).json();
  assert.deepEqual([cleared.replicas, cleared.placement], [1, {}]);
}
