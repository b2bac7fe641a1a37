// meshctl stat against a fake admin API answering GET /v1/metrics with views the core builds:
// the per-edge, per-route and per-Service tables, filters, the window sent, JSON, an empty
// window, problems, and every bad command line refused before a request is sent.
import { describe, expect } from "vitest";
import { VIEWER_SVID } from "./fake-admin.ts";
import { edge, viewOf, type Calls } from "./metrics-view.ts";
import { meshctl, test } from "./run-meshctl.ts";

/** frontend calls payments' canary split and a second route; checkout calls payments too. */
const TRAFFIC: Calls[] = [
  { ...edge("frontend", "payments", "payments-v1", "payments/stable"), count: 400, latencyMs: 4 },
  {
    ...edge("frontend", "payments", "payments-v1", "payments/refunds"),
    count: 50,
    latencyMs: 300,
  },
  { ...edge("frontend", "payments", "payments-v2", "payments/stable"), count: 90, latencyMs: 9 },
  {
    ...edge("frontend", "payments", "payments-v2", "payments/stable"),
    count: 10,
    status: 503,
    meshError: "circuit_open",
    latencyMs: 1,
  },
  { ...edge("checkout", "payments", "payments-v1", "payments/stable"), count: 50, latencyMs: 20 },
];

describe("meshctl stat", () => {
  test("prints one row per edge, busiest first, routes added up", async ({ fake, run }) => {
    fake.metrics = viewOf(TRAFFIC);
    const result = await run("stat");
    expect(result.code, result.stderr).toBe(0);
    // 450 calls over the window's 50 s are 9 per second. The first edge has two routes, so its
    // percentiles are bounds: at most the larger route's (4 ms calls count in the 5.01 ms
    // bucket, 300 ms ones in the 316 ms one). 9 ms calls and ten 1 ms failures: p50 is 10 ms.
    expect(result.stdout).toBe(
      [
        "SOURCE     DESTINATION   BACKEND       SUCCESS   RPS    LATENCY_P50   LATENCY_P95   LATENCY_P99",
        "frontend   payments      payments-v1   100.00%   9.00   ≤316ms        ≤316ms        ≤316ms",
        "frontend   payments      payments-v2   90.00%    2.00   10ms          10ms          10ms",
        "checkout   payments      payments-v1   100.00%   1.00   25.12ms       25.12ms       25.12ms",
        "",
      ].join("\n"),
    );
    expect(fake.requests.at(-1)).toMatchObject({
      method: "GET",
      path: "/v1/metrics",
      query: { window: "60" },
    });
  });

  test("adds ROUTE with routes, --by route or -o wide, each exact", async ({ fake, run }) => {
    fake.metrics = viewOf(TRAFFIC);
    const routes = await run("stat", "routes", "--from", "frontend");
    expect(routes.code, routes.stderr).toBe(0);
    expect(routes.stdout).toBe(
      [
        "SOURCE     DESTINATION   BACKEND       ROUTE              SUCCESS   RPS    LATENCY_P50   LATENCY_P95   LATENCY_P99",
        "frontend   payments      payments-v1   payments/stable    100.00%   8.00   5.01ms        5.01ms        5.01ms",
        "frontend   payments      payments-v2   payments/stable    90.00%    2.00   10ms          10ms          10ms",
        "frontend   payments      payments-v1   payments/refunds   100.00%   1.00   316ms         316ms         316ms",
        "",
      ].join("\n"),
    );
    for (const args of [
      ["--by", "route"],
      ["-o", "wide"],
    ]) {
      const same = await run("stat", "--from", "frontend", ...args);
      expect(same.stdout, args.join(" ")).toBe(routes.stdout);
    }
  });

  test("shows each Service's inbound traffic with services, or one by name", async ({
    fake,
    run,
  }) => {
    fake.metrics = viewOf([
      ...TRAFFIC,
      { ...edge("payments", "ledger", "ledger", "ledger"), count: 25, latencyMs: 2 },
    ]);
    const all = await run("stat", "services");
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout).toBe(
      [
        "SERVICE    SUCCESS   RPS    LATENCY_P50   LATENCY_P95   LATENCY_P99",
        "payments   98.33%    12.0   5.01ms        316ms         316ms",
        "ledger     100.00%   0.50   2ms           2ms           2ms",
        "",
      ].join("\n"),
    );
    const one = await run("stat", "svc", "ledger");
    expect(one.stdout).toBe(
      [
        "SERVICE   SUCCESS   RPS    LATENCY_P50   LATENCY_P95   LATENCY_P99",
        "ledger    100.00%   0.50   2ms           2ms           2ms",
        "",
      ].join("\n"),
    );
    expect((await run("stat", "--by", "service", "--to", "ledger")).stdout).toBe(one.stdout);
  });

  test("filters edges with --from and --to, and sends --window in seconds", async ({
    fake,
    run,
  }) => {
    fake.metrics = viewOf(TRAFFIC, 300);
    const result = await run("stat", "--from", "checkout", "--to", "payments", "--window", "5m");
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.split("\n").slice(1, -1)).toEqual([
      "checkout   payments      payments-v1   100.00%   0.17   25.12ms       25.12ms       25.12ms",
    ]);
    expect(fake.requests.at(-1)!.query).toEqual({ window: "300" });
    await run("stat", "--window", "1m30s");
    expect(fake.requests.at(-1)!.query).toEqual({ window: "90" });
  });

  test("prints the API's own entries, filtered, with -o json", async ({ fake, run }) => {
    const view = viewOf(TRAFFIC);
    fake.metrics = view;
    const result = await run("stat", "--to", "payments", "--from", "checkout", "-o", "json");
    expect(result.code, result.stderr).toBe(0);
    const body = JSON.parse(result.stdout);
    expect(body).toEqual({
      windowSeconds: 60,
      source: "metrics-objects",
      edges: view.edges.filter((e) => e.caller === "checkout"),
      problems: [],
    });
    expect(body.edges[0].codes).toEqual({ "200": 50 });
    const services = JSON.parse((await run("stat", "services", "-o", "json")).stdout);
    expect(services.services).toEqual(view.services);
  });

  test("says there was no traffic in the window, naming the filters", async ({ fake, run }) => {
    const empty = await run("stat");
    expect(empty.code).toBe(0);
    expect(empty.stdout).toBe("");
    expect(empty.stderr).toBe("no traffic in the last 1m\n");
    fake.metrics = viewOf(TRAFFIC, 30);
    const filtered = await run("stat", "--from", "nobody", "--to", "payments", "--window", "30s");
    expect(filtered.stderr).toBe("no traffic from nobody to payments in the last 30s\n");
    fake.metrics = viewOf(TRAFFIC);
    expect((await run("stat", "services", "ledger")).stderr).toBe(
      "no traffic to ledger in the last 1m\n",
    );
  });

  test("prints the view's problems as warnings, with the table", async ({ fake, run }) => {
    fake.metrics = {
      ...viewOf(TRAFFIC),
      problems: ["metrics object for ledger: no answer within 2 s"],
    };
    const result = await run("stat", "--to", "payments");
    expect(result.code).toBe(0);
    expect(result.stderr).toBe("⚠ metrics object for ledger: no answer within 2 s\n");
    expect(result.stdout).toContain("frontend   payments");
  });

  test.for<[string[], string]>([
    [["--window", "5s"], "--window must be from 10s to 15m (the metrics keep 15m), got '5s'"],
    [["--window", "16m"], "--window must be from 10s to 15m (the metrics keep 15m), got '16m'"],
    [
      ["--window", "a minute"],
      "--window must be a duration from 10s to 15m, such as 30s, 1m or 2m30s, got 'a minute'",
    ],
    [["--window", "1500ms"], "--window must be whole seconds, got '1500ms'"],
    [["--by", "colo"], "--by must be one of edge, route, service, got 'colo'"],
    [["pods"], "unknown argument 'pods': one of edges, routes, services"],
    [["services", "--by", "route"], "'services' and --by route ask for different tables"],
    [
      ["edges", "payments"],
      "unexpected argument 'payments': name a destination with --to payments",
    ],
    [
      ["services", "--from", "frontend"],
      "--from filters edges, and a Service's numbers are all its callers together",
    ],
    [["services", "a", "--to", "b"], "'a' and --to b name different Services"],
    [["--from", ""], "--from must name a service, got ''"],
    [["-o", "yaml"], "-o must be one of table, wide, json, got 'yaml'"],
  ])(
    "refuses %j with the usage exit code, sending nothing",
    async ([args, message], { fake, run }) => {
      const result = await run("stat", ...args);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(`✗ ${message}`);
      expect(fake.requests).toHaveLength(0);
    },
  );

  test("says which token was refused, and works for a viewer", async ({ fake }) => {
    fake.metrics = viewOf(TRAFFIC);
    const refused = await meshctl(["stat", "--server", fake.url, "--token", "wrong"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("✗ the admin API refused the token from --token");
    const viewer = await meshctl(["stat", "--server", fake.url, "--svid", VIEWER_SVID]);
    expect(viewer.code, viewer.stderr).toBe(0);
    expect(viewer.stdout).toContain("checkout   payments");
  });
});
