import { afterEach, describe, expect, it, vi } from "vitest";

// The follower's view of auth: a token that expires mid-stream and a refresh that renews it.
let token = "first-token";
const refresh = vi.fn(async () => {
  token = "renewed-token";
  return { id: "u", username: "u", role: "member", created_at: "" };
});
vi.mock("../src/api", () => ({ currentToken: () => token, refresh: () => refresh() }));

const { follow } = await import("../src/live");

class FakeSocket {
  static all: FakeSocket[] = [];
  sent: unknown[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((e: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;
  constructor() {
    FakeSocket.all.push(this);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.onclose?.();
  }
}
const tick = () => new Promise((r) => setTimeout(r, 0));

afterEach(() => {
  FakeSocket.all = [];
});

describe("live follower", () => {
  it("re-authenticates with a refreshed token and resumes from its last seq", async () => {
    const seqs: number[] = [];
    const stop = follow("deployment:d", (m) => typeof m.seq === "number" && seqs.push(m.seq), {
      socket: () => new FakeSocket() as unknown as WebSocket,
    });
    await tick();
    const socket = FakeSocket.all[0];
    socket.onopen!();
    expect(socket.sent).toEqual([
      { op: "auth", token: "first-token" },
      { op: "subscribe", topic: "deployment:d", since: 0 },
    ]);
    for (const seq of [1, 2, 3]) socket.onmessage!({ data: JSON.stringify({ topic: "deployment:d", seq, type: "log", line: "x" }) });
    socket.onmessage!({ data: JSON.stringify({ type: "error", code: "unauthorized", message: "token expired" }) });
    await tick();
    expect(refresh).toHaveBeenCalledOnce();
    expect(socket.sent.slice(2)).toEqual([
      { op: "auth", token: "renewed-token" },
      { op: "subscribe", topic: "deployment:d", since: 3 },
    ]);
    expect(FakeSocket.all.length).toBe(1);
    expect(seqs).toEqual([1, 2, 3]);
    stop();
  });

  it("reconnects at once when a hidden tab becomes visible", async () => {
    const stop = follow("project:p", () => undefined, { socket: () => new FakeSocket() as unknown as WebSocket });
    await tick();
    FakeSocket.all[0].onopen!();
    FakeSocket.all[0].onclose!();
    expect(FakeSocket.all.length).toBe(1);
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "visible" });
    document.dispatchEvent(new Event("visibilitychange"));
    await tick();
    expect(FakeSocket.all.length).toBe(2);
    stop();
    // Stopped: no more sockets, whatever happens.
    FakeSocket.all[1].onclose?.();
    document.dispatchEvent(new Event("visibilitychange"));
    await tick();
    expect(FakeSocket.all.length).toBe(2);
  });
});
