// Shared by the browser test and the dashboard benchmark: smart-HTTP git (`git http-backend`
// behind a small Node server on 127.0.0.1, serving the bare repositories under one directory)
// and a free loopback port for shard to listen on.
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { createServer as createTcpServer } from "node:net";

export const freePort = () =>
  new Promise((resolve) => {
    const server = createTcpServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

/** Serves the bare repositories under `repos` on a free loopback port; resolves when listening. */
export async function serveGit(repos) {
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    const cgi = spawn("git", ["http-backend"], {
      env: {
        PATH: process.env.PATH,
        GIT_PROJECT_ROOT: repos,
        GIT_HTTP_EXPORT_ALL: "1",
        PATH_INFO: url.pathname,
        QUERY_STRING: url.search.slice(1),
        REQUEST_METHOD: req.method,
        CONTENT_TYPE: req.headers["content-type"] ?? "",
        GIT_PROTOCOL: req.headers["git-protocol"] ?? "",
        HTTP_CONTENT_ENCODING: req.headers["content-encoding"] ?? "",
        REMOTE_ADDR: "127.0.0.1",
      },
    });
    req.pipe(cgi.stdin);
    const chunks = [];
    cgi.stdout.on("data", (c) => chunks.push(c));
    cgi.on("close", () => {
      const out = Buffer.concat(chunks);
      let end = out.indexOf("\r\n\r\n");
      let sep = 4;
      if (end < 0) [end, sep] = [out.indexOf("\n\n"), 2];
      if (end < 0) return res.writeHead(502).end();
      let status = 200;
      const headers = {};
      for (const line of out.subarray(0, end).toString().split(/\r?\n/)) {
        const at = line.indexOf(":");
        if (at < 0) continue;
        const [name, value] = [line.slice(0, at).trim(), line.slice(at + 1).trim()];
        if (name.toLowerCase() === "status") status = parseInt(value, 10);
        else headers[name] = value;
      }
      res.writeHead(status, headers).end(out.subarray(end + sep));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}
