import { act } from "react";
import { MemoryRouter } from "react-router";
import { afterEach, describe, expect, it, vi } from "vitest";
import * as api from "../src/api";
import { EnvEditor, mergeRows, parseDotenv, toInput } from "../src/pages/env";
import { ProjectForm, settingsBody } from "../src/pages/projectform";
import { byText, render, Rendered, setValue } from "./render";

let view: Rendered | null = null;
afterEach(() => {
  view?.unmount();
  view = null;
  vi.restoreAllMocks();
});

const project = {
  id: "p1",
  name: "Blog",
  slug: "blog",
  git_url: "https://example.com/blog.git",
  branch: "main",
  dockerfile: "Dockerfile",
  port: 8080,
  health_path: "/",
  health_timeout_secs: 60,
  memory_limit_mb: 256,
  cpu_limit_millis: null,
  build_type: "dockerfile",
  static_dir: null,
  root_dir: null,
  install_command: null,
  build_command: null,
  start_command: null,
  url: "http://blog.localhost:8080",
  status: "live",
  runtime: "running",
  live_deployment: null,
  latest_deployment: null,
  created_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-01T00:00:00Z",
} satisfies api.Project;

describe(".env paste", () => {
  it("parses export prefixes, quotes, comments and blank lines", () => {
    const text = '# comment\n\nexport A=1\nB="two words" \nC=\'single # kept\'\nD=plain # trailing\nnot a line\nE="a\\nb"\n';
    expect(parseDotenv(text)).toEqual([
      { key: "A", value: "1" },
      { key: "B", value: "two words" },
      { key: "C", value: "single # kept" },
      { key: "D", value: "plain" },
      { key: "E", value: "a\nb" },
    ]);
  });

  it("merges into existing rows and sends stored secrets without a value", () => {
    const rows = mergeRows(
      [
        { key: "A", value: "old", secret: false, build: true, stored: false },
        { key: "TOKEN", value: "", secret: true, build: false, stored: true },
      ],
      [
        { key: "A", value: "new" },
        { key: "B", value: "b" },
      ],
    );
    expect(toInput(rows)).toEqual([
      { key: "A", value: "new", secret: false, build: true },
      { key: "TOKEN", secret: true, build: false },
      { key: "B", value: "b", secret: false, build: false },
    ]);
  });
});

describe("environment editor", () => {
  it("masks saved secrets, never asks for them, and prompts a redeploy after saving", async () => {
    vi.spyOn(api, "getEnv").mockResolvedValue({
      vars: [
        { key: "GREETING", value: "hello", secret: false, build: false },
        { key: "API_KEY", value: null, secret: true, build: false },
      ],
    });
    const put = vi.spyOn(api, "putEnv").mockImplementation(async (_id, vars) => ({
      vars: vars.map((v) => ({ key: v.key, value: v.secret ? null : (v.value ?? null), secret: v.secret, build: v.build })),
    }));
    const deploy = vi.fn().mockResolvedValue(undefined);
    view = await render(<EnvEditor project={project} onDeploy={deploy} />);
    const secret = view.container.querySelector<HTMLInputElement>('input[aria-label="Value of API_KEY"]')!;
    expect(secret.type).toBe("password");
    expect(secret.value).toBe("");
    expect(secret.placeholder).toMatch(/saved secret/);
    const secretBox = view.container.querySelectorAll<HTMLInputElement>('[data-testid="env-row"]')[1].querySelector<HTMLInputElement>('input[type="checkbox"]')!;
    expect(secretBox.checked && secretBox.disabled).toBe(true);

    // Add a new secret through the .env dialog, mark it secret, save.
    await act(async () => byText(view!.container, "button", "Paste .env")!.click());
    const area = view.container.querySelector<HTMLTextAreaElement>("textarea")!;
    await act(async () => setValue(area, "DB_PASSWORD=hunter2\nGREETING=hi"));
    await act(async () => byText(view!.container, "button", "Add to variables")!.click());
    const rows = view.container.querySelectorAll('[data-testid="env-row"]');
    expect(rows.length).toBe(3);
    await act(async () => rows[2].querySelector<HTMLInputElement>('input[type="checkbox"]')!.click());
    await act(async () => byText(view!.container, "button", "Save variables")!.click());
    expect(put).toHaveBeenCalledWith("p1", [
      { key: "GREETING", value: "hi", secret: false, build: false },
      { key: "API_KEY", secret: true, build: false },
      { key: "DB_PASSWORD", value: "hunter2", secret: true, build: false },
    ]);
    // After saving, the new secret is masked like the old one, and a redeploy is offered.
    const saved = view.container.querySelector<HTMLInputElement>('input[aria-label="Value of DB_PASSWORD"]')!;
    expect(saved.value).toBe("");
    expect(view.container.textContent).not.toContain("hunter2");
    await act(async () => byText(view!.container, "button", "Redeploy now")!.click());
    expect(deploy).toHaveBeenCalledOnce();
  });
});

