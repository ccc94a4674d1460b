// A GitHub stand-in for the browser test: the OAuth web flow (authorize approves at once as
// one user; the code exchange checks the client secret and the PKCE verifier), GET /user,
// the repository listing in pages of `per_page` with GitHub's Link header, one repository,
// its branches, the contents check, webhook create/delete and commit statuses, with GitHub's
// paths and JSON shapes. What shard did is kept on the returned object for the test to read.
import { createHash, randomUUID } from "node:crypto";
import { createServer } from "node:http";

export const CLIENT_ID = "Iv1.browser";
export const CLIENT_SECRET = "browser-client-secret";

/**
 * Starts the stand-in. `repos` maps full names to clone URLs (repositories shard may fetch);
 * `filler` more repositories are listed so the listing spans pages.
 */
export async function startGithub({ login, repos, filler = 120 }) {
  const state = { codes: new Map(), tokens: new Set(), hooks: [], deletedHooks: [], statuses: [] };
  const fillers = Array.from({ length: filler }, (_, i) => `acme/filler-${String(i).padStart(3, "0")}`);
  const all = () => [...Object.keys(repos), ...fillers];
  const repoJson = (full) => ({
    name: full.split("/")[1],
    full_name: full,
    private: full in repos,
    default_branch: "main",
    clone_url: repos[full] ?? `https://github.invalid/${full}.git`,
    html_url: `https://github.invalid/${full}`,
    updated_at: "2026-11-27T08:00:00Z",
    owner: { login: full.split("/")[0] },
  });
  const json = (res, status, body, headers = {}) => res.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify(body));
  const body = (req) =>
    new Promise((resolve) => {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => resolve(Buffer.concat(chunks).toString()));
    });
  const page = (req, res, url, items) => {
    const perPage = Math.min(Number(url.searchParams.get("per_page") ?? 30), 100);
    const n = Math.max(Number(url.searchParams.get("page") ?? 1), 1);
    const pages = Math.max(Math.ceil(items.length / perPage), 1);
    const link = (p) => {
      const next = new URL(url);
      next.searchParams.set("page", String(p));
      return `<http://${req.headers.host}${next.pathname}${next.search}>`;
    };
    const headers = n < pages ? { link: `${link(n + 1)}; rel="next", ${link(pages)}; rel="last"` } : {};
    json(res, 200, items.slice((n - 1) * perPage, n * perPage), headers);
  };

  const server = createServer(async (req, res) => {
    const url = new URL(req.url, `http://${req.headers.host}`);
    const path = url.pathname;
    const authed = state.tokens.has((req.headers.authorization ?? "").replace(/^(Bearer|token) /, ""));
    if (req.method === "GET" && path === "/login/oauth/authorize") {
      const code = `code-${randomUUID()}`;
      state.codes.set(code, url.searchParams.get("code_challenge"));
      const back = new URL(url.searchParams.get("redirect_uri"));
      back.searchParams.set("code", code);
      back.searchParams.set("state", url.searchParams.get("state"));
      return res.writeHead(302, { location: back.toString() }).end();
    }
    if (req.method === "POST" && path === "/login/oauth/access_token") {
      const form = new URLSearchParams(await body(req));
      const basic = Buffer.from((req.headers.authorization ?? "").replace(/^Basic /, ""), "base64").toString();
      const clientOk = basic === `${CLIENT_ID}:${CLIENT_SECRET}` || (form.get("client_id") === CLIENT_ID && form.get("client_secret") === CLIENT_SECRET);
      const challenge = state.codes.get(form.get("code"));
      state.codes.delete(form.get("code"));
      const verified = challenge && createHash("sha256").update(form.get("code_verifier") ?? "").digest("base64url") === challenge;
      if (!clientOk || !verified) return json(res, 200, { error: "bad_verification_code" });
      const token = `gho_${randomUUID().replaceAll("-", "")}`;
      state.tokens.add(token);
      state.token = token;
      return json(res, 200, { access_token: token, token_type: "bearer", scope: "repo,admin:repo_hook" });
    }
    if (req.method === "DELETE" && path === `/applications/${CLIENT_ID}/grant`) return res.writeHead(204).end();
    if (!authed) return json(res, 401, { message: "Bad credentials" });
    let m;
    if (req.method === "GET" && path === "/user") return json(res, 200, { login, id: 4242, type: "User" });
    if (req.method === "GET" && path === "/user/repos") return page(req, res, url, all().map(repoJson));
    if ((m = path.match(/^\/repos\/([^/]+\/[^/]+)(\/.*)?$/))) {
      const [full, rest = ""] = [m[1], m[2]];
      if (!all().includes(full)) return json(res, 404, { message: "Not Found" });
      if (req.method === "GET" && rest === "") return json(res, 200, repoJson(full));
      if (req.method === "GET" && rest === "/branches")
        return page(req, res, url, ["main", "staging"].map((name) => ({ name, commit: { sha: "0".repeat(40) }, protected: false })));
      if (req.method === "GET" && rest.startsWith("/contents/"))
        return rest === "/contents/Dockerfile" && full in repos ? json(res, 200, { type: "file", path: "Dockerfile" }) : json(res, 404, { message: "Not Found" });
      if (req.method === "POST" && rest === "/hooks") {
        const hook = JSON.parse(await body(req));
        state.hooks.push({ repo: full, url: hook.config.url, secret: hook.config.secret, events: hook.events });
        return json(res, 201, { id: state.hooks.length, active: true });
      }
      if (req.method === "DELETE" && (m = rest.match(/^\/hooks\/(\d+)$/))) {
        state.deletedHooks.push({ repo: full, id: Number(m[1]) });
        return res.writeHead(204).end();
      }
      if (req.method === "POST" && (m = rest.match(/^\/statuses\/([0-9a-f]{40})$/))) {
        const status = JSON.parse(await body(req));
        state.statuses.push({ repo: full, sha: m[1], ...status });
        return json(res, 201, { id: state.statuses.length, ...status });
      }
    }
    json(res, 404, { message: "Not Found" });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, state, url: `http://127.0.0.1:${server.address().port}` };
}
