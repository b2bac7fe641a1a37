/**
 * The golden metrics from Analytics Engine's SQL API, for a deployed mesh: every call's data
 * point, from every location, sampled by Analytics Engine and weighted back by
 * `_sample_interval` (core/observability/sql.ts has the queries). Used when the policy Worker has
 * credentials — ANALYTICS_ACCOUNT_ID and the ANALYTICS_API_TOKEN secret (an API token with
 * Account Analytics Read) — instead of the metrics objects' counts; a failed query says why in
 * the view's `problems`, and the objects' counts answer instead.
 */
import { goldenMetrics, SLOT_MS, Tally } from "../../core/observability/metrics.ts";
import {
  codesQuery,
  edgesQuery,
  seriesQuery,
  servicesQuery,
} from "../../core/observability/sql.ts";
import type {
  AnalyticsMetrics,
  EdgeView,
  ServiceMetricsView,
} from "../../core/observability/view.ts";

/** Where and as whom to query. */
export interface AnalyticsCredentials {
  readonly accountId: string;
  readonly apiToken: string;
  readonly dataset: string;
  /** The SQL API's base (tests point it at a fake). */
  readonly endpoint: string;
}

export const SQL_API = "https://api.cloudflare.com/client/v4/accounts";
const QUERY_TIMEOUT_MS = 10_000;

type Row = Record<string, unknown>;

const num = (value: unknown) => {
  const n = typeof value === "number" ? value : Number(value);
  return Number.isFinite(n) ? n : 0;
};
const str = (value: unknown) => (typeof value === "string" ? value : String(value ?? ""));

/** Runs one query; its rows, or an error that says what the API answered. */
export async function runQuery(
  credentials: AnalyticsCredentials,
  sql: string,
  fetcher: typeof fetch = fetch,
): Promise<Row[]> {
  const url = `${credentials.endpoint}/${encodeURIComponent(credentials.accountId)}/analytics_engine/sql`;
  const response = await fetcher(url, {
    method: "POST",
    headers: { authorization: `Bearer ${credentials.apiToken}` },
    body: sql,
    signal: AbortSignal.timeout(QUERY_TIMEOUT_MS),
  });
  const text = await response.text();
  if (!response.ok) {
    throw new Error(
      `the Analytics Engine SQL API answered ${response.status}: ${text.slice(0, 300)}`,
    );
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(
      `the Analytics Engine SQL API answered something not JSON: ${text.slice(0, 120)}`,
    );
  }
  const data = (body as { data?: unknown }).data;
  if (!Array.isArray(data)) throw new Error("the Analytics Engine SQL API answered no `data` rows");
  return data as Row[];
}

/** The golden metrics of the last `windowMs`, from four queries run together. */
export async function analyticsMetrics(
  credentials: AnalyticsCredentials,
  windowMs: number,
  fetcher: typeof fetch = fetch,
): Promise<AnalyticsMetrics> {
  const seconds = windowMs / 1000;
  const { dataset } = credentials;
  const [edgeRows, codeRows, serviceRows, seriesRows] = await Promise.all([
    runQuery(credentials, edgesQuery(dataset, seconds), fetcher),
    runQuery(credentials, codesQuery(dataset, seconds), fetcher),
    runQuery(credentials, servicesQuery(dataset, seconds), fetcher),
    runQuery(credentials, seriesQuery(dataset, seconds, SLOT_MS / 1000), fetcher),
  ]);
  const key = (row: Row) =>
    `${str(row.caller)}|${str(row.destination)}|${str(row.backend)}|${str(row.route)}`;
  const codes = new Map<string, Record<string, number>>();
  for (const row of codeRows) {
    const status = num(row.status);
    const outcome = str(row.outcome);
    const code = outcome === "backend" || outcome === "" ? String(status) : `${status} ${outcome}`;
    const byCode = codes.get(key(row)) ?? {};
    byCode[code] = (byCode[code] ?? 0) + num(row.requests);
    codes.set(key(row), byCode);
  }
  const metricsOf = (row: Row, byCode: Record<string, number>) => {
    // The sums and counts through the same arithmetic as the objects' (classes, rates).
    const tally = new Tally();
    tally.requests = num(row.requests);
    tally.failures = num(row.failures);
    tally.codes = byCode;
    tally.latencySumMs = num(row.latency_sum);
    tally.attempts = num(row.attempts);
    tally.bytes = num(row.bytes);
    const golden = goldenMetrics(tally, seconds);
    const has = tally.requests > 0;
    return {
      ...golden,
      latencyMs: {
        p50: has ? num(row.p50) : null,
        p95: has ? num(row.p95) : null,
        p99: has ? num(row.p99) : null,
        mean: golden.latencyMs.mean,
      },
    };
  };
  const edges: EdgeView[] = edgeRows.map((row) => ({
    caller: str(row.caller),
    destination: str(row.destination),
    backend: str(row.backend),
    route: str(row.route),
    ...metricsOf(row, codes.get(key(row)) ?? {}),
  }));
  const serviceCodes = new Map<string, Record<string, number>>();
  for (const edge of edges) {
    const byCode = serviceCodes.get(edge.destination) ?? {};
    for (const [code, n] of Object.entries(edge.codes)) byCode[code] = (byCode[code] ?? 0) + n;
    serviceCodes.set(edge.destination, byCode);
  }
  const services: ServiceMetricsView[] = serviceRows.map((row) => ({
    name: str(row.name),
    ...metricsOf(row, serviceCodes.get(str(row.name)) ?? {}),
  }));
  const series: [number, number, number][] = seriesRows.map((row) => [
    num(row.slot) * 1000,
    num(row.requests),
    num(row.failures),
  ]);
  return { edges, services, series };
}
