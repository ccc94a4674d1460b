import { act } from "react";
import { MemoryRouter } from "react-router";
import { afterEach, describe, expect, it, vi } from "vitest";
import * as api from "../src/api";
import { ProjectForm } from "../src/pages/projectform";
import { ProjectsPage } from "../src/pages/projects";
import { Tokens } from "../src/pages/tokens";
import { byText, frames, render, Rendered, setValue } from "./render";

let view: Rendered | null = null;
afterEach(() => {
  view?.unmount();
  view = null;
  vi.restoreAllMocks();
  localStorage.clear();
});

const team = (id: string, name: string, role: string, personal = false): api.Team => ({
  id,
  name,
  slug: name.toLowerCase(),
  personal,
  role,
  created_at: "2026-01-01T00:00:00Z",
});

function select(root: HTMLElement, id: string, value: string) {
  const el = root.querySelector<HTMLSelectElement>(`#${id}`)!;
  el.value = value;
  el.dispatchEvent(new Event("change", { bubbles: true }));
}

describe("API tokens", () => {
  it("sends the chosen scope, expiry and projects, and shows the token once", async () => {
    vi.spyOn(api, "listTokens").mockResolvedValue([]);
    vi.spyOn(api, "listProjects").mockResolvedValue([
      { id: "p1", name: "Blog" } as api.Project,
      { id: "p2", name: "Shop" } as api.Project,
    ]);
    const create = vi.spyOn(api, "createToken").mockResolvedValue({
      id: "t1",
      name: "ci",
      prefix: "shard_abc",
      scope: "deploy",
      project_ids: ["p2"],
      created_at: "2026-01-01T00:00:00Z",
      last_used_at: null,
      expires_at: null,
      token: "shard_abcdef",
    });
    view = await render(<Tokens />);
    await frames();
    const name = byText(view.container, "label", "Token name")!;
    await act(async () => setValue(view!.container.querySelector<HTMLInputElement>(`#${name.getAttribute("for")}`)!, "ci"));
    await act(async () => select(view!.container, "token-scope", "read"));
    await act(async () => select(view!.container, "token-expiry", "30"));
    const shop = byText(view.container, "label.check", "Shop")!.querySelector("input")!;
    await act(async () => shop.click());
    await act(async () => byText(view!.container, "button", "Create token")!.click());
    expect(create).toHaveBeenCalledWith({ name: "ci", scope: "read", expires_in_days: 30, project_ids: ["p2"] });
    expect(view.container.querySelector('[data-testid="new-token"]')?.textContent).toContain("shard_abcdef");
  });
});

describe("project form teams", () => {
  it("creates the project in the chosen team", async () => {
    const create = vi.spyOn(api, "createProject").mockResolvedValue({ id: "p9" } as api.Project);
    const teams = [team("t1", "alice", "owner", true), team("t2", "Acme", "member")];
    view = await render(
      <MemoryRouter>
        <ProjectForm submitLabel="Create project" teams={teams} team="t1" onSaved={() => undefined} />
      </MemoryRouter>,
    );
    const input = (name: string) => view!.container.querySelector<HTMLInputElement>(`input[name="${name}"]`)!;
    await act(async () => setValue(input("name"), "Shop"));
    await act(async () => setValue(input("git_url"), "https://example.com/shop.git"));
    await act(async () => select(view!.container, "project-team", "t2"));
    await act(async () => byText(view!.container, "button", "Create project")!.click());
    expect(create.mock.calls[0][0]).toMatchObject({ name: "Shop", team_id: "t2" });
  });

  it("offers no team choice with a single team", async () => {
    view = await render(
      <MemoryRouter>
        <ProjectForm submitLabel="Create project" teams={[team("t1", "alice", "owner", true)]} team="t1" onSaved={() => undefined} />
      </MemoryRouter>,
    );
    expect(view.container.querySelector("#project-team")).toBeNull();
  });
});

describe("team switcher", () => {
  it("shows the chosen team's projects when the list asked before the switch answers last", async () => {
    localStorage.setItem("shard.team", "t2");
    vi.spyOn(api, "listTeams").mockResolvedValue([team("t1", "alice", "owner", true), team("t2", "Acme", "member")]);
    const answers: Record<string, (list: api.Project[]) => void> = {};
    vi.spyOn(api, "listProjects").mockImplementation(
      (asked?: string) => new Promise((resolve) => (answers[asked ?? "all"] = resolve)),
    );
    view = await render(
      <MemoryRouter>
        <ProjectsPage />
      </MemoryRouter>,
    );
    await frames();
    await act(async () => select(view!.container, "team-switch", ""));
    const app = {
      id: "p1",
      slug: "live-app",
      name: "Live App",
      status: "live",
      runtime: "running",
      url: "http://live-app.localhost",
      git_url: "https://example.com/app.git",
      branch: "main",
      latest_deployment: null,
    } as unknown as api.Project;
    await act(async () => answers.all([app]));
    await act(async () => answers.t2([]));
    await frames();
    expect(byText(view.container, "a", "Live App")).toBeTruthy();
    expect(view.container.textContent).not.toContain("No projects yet");
  });
});
