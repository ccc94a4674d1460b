import { act } from "react";
import { MemoryRouter } from "react-router";
import { afterEach, describe, expect, it, vi } from "vitest";
import * as api from "../src/api";
import ImportPage from "../src/pages/import";
import { byText, render, Rendered, setValue } from "./render";

let view: Rendered | null = null;
afterEach(() => {
  view?.unmount();
  view = null;
  vi.restoreAllMocks();
});

const repo = (full_name: string): api.GithubRepo => ({
  full_name,
  name: full_name.split("/")[1],
  private: false,
  default_branch: "main",
  clone_url: `https://github.com/${full_name}.git`,
  html_url: `https://github.com/${full_name}`,
  updated_at: null,
});

/** Longer than the search's 250 ms debounce. */
const debounce = () => act(() => new Promise<void>((resolve) => setTimeout(resolve, 300)));

async function openPage() {
  vi.spyOn(api, "githubAccount").mockResolvedValue({ enabled: true, connected: true, login: "alice", scopes: "repo" });
  view = await render(
    <MemoryRouter>
      <ImportPage />
    </MemoryRouter>,
  );
  return view;
}

describe("GitHub import", () => {
  it("shows the repositories of the last search when an earlier one answers after it", async () => {
    const answers: Record<string, (list: api.GithubRepo[]) => void> = {};
    vi.spyOn(api, "githubRepos").mockImplementation((q) => new Promise((resolve) => (answers[q] = resolve)));
    const { container } = await openPage();
    const search = container.querySelector<HTMLInputElement>('input[type="search"]')!;
    await debounce();
    await act(async () => setValue(search, "shop"));
    await debounce();
    expect(Object.keys(answers).sort()).toEqual(["", "shop"]);
    await act(async () => answers.shop([repo("acme/shop")]));
    await act(async () => answers[""]([repo("acme/blog"), repo("acme/shop")]));
    expect(byText(container, "td", /acme\/shop/)).toBeTruthy();
    expect(byText(container, "td", /acme\/blog/)).toBeFalsy();
  });

  it("offers the branches of the picked repository when the previous pick's list answers last", async () => {
    vi.spyOn(api, "githubRepos").mockResolvedValue([repo("acme/blog"), repo("acme/shop")]);
    const answers: Record<string, (list: { name: string; commit_sha: string }[]) => void> = {};
    vi.spyOn(api, "githubBranches").mockImplementation((name) => new Promise((resolve) => (answers[name] = resolve)));
    const { container } = await openPage();
    await debounce();
    const pick = (name: string) =>
      act(async () => byText(byText(container, "tr", new RegExp(name))!, "button", "Select")!.click());
    await pick("acme/blog");
    await pick("acme/shop");
    await act(async () => answers["acme/shop"]([{ name: "main", commit_sha: "1" }, { name: "release", commit_sha: "2" }]));
    await act(async () => answers["acme/blog"]([{ name: "main", commit_sha: "3" }, { name: "drafts", commit_sha: "4" }]));
    const options = [...container.querySelectorAll<HTMLOptionElement>("#import-branch option")].map((o) => o.value);
    expect(options).toEqual(["main", "release"]);
  });
});
