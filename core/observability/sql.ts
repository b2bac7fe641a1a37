/**
 * The golden-metrics queries over the mesh's Analytics Engine dataset (the columns of
 * data-point.ts): what the policy Worker asks the SQL API when it has credentials, and what the
 * docs give users to run themselves. Analytics Engine samples at high volume, and each row's
 * `_sample_interval` says how many calls it stands for: counts are `SUM(_sample_interval)` and
 * quantiles are weighted by it, never `count()`.
 */

/** The dataset the router's MESH_ANALYTICS binding writes to (wrangler.toml). */
export const DEFAULT_DATASET = "meshwork_calls";

/** A dataset name as the SQL API takes it (it is put into the query text, so it is checked). */
export function isDatasetName(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(name);
}

const EDGE = "blob1 AS caller, blob2 AS destination, blob3 AS backend, blob4 AS route";
const GROUP_EDGE = "caller, destination, backend, route";
const SINCE = (seconds: number) => `timestamp > NOW() - INTERVAL '${Math.floor(seconds)}' SECOND`;

/** The golden metrics' columns of a group: counts weighted back, quantiles weighted. */
const GOLDEN = [
  "  SUM(_sample_interval) AS requests,",
  "  SUM(IF(double4 >= 500, _sample_interval, 0)) AS failures,",
  "  quantileExactWeighted(0.50)(double1, _sample_interval) AS p50,",
  "  quantileExactWeighted(0.95)(double1, _sample_interval) AS p95,",
  "  quantileExactWeighted(0.99)(double1, _sample_interval) AS p99,",
  "  SUM(_sample_interval * double1) AS latency_sum,",
  "  SUM(_sample_interval * double3) AS attempts,",
  "  SUM(_sample_interval * double5) AS bytes",
];

/** Requests, failures, latency quantiles, sums per edge over the last `seconds`. */
export function edgesQuery(dataset: string, seconds: number): string {
  return [
    `SELECT ${EDGE},`,
    ...GOLDEN,
    `FROM ${dataset}`,
    `WHERE ${SINCE(seconds)}`,
    `GROUP BY ${GROUP_EDGE}`,
    "ORDER BY requests DESC",
    "LIMIT 2000",
    "FORMAT JSON",
  ].join("\n");
}

/** Calls per edge, status and outcome (the codes) over the last `seconds`. */
export function codesQuery(dataset: string, seconds: number): string {
  return [
    `SELECT ${EDGE}, double4 AS status, blob6 AS outcome, SUM(_sample_interval) AS requests`,
    `FROM ${dataset}`,
    `WHERE ${SINCE(seconds)}`,
    `GROUP BY ${GROUP_EDGE}, status, outcome`,
    "LIMIT 10000",
    "FORMAT JSON",
  ].join("\n");
}

/** The same golden metrics per destination Service (quantiles do not add up across edges). */
export function servicesQuery(dataset: string, seconds: number): string {
  return [
    "SELECT index1 AS name,",
    ...GOLDEN,
    `FROM ${dataset}`,
    `WHERE ${SINCE(seconds)}`,
    "GROUP BY name",
    "ORDER BY requests DESC",
    "LIMIT 1000",
    "FORMAT JSON",
  ].join("\n");
}

/** Requests and failures per `slotSeconds` over the last `seconds`. */
export function seriesQuery(dataset: string, seconds: number, slotSeconds: number): string {
  return [
    `SELECT intDiv(toUInt32(timestamp), ${slotSeconds}) * ${slotSeconds} AS slot,`,
    "  SUM(_sample_interval) AS requests,",
    "  SUM(IF(double4 >= 500, _sample_interval, 0)) AS failures",
    `FROM ${dataset}`,
    `WHERE ${SINCE(seconds)}`,
    "GROUP BY slot",
    "ORDER BY slot",
    "FORMAT JSON",
  ].join("\n");
}
