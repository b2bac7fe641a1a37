// meshctl top against a fake admin API: --once (one frame, busiest first, --limit), the live
// loop as a terminal sees it (each frame clears the screen) and as a pipe does (frames one after
// another, no control codes), Ctrl-C exiting 0, and bad command lines.
import { describe, expect } from "vitest";
import { main } from "../../cli/main.mjs";
import { FAKE_TOKEN } from "./fake-admin.ts";
import { edge, viewOf, type Calls } from "./metrics-view.ts";
import { meshctl, test } from "./run-meshctl.ts";

const CLEAR = "\x1b[H\x1b[2J";

// Rates over the 30 s window's 20 s: 200 calls are 10 per second.
const TRAFFIC: Calls[] = [
  { ...edge("frontend", "payments", "payments-v1", "payments/stable"), count: 200, latencyMs: 4 },
  { ...edge("frontend", "payments", "payments-v2", "payments/canary"), count: 20, latencyMs: 90 },
  {
    ...edge("frontend", "payments", "payments-v2", "payments/canary"),
    count: 20,
    status: 500,
    latencyMs: 90,
  },
  { ...edge("checkout", "ledger", "ledger", "ledger"), count: 100, latencyMs: 1 },
];

/**
 * meshctl top in process, looping, until it prints its `frames`th frame: then Ctrl-C (the
 * io's interrupt signal) stops it. Returns what it printed and its exit code.
 */
async function topUntil(url: string, frames: number, isTTY: boolean, ...args: string[]) {
  const interrupt = new AbortController();
  const lines: string[] = [];
  let headings = 0;
  const io = {
    isTTY,
    interrupt: interrupt.signal,
    print: (line: string) => {
      lines.push(line);
      // A frame's lines are printed in one go, so Ctrl-C at its heading lets the frame finish
      // and stops the loop before the next one.
      if (line.replace(CLEAR, "").startsWith("busiest routes") && ++headings === frames) {
        interrupt.abort();
      }
    },
    warn: (line: string) => lines.push(`stderr: ${line}`),
  };
  const code = await main(
    ["top", ...args, "--interval", "1s", "--server", url, "--token", FAKE_TOKEN],
    { io, env: { USER: "tester" } },
  );
  return { code, text: `${lines.join("\n")}\n` };
}

describe("meshctl top", () => {
  test("prints one frame with --once: busiest first, no control codes", async ({ fake, run }) => {
    fake.metrics = viewOf(TRAFFIC, 30);
    const result = await run("top", "--once");
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(
      [
        "busiest routes over the last 30s · 12:00:00 UTC",
        "",
        "SOURCE     DESTINATION   ROUTE             BACKEND       RPS    SUCCESS   LATENCY_P99",
        "frontend   payments      payments/stable   payments-v1   10.0   100.00%   5.01ms",
        "checkout   ledger        ledger            ledger        5.00   100.00%   1ms",
        "frontend   payments      payments/canary   payments-v2   2.00   50.00%    100ms",
        "",
      ].join("\n"),
    );
    expect(fake.requests.at(-1)).toMatchObject({ path: "/v1/metrics", query: { window: "30" } });
  });

  test("shows --limit rows and says how many more there are", async ({ fake, run }) => {
    fake.metrics = viewOf(TRAFFIC, 30);
    const result = await run("top", "--once", "--limit", "1", "--window", "30s");
    expect(result.stdout.split("\n").slice(3)).toEqual([
      "frontend   payments      payments/stable   payments-v1   10.0   100.00%   5.01ms",
      "(2 more; --limit shows more)",
      "",
    ]);
    const to = await run("top", "--once", "--to", "ledger");
    expect(to.stdout.split("\n").slice(3, -1)).toEqual([
      "checkout   ledger        ledger   ledger    5.00   100.00%   1ms",
    ]);
  });

  test("says there is no traffic, and prints the view's problems", async ({ fake, run }) => {
    fake.metrics = { problems: ["metrics object for ledger: no answer"] };
    const result = await run("top", "--once", "--window", "1m");
    expect(result.code).toBe(0);
    expect(result.stdout.split("\n").slice(1)).toEqual([
      "",
      "⚠ metrics object for ledger: no answer",
      "no traffic in the last 1m",
      "",
    ]);
  });

  test("on a terminal, clears the screen before each frame; Ctrl-C exits 0", async ({ fake }) => {
    fake.metrics = viewOf(TRAFFIC, 30);
    const { code, text } = await topUntil(fake.url, 2, true);
    expect(code).toBe(0);
    const frames = text.split(CLEAR).slice(1);
    expect(frames).toHaveLength(2);
    expect(frames[0]).toMatch(
      /^busiest routes over the last 30s, every 1s · 12:00:00 UTC \(Ctrl-C quits\)\n/,
    );
    expect(frames[1]).toBe(frames[0]);
    expect(fake.requests.filter((r) => r.path === "/v1/metrics")).toHaveLength(2);
  });

  test("piped, prints frames one after another with no control codes", async ({ fake }) => {
    fake.metrics = viewOf(TRAFFIC, 30);
    const { code, text } = await topUntil(fake.url, 2, false, "--limit", "2");
    expect(code).toBe(0);
    expect(text).not.toContain("\x1b");
    const frame = [
      "busiest routes over the last 30s, every 1s · 12:00:00 UTC (Ctrl-C quits)",
      "",
      "SOURCE     DESTINATION   ROUTE             BACKEND       RPS    SUCCESS   LATENCY_P99",
      "frontend   payments      payments/stable   payments-v1   10.0   100.00%   5.01ms",
      "checkout   ledger        ledger            ledger        5.00   100.00%   1ms",
      "(1 more; --limit shows more)",
    ].join("\n");
    expect(text).toBe(`${frame}\n\n${frame}\n`);
  });

  test.for<[string[], string]>([
    [
      ["--interval", "100ms"],
      "--interval must be a duration from 1s to 1m, such as 2s or 5s, got '100ms'",
    ],
    [
      ["--interval", "soon"],
      "--interval must be a duration from 1s to 1m, such as 2s or 5s, got 'soon'",
    ],
    [["--limit", "0"], "--limit must be a whole number ≥ 1, got '0'"],
    [["--window", "1h"], "--window must be from 10s to 15m (the metrics keep 15m), got '1h'"],
    [["routes"], "unexpected argument 'routes'"],
    [["-o", "json"], "-o must be one of table, got 'json'"],
  ])(
    "refuses %j with the usage exit code, sending nothing",
    async ([args, message], { fake, run }) => {
      const result = await run("top", "--once", ...args);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(`✗ ${message}`);
      expect(fake.requests).toHaveLength(0);
    },
  );

  test("says which token was refused, exiting 1", async ({ fake }) => {
    const result = await meshctl(["top", "--once", "--server", fake.url, "--token", "wrong"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("✗ the admin API refused the token from --token");
  });
});
