import { afterEach, describe, expect, it } from "vitest";
import { LineChart } from "../src/chart";
import { bytes, rates } from "../src/pages/metrics";
import { render, Rendered } from "./render";

let view: Rendered | null = null;
afterEach(() => {
  view?.unmount();
  view = null;
});

const point = (ts: string, rx: number) => ({
  ts,
  cpu_percent: 0,
  memory_bytes: 0,
  memory_limit_bytes: 0,
  net_rx_bytes: rx,
  net_tx_bytes: 0,
  block_read_bytes: 0,
  block_write_bytes: 0,
  restart_count: 0,
});

describe("metrics", () => {
  it("turns cumulative counters into per-second rates and skips a restart's drop", () => {
    const points = [
      point("2026-11-27T10:00:00Z", 0),
      point("2026-11-27T10:00:10Z", 1000),
      point("2026-11-27T10:00:20Z", 50),
      point("2026-11-27T10:00:30Z", 1050),
    ];
    expect(rates(points, (p) => p.net_rx_bytes)).toEqual([
      [Date.parse("2026-11-27T10:00:10Z"), 100],
      [Date.parse("2026-11-27T10:00:30Z"), 100],
    ]);
    expect(bytes(512 * 1024 * 1024)).toBe("512.0 MiB");
    expect(bytes(900)).toBe("900 B");
  });

  it("draws each series and a limit line, and says the latest values", async () => {
    view = await render(
      <LineChart
        title="Memory"
        series={[{ name: "used", color: "red", points: [[0, 10], [1000, 20]] }]}
        format={(v) => `${v} B`}
        limit={{ value: 100, label: "limit" }}
      />,
    );
    const svg = view.container.querySelector("svg")!;
    expect(svg.getAttribute("aria-label")).toBe("Memory: used 20 B");
    expect(view.container.querySelectorAll("polyline")).toHaveLength(1);
    expect(view.container.querySelector(".chart-limit")).not.toBeNull();
    expect(view.container.textContent).toContain("used 20 B of 100 B");
  });

  it("draws nothing without points", async () => {
    view = await render(<LineChart title="CPU" series={[{ name: "CPU", color: "red", points: [] }]} format={String} />);
    expect(view.container.querySelector("svg")).toBeNull();
  });
});
