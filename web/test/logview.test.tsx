import { act } from "react";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { follow, unpack } from "../src/live";
import { LogStore, LogView, visibleRows } from "../src/logview";
import { frames, render, Rendered } from "./render";

// jsdom has no layout: give the log box a 400 px viewport and a real scroll position.
beforeAll(() => {
  const isLog = (el: Element) => el.classList.contains("log");
  const scroll = new WeakMap<Element, number>();
  Object.defineProperty(HTMLElement.prototype, "clientHeight", {
    configurable: true,
    get() {
      return isLog(this) ? 400 : 0;
    },
  });
  Object.defineProperty(HTMLElement.prototype, "scrollHeight", {
    configurable: true,
    get() {
      const rows = this.querySelector?.(".log-rows") as HTMLElement | null;
      return isLog(this) && rows ? parseFloat(rows.style.height) : 0;
    },
  });
  Object.defineProperty(HTMLElement.prototype, "scrollTop", {
    configurable: true,
    get() {
      return scroll.get(this) ?? 0;
    },
    set(v: number) {
      const max = Math.max(0, this.scrollHeight - this.clientHeight);
      scroll.set(this, Math.min(Math.max(0, v), max));
    },
  });
});

let view: Rendered | null = null;
afterEach(() => {
  view?.unmount();
  view = null;
  location.hash = "";
});

const line = (seq: number, text: string, stream = "stdout") => ({ type: "log", seq, stream, line: text, topic: "deployment:x" });
const rows = (root: HTMLElement) => [...root.querySelectorAll<HTMLElement>(".log-row")];
const logBox = (root: HTMLElement) => root.querySelector<HTMLElement>(".log")!;

