// The Terminal tab (loaded on demand, with xterm.js): a shell in the app's running container,
// or in a fresh one from the live image, over GET /api/v1/projects/{id}/exec. Keystrokes and
// output travel as binary frames; the terminal's size follows the panel. For team admins and
// above; every session is in the audit log.
import { useEffect, useRef, useState } from "react";
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import "@xterm/xterm/css/xterm.css";
import * as api from "../api";
import { Alert } from "../ui";

/**
 * xterm.js writes its colours and cell sizes into <style> elements, which the dashboard's
 * Content-Security-Policy (no inline styles) refuses. While it builds its screen, the style
 * elements it asks for are inert, hidden `<shard-style>` elements instead; their text is
 * copied into a constructed stylesheet (CSSOM, which the policy allows) and kept in step.
 */
function openUnderCsp(term: Terminal, root: HTMLElement): () => void {
  const create = document.createElement;
  document.createElement = function (tag: string, options?: ElementCreationOptions) {
    if (tag.toLowerCase() !== "style") return create.call(document, tag, options);
    const inert = create.call(document, "shard-style", options);
    inert.hidden = true;
    return inert;
  } as typeof document.createElement;
  try {
    term.open(root);
  } finally {
    document.createElement = create;
  }
  const sheet = new CSSStyleSheet();
  document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
  const copy = () => {
    const text = [...root.querySelectorAll("shard-style")].map((s) => s.textContent ?? "").join("\n");
    sheet.replaceSync(text);
  };
  const observer = new MutationObserver(copy);
  observer.observe(root, { subtree: true, childList: true, characterData: true });
  copy();
  return () => {
    observer.disconnect();
    document.adoptedStyleSheets = document.adoptedStyleSheets.filter((s) => s !== sheet);
  };
}

type State = { kind: "idle" } | { kind: "connecting" } | { kind: "open" } | { kind: "ended"; text: string } | { kind: "refused"; text: string };

export default function TerminalPanel({ project }: { project: api.Project }) {
  const box = useRef<HTMLDivElement>(null);
  const session = useRef<{ close: () => void } | null>(null);
  const [state, setState] = useState<State>({ kind: "idle" });
  const [fresh, setFresh] = useState(false);

  useEffect(() => () => session.current?.close(), [project.id]);

  function connect() {
    const element = box.current;
    if (!element) return;
    session.current?.close();
    element.replaceChildren();
    setState({ kind: "connecting" });
    const term = new Terminal({ cursorBlink: true, fontSize: 14, scrollback: 5000, convertEol: false });
    const fit = new FitAddon();
    term.loadAddon(fit);
    const unmirror = openUnderCsp(term, element);
    fit.fit();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const query = `cols=${term.cols}&rows=${term.rows}${fresh ? "&fresh=true" : ""}`;
    const ws = new WebSocket(`${scheme}://${location.host}/api/v1/projects/${project.id}/exec?${query}`);
    ws.binaryType = "arraybuffer";
    const encoder = new TextEncoder();
    let ended = false;
    ws.onopen = () => {
      ws.send(JSON.stringify({ op: "auth", token: api.currentToken() }));
      setState({ kind: "open" });
      term.focus();
    };
    ws.onmessage = (event) => {
      if (event.data instanceof ArrayBuffer) {
        term.write(new Uint8Array(event.data));
        return;
      }
      const message = JSON.parse(String(event.data));
      if (message.type === "exit") {
        ended = true;
        const code = message.exit_code === null ? "" : ` with code ${message.exit_code}`;
        setState({ kind: "ended", text: `The session ended${code} (${message.reason}).` });
      } else if (message.type === "error") {
        ended = true;
        setState({ kind: "refused", text: message.message });
      }
    };
    ws.onclose = () => {
      if (!ended) setState({ kind: "ended", text: "The connection closed." });
    };
    const typed = term.onData((data) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(data));
    });
    const resized = term.onResize(({ cols, rows }) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ op: "resize", cols, rows }));
    });
    const observer = new ResizeObserver(() => fit.fit());
    observer.observe(element);
    session.current = {
      close: () => {
        observer.disconnect();
        typed.dispose();
        resized.dispose();
        ended = true;
        ws.close();
        term.dispose();
        unmirror();
      },
    };
  }

  const open = state.kind === "open" || state.kind === "connecting";
  return (
    <section className="stack" aria-label="Terminal">
      <div className="row">
        <p className="small muted grow">
          A shell in the app's container ({project.slug}). Team admins only; each session is recorded in the audit log. It closes after a
          while without typing.
        </p>
        <label className="row small">
          <input type="checkbox" checked={fresh} disabled={open} onChange={(e) => setFresh(e.target.checked)} /> Fresh container
        </label>
        {open ? (
          <button
            className="btn secondary"
            onClick={() => {
              session.current?.close();
              setState({ kind: "ended", text: "Disconnected." });
            }}
          >
            Disconnect
          </button>
        ) : (
          <button className="btn" onClick={connect}>
            {state.kind === "idle" ? "Connect" : "Reconnect"}
          </button>
        )}
      </div>
      {state.kind === "refused" && <Alert>{state.text}</Alert>}
      {state.kind === "ended" && <Alert tone="info">{state.text}</Alert>}
      <div ref={box} className="terminal-box" data-testid="terminal" data-state={state.kind} aria-label="Terminal output" role="region" />
    </section>
  );
}