describe("project form", () => {
  it("shows a 422 under the field it names, and other errors in words", async () => {
    const create = vi
      .spyOn(api, "createProject")
      .mockRejectedValueOnce(new api.ApiError(422, "validation", "file:// URLs are not allowed", "git_url"))
      .mockRejectedValueOnce(new api.ApiError(409, "conflict", "a project named 'blog' already exists"));
    view = await render(
      <MemoryRouter>
        <ProjectForm submitLabel="Create project" onSaved={() => undefined} />
      </MemoryRouter>,
    );
    const input = (name: string) => view!.container.querySelector<HTMLInputElement>(`input[name="${name}"]`)!;
    await act(async () => setValue(input("name"), "Blog"));
    await act(async () => setValue(input("git_url"), "file:///etc/passwd"));
    await act(async () => setValue(input("memory_limit_mb"), "512"));
    await act(async () => byText(view!.container, "button", "Create project")!.click());
    expect(create).toHaveBeenCalledWith({
      name: "Blog",
      git_url: "file:///etc/passwd",
      branch: "main",
      dockerfile: "Dockerfile",
      health_path: "/",
      health_timeout_secs: 60,
      memory_limit_mb: 512,
      build_type: "auto",
    });
    expect(input("git_url").getAttribute("aria-invalid")).toBe("true");
    const described = input("git_url").getAttribute("aria-describedby")!;
    expect(document.getElementById(described)!.textContent).toBe("file:// URLs are not allowed");

    await act(async () => byText(view!.container, "button", "Create project")!.click());
    expect(input("git_url").getAttribute("aria-invalid")).toBeNull();
    expect(view.container.querySelector('[role="alert"]')!.textContent).toBe("a project named 'blog' already exists");
  });

  it("sends replicas as a number and placement labels as an object, cleared when emptied", () => {
    expect(settingsBody({ name: "Edge", replicas: "2", placement: "group=edge, zone = a" })).toEqual({
      name: "Edge",
      replicas: 2,
      placement: { group: "edge", zone: "a" },
    });
    expect(settingsBody({ name: "Edge", placement: "" })).toEqual({ name: "Edge" });
    expect(settingsBody({ placement: "" }, { placement: "group=edge" })).toEqual({ placement: {} });
    // A label without a value reaches the API, which names what is wrong with it.
    expect(settingsBody({ placement: "edge" })).toEqual({ placement: { edge: "" } });
  });

  it("on edit sends only changed fields, clears emptied limits, and warns about a rename", async () => {
    expect(
      settingsBody(
        { name: "Blog 2", port: "8080", memory_limit_mb: "", branch: "main" },
        { name: "Blog", port: "8080", memory_limit_mb: "256", branch: "main" },
      ),
    ).toEqual({ name: "Blog 2", memory_limit_mb: null });
    view = await render(
      <MemoryRouter>
        <ProjectForm project={project} submitLabel="Save" onSaved={() => undefined} />
      </MemoryRouter>,
    );
    expect(view.container.textContent).not.toMatch(/URL changes/);
    await act(async () => setValue(view!.container.querySelector<HTMLInputElement>('input[name="name"]')!, "Blog 2"));
    expect(view.container.textContent).toMatch(/Renaming changes the app's URL/);
  });
});