describe("log view", () => {
  it("renders ANSI colours and drops other escape codes", async () => {
    const store = new LogStore();
    store.push(line(1, "\u001b[32mgreen step\u001b[0m then \u001b[1mbold\u001b[0m\u001b[2K"));
    view = await render(<LogView store={store} name="t.log" />);
    await frames();
    const spans = [...view.container.querySelectorAll<HTMLElement>(".log-row .text span")];
    const green = spans.find((s) => s.textContent === "green step")!;
    expect(green.style.color).toBe("rgb(86, 211, 100)");
    expect(spans.find((s) => s.textContent === "bold")!.style.fontWeight).toBe("bold");
    expect(view.container.querySelector(".log-row")!.textContent).toBe("1green step then bold");
  });

  it("takes batch and single messages alike and drops replayed duplicates (resync by seq)", async () => {
    const store = new LogStore();
    const batch = JSON.stringify({ type: "batch", topic: "deployment:x", events: [line(1, "a"), line(2, "b"), line(3, "c")] });
    for (const m of unpack(batch)) store.push(m);
    for (const m of unpack(JSON.stringify(line(4, "d")))) store.push(m);
    // A reconnect replays from an older cursor: 3 and 4 again, then new lines.
    for (const m of [line(3, "c"), line(4, "d"), line(5, "e")]) store.push(m);
    store.push({ type: "status", seq: 6, status: "live", ts: "2026-01-01T00:00:00Z" });
    store.push({ type: "subscribed", topic: "deployment:x" });
    expect(store.lines.map((l) => l.text)).toEqual(["a", "b", "c", "d", "e", "— live —"]);
    expect(store.lastSeq).toBe(6);
  });

  it("follow() resubscribes after a drop with since = the last seq it saw", async () => {
    const sockets: FakeSocket[] = [];
    class FakeSocket {
      sent: string[] = [];
      onopen: (() => void) | null = null;
      onmessage: ((e: { data: string }) => void) | null = null;
      onclose: (() => void) | null = null;
      constructor() {
        sockets.push(this);
      }
      send(data: string) {
        this.sent.push(data);
      }
      close() {
        this.onclose?.();
      }
    }
    const seen: number[] = [];
    const stop = follow("deployment:x", (m) => typeof m.seq === "number" && seen.push(m.seq), {
      socket: () => new FakeSocket() as unknown as WebSocket,
    });
    await frames();
    sockets[0].onopen!();
    expect(JSON.parse(sockets[0].sent[1])).toEqual({ op: "subscribe", topic: "deployment:x", since: 0 });
    sockets[0].onmessage!({ data: JSON.stringify({ type: "batch", topic: "deployment:x", events: [line(1, "a"), line(2, "b")] }) });
    sockets[0].onclose!();
    // Reconnects after a backoff (at most ~0.6 s the first time).
    await act(() => new Promise((r) => setTimeout(r, 800)));
    expect(sockets.length).toBe(2);
    sockets[1].onopen!();
    expect(JSON.parse(sockets[1].sent[1])).toEqual({ op: "subscribe", topic: "deployment:x", since: 2 });
    sockets[1].onmessage!({ data: JSON.stringify(line(2, "b")) });
    sockets[1].onmessage!({ data: JSON.stringify(line(3, "c")) });
    expect(seen).toEqual([1, 2, 3]);
    stop();
  });

  it("renders only the rows in view of a 100,000-line log and follows its end", async () => {
    const store = new LogStore();
    for (let i = 1; i <= 100_000; i++) store.push(line(i, `line number ${i}`));
    view = await render(<LogView store={store} name="t.log" />);
    await frames();
    const shown = rows(view.container);
    expect(shown.length).toBeLessThan(100);
    expect(view.container.querySelector<HTMLElement>(".log-rows")!.style.height).toBe(`${100_000 * 20}px`);
    // Following: the last line is on screen.
    expect(shown.some((r) => r.textContent === "100000line number 100000")).toBe(true);
    await act(async () => {
      for (let i = 100_001; i <= 100_050; i++) store.push(line(i, `line number ${i}`));
    });
    await frames();
    expect(rows(view.container).some((r) => r.dataset.line === "100050")).toBe(true);
  });

  it("pauses following when scrolled up and resumes on a click", async () => {
    const store = new LogStore();
    for (let i = 1; i <= 500; i++) store.push(line(i, `l${i}`));
    view = await render(<LogView store={store} name="t.log" />);
    await frames();
    const box = logBox(view.container);
    expect(box.scrollTop).toBe(500 * 20 - 400);
    await act(async () => {
      box.scrollTop = 1000;
      box.dispatchEvent(new Event("scroll"));
    });
    await act(async () => {
      for (let i = 501; i <= 520; i++) store.push(line(i, `l${i}`));
    });
    await frames();
    expect(box.scrollTop).toBe(1000);
    const button = [...view.container.querySelectorAll("button")].find((b) => b.textContent?.startsWith("Follow"))!;
    expect(button.textContent).toBe("Follow (20 new)");
    expect(button.getAttribute("aria-pressed")).toBe("false");
    await act(async () => button.click());
    await frames();
    expect(box.scrollTop).toBe(520 * 20 - 400);
    expect(button.textContent).toBe("Following");
  });

  it("folds step sections and finds text", async () => {
    const store = new LogStore();
    store.push(line(1, "==> Fetching", "system"));
    for (let i = 2; i <= 10; i++) store.push(line(i, `fetch ${i}`));
    store.push(line(11, "==> Building", "system"));
    store.push(line(12, "needle here"));
    view = await render(<LogView store={store} name="t.log" />);
    await frames();
    expect(visibleRows(store.lines, new Set([0]))).toEqual([0, 10, 11]);
    const fold = view.container.querySelector<HTMLButtonElement>(".fold")!;
    expect(fold.getAttribute("aria-expanded")).toBe("true");
    await act(async () => fold.click());
    expect(rows(view.container).map((r) => r.dataset.line)).toEqual(["1", "11", "12"]);
    const search = view.container.querySelector<HTMLInputElement>('input[type="search"]')!;
    await act(async () => {
      Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value")!.set!.call(search, "NEEDLE");
      search.dispatchEvent(new Event("input", { bubbles: true }));
    });
    expect(view.container.querySelector('[data-testid="match-count"]')!.textContent).toBe("1 of 1");
    expect(view.container.querySelector(".log-row.current-match")!.textContent).toContain("needle here");
    // Enter jumps to the first match first, and stops following without counting old lines as new.
    await act(async () => {
      Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value")!.set!.call(search, "fetch");
      search.dispatchEvent(new Event("input", { bubbles: true }));
    });
    await act(async () => search.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true })));
    expect(view.container.querySelector('[data-testid="match-count"]')!.textContent).toBe("1 of 10");
    expect(view.container.querySelector(".log-row.current-match")!.textContent).toContain("Fetching");
    // The next match is inside the folded section: it unfolds.
    await act(async () => search.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true })));
    expect(view.container.querySelector('[data-testid="match-count"]')!.textContent).toBe("2 of 10");
    expect(view.container.querySelector(".log-row.current-match")!.textContent).toContain("fetch 2");
    const follow = [...view.container.querySelectorAll("button")].find((b) => b.textContent?.startsWith("Follow"))!;
    expect(follow.textContent).toBe("Follow");
  });

  it("opens at a line linked by URL without following", async () => {
    location.hash = "#L250";
    const store = new LogStore();
    for (let i = 1; i <= 1000; i++) store.push(line(i, `l${i}`));
    view = await render(<LogView store={store} name="t.log" />);
    await frames();
    const target = view.container.querySelector<HTMLElement>(".log-row.target")!;
    expect(target.dataset.line).toBe("250");
    expect(logBox(view.container).scrollTop).toBe(249 * 20 - 200);
  });
});

describe("a log without end", () => {
  it("keeps at most its limit of lines and numbers them as in the whole log", async () => {
    const store = new LogStore(1000);
    for (let i = 1; i <= 1500; i++) store.push(line(i, `l${i}`));
    expect(store.lines.length).toBeLessThanOrEqual(1000);
    expect(store.dropped + store.lines.length).toBe(1500);
    expect(store.lines[0].text).toBe(`l${store.dropped + 1}`);
    view = await render(<LogView store={store} name="t.log" />);
    await frames();
    const shown = rows(view.container);
    expect(shown[shown.length - 1].dataset.line).toBe("1500");
    expect(shown[shown.length - 1].textContent).toBe("1500l1500");
    expect(view.container.querySelector('[data-testid="line-count"]')!.textContent).toContain(`${store.dropped} earlier ones`);
  });
});
