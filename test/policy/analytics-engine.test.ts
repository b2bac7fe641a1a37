// The Analytics Engine source: the SQL it sends (weighted by _sample_interval), how it reads the
// API's answer into the view's edges and Services, and the errors it gives for bad answers.
import { describe, expect, it } from "vitest";
import { analyticsMetrics, runQuery } from "../../workers/policy/analytics-engine.ts";
import { readSettings } from "../../workers/policy/settings.ts";

const CREDENTIALS = {
  accountId: "0123456789abcdef0123456789abcdef",
  apiToken: "token-1234567890",
  dataset: "meshwork_calls",
  endpoint: "https://sql.example/accounts",
};

function fakeApi(answer: (sql: string) => unknown, status = 200) {
  const seen: { url: string; sql: string; authorization: string | null }[] = [];
  const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const sql = String(init?.body);
    seen.push({
      url: String(input),
      sql,
      authorization: new Headers(init?.headers).get("authorization"),
    });
    return new Response(JSON.stringify(answer(sql)), { status });
  }) as typeof fetch;
  return { seen, fetcher };
}

describe("Analytics Engine source", () => {
  it("asks for sampled counts and weighted quantiles, and reads them into edges and Services", async () => {
    const edge = {
      caller: "orders",
      destination: "payments",
      backend: "payments-v1",
      route: "payments-canary/0",
    };
    const api = fakeApi((sql) => {
      if (sql.includes("AS status")) {
        return {
          data: [
            { ...edge, status: 200, outcome: "backend", requests: 90 },
            { ...edge, status: 503, outcome: "circuit_open", requests: 10 },
          ],
        };
      }
      if (sql.includes("index1 AS name")) {
        return {
          data: [
            {
              name: "payments",
              requests: 100,
              failures: 10,
              p50: 3,
              p95: 9,
              p99: 20,
              latency_sum: 400,
              attempts: 110,
              bytes: 1000,
            },
          ],
        };
      }
      if (sql.includes("intDiv"))
        return { data: [{ slot: 1796650000, requests: 100, failures: 10 }] };
      return {
        data: [
          {
            ...edge,
            requests: 100,
            failures: 10,
            p50: 3,
            p95: 9,
            p99: 20,
            latency_sum: 400,
            attempts: 110,
            bytes: 1000,
          },
        ],
      };
    });
    const metrics = await analyticsMetrics(CREDENTIALS, 60_000, api.fetcher);
    expect(api.seen).toHaveLength(4);
    for (const { url, sql, authorization } of api.seen) {
      expect(url).toBe(
        `https://sql.example/accounts/${CREDENTIALS.accountId}/analytics_engine/sql`,
      );
      expect(authorization).toBe("Bearer token-1234567890");
      expect(sql).toContain("FROM meshwork_calls");
      expect(sql).toContain("INTERVAL '60' SECOND");
      expect(sql).toContain("SUM(_sample_interval)");
      expect(sql).not.toMatch(/count\(\)/i);
    }
    expect(metrics.edges).toHaveLength(1);
    expect(metrics.edges[0]).toMatchObject({
      ...edge,
      requests: 100,
      rps: 100 / 60,
      successRate: 0.9,
      latencyMs: { p50: 3, p95: 9, p99: 20, mean: 4 },
      codes: { "200": 90, "503 circuit_open": 10 },
      classes: { "2xx": 90, "5xx": 10 },
      attemptsPerCall: 1.1,
    });
    expect(metrics.services[0]).toMatchObject({
      name: "payments",
      requests: 100,
      successRate: 0.9,
    });
    expect(metrics.series).toEqual([[1796650000_000, 100, 10]]);
  });

  it("says what the API answered when a query fails", async () => {
    const denied = fakeApi(() => ({ errors: [{ message: "Authentication error" }] }), 403);
    await expect(runQuery(CREDENTIALS, "SELECT 1", denied.fetcher)).rejects.toThrow(
      /answered 403: .*Authentication error/,
    );
    const odd = fakeApi(() => ({ rows: 0 }));
    await expect(runQuery(CREDENTIALS, "SELECT 1", odd.fetcher)).rejects.toThrow(/no `data` rows/);
  });

  it("takes credentials only whole and sane, saying what is missing", () => {
    expect(readSettings({}).analytics).toBeUndefined();
    const half = readSettings({ ANALYTICS_ACCOUNT_ID: CREDENTIALS.accountId });
    expect(half.analytics).toBeUndefined();
    expect(half.problems.join("\n")).toMatch(/ANALYTICS_API_TOKEN secret is not/);
    const bad = readSettings({ ANALYTICS_ACCOUNT_ID: "nope", ANALYTICS_API_TOKEN: "t" });
    expect(bad.analytics).toBeUndefined();
    expect(bad.problems.join("\n")).toMatch(/32 hex digits/);
    const dataset = readSettings({
      ANALYTICS_ACCOUNT_ID: CREDENTIALS.accountId,
      ANALYTICS_API_TOKEN: "t",
      ANALYTICS_DATASET: "x; DROP",
    });
    expect(dataset.analytics?.dataset).toBe("meshwork_calls");
    expect(dataset.problems.join("\n")).toMatch(/not a dataset name/);
  });
});
