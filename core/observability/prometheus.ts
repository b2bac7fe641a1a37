/**
 * The mesh's running totals in Prometheus's text exposition format (version 0.0.4), for the
 * policy Worker's `GET /metrics`. Named the way Istio names its standard metrics, so dashboards
 * and alerts written for Istio read these with a change of prefix: `meshwork_requests_total`
 * (Istio's `istio_requests_total`), `meshwork_request_duration_milliseconds` (a histogram, as
 * `istio_request_duration_milliseconds`), with Istio's label names — `source_workload`,
 * `destination_service`, `destination_workload`, `response_code`, `response_flags` — plus
 * `route`, the rule that matched. Breakers are a state-set gauge, as kube-state-metrics shows a
 * pod's phase: one sample per state, 1 for the current one and 0 for the others, so
 * `meshwork_circuit_breaker_state{state="open"} == 1` selects the open ones.
 *
 * The histogram's buckets are a subset of the metrics' own fine geometric buckets
 * (HISTOGRAM_BOUNDS_MS), the bounds nearest 1, 2, 5, 10, 20, 50 … ms. Because each is a bound
 * of those buckets, every cumulative count is exact, not interpolated; fifteen buckets instead
 * of fifty-three keep a scrape small. Pure: it renders what it is given, in a fixed order, so a
 * scrape's text depends only on the totals.
 */
import { HISTOGRAM_BOUNDS_MS, Tally, type Edge } from "./metrics.ts";
import type { StoredBreaker, TotalsReading } from "./metrics-store.ts";

/** What `GET /metrics` answers with: the text format's media type. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** The states a breaker can be in: every one gets a sample. */
const BREAKER_STATES: readonly StoredBreaker["state"][] = ["closed", "open", "half-open"];

/** What `response_flags` says when the mesh added no error code (Istio's convention too). */
const NO_FLAGS = "-";

/**
 * Indexes into HISTOGRAM_BOUNDS_MS of the exposed buckets: for each of 1, 2, 5 × 10^k ms up to
 * the largest bound, the bound nearest it (by ratio). Later buckets fall into `+Inf`.
 */
export const EXPOSED_BUCKETS: readonly number[] = (() => {
  const largest = HISTOGRAM_BOUNDS_MS.at(-1)!;
  const picked: number[] = [];
  for (let decade = 1; decade <= largest; decade *= 10) {
    for (const step of [1, 2, 5]) {
      const target = step * decade;
      if (target > largest) break;
      let best = 0;
      HISTOGRAM_BOUNDS_MS.forEach((bound, i) => {
        const distance = Math.abs(Math.log(bound / target));
        if (distance < Math.abs(Math.log(HISTOGRAM_BOUNDS_MS[best]! / target))) best = i;
      });
      if (!picked.includes(best)) picked.push(best);
    }
  }
  return picked;
})();

/** The `le` bounds exposed, in milliseconds. */
export const EXPOSED_BOUNDS_MS: readonly number[] = EXPOSED_BUCKETS.map(
  (i) => HISTOGRAM_BOUNDS_MS[i]!,
);

/** A label value with backslash, double quote and newline escaped, as the format requires. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** HELP text with backslash and newline escaped. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** A sample value: integers as they are, `+Inf`, `-Inf` and `NaN` as the format spells them. */
function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

type Labels = readonly (readonly [name: string, value: string])[];

function sample(name: string, labels: Labels, value: number): string {
  const text = labels.map(([label, v]) => `${label}="${escapeLabelValue(v)}"`).join(",");
  return `${name}${text === "" ? "" : `{${text}}`} ${formatValue(value)}`;
}

function header(name: string, type: string, help: string): string[] {
  return [`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`];
}

/** An edge's labels, as Istio names them. */
function edgeLabels(edge: Edge): Labels {
  return [
    ["source_workload", edge.caller],
    ["destination_service", edge.destination],
    ["destination_workload", edge.backend],
    ["route", edge.route],
  ];
}

/** A counted code (`200`, `503 circuit_open`) as `response_code` and `response_flags`. */
export function splitCode(code: string): { responseCode: string; responseFlags: string } {
  const space = code.indexOf(" ");
  if (space === -1) return { responseCode: code, responseFlags: NO_FLAGS };
  return { responseCode: code.slice(0, space), responseFlags: code.slice(space + 1) || NO_FLAGS };
}

/** A key that sorts and identifies a label set. */
const keyOf = (labels: Labels) => JSON.stringify(labels);

/** Plain code-unit order (locale-free, so the output is the same everywhere). */
const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Renders the totals of every destination, and the config version the policy store holds
 * (`null`: none yet, and no sample), as one exposition. Edges reported under more than one
 * reading are added together; a backend's breaker is its latest report.
 */
export function renderPrometheus(
  totals: readonly TotalsReading[],
  info: { configVersion: number | null },
): string {
  // Edges, summed per label set (one destination's object holds each edge once, but nothing
  // here depends on it).
  const edges = new Map<string, { labels: Labels; tally: Tally }>();
  const breakers = new Map<string, StoredBreaker>();
  for (const reading of totals) {
    for (const { edge, counts } of reading.edges) {
      const labels = edgeLabels(edge);
      const key = keyOf(labels);
      const entry = edges.get(key);
      if (entry) entry.tally.addCounts(counts);
      else edges.set(key, { labels, tally: Tally.of(counts) });
    }
    for (const breaker of reading.breakers) {
      const seen = breakers.get(breaker.backend);
      if (!seen || seen.reportedAt < breaker.reportedAt) breakers.set(breaker.backend, breaker);
    }
  }
  const sorted = [...edges.entries()].sort(([a], [b]) => compare(a, b));

  const lines: string[] = [];

  const requests = "meshwork_requests_total";
  lines.push(
    ...header(
      requests,
      "counter",
      "Calls through the mesh by edge, route, status and mesh error code (response_flags, - for none).",
    ),
  );
  for (const [, { labels, tally }] of sorted) {
    // Two codes that split alike ("503" and "503 -") are one series.
    const series = new Map<string, { code: string; flags: string; n: number }>();
    for (const [counted, n] of Object.entries(tally.codes)) {
      const { responseCode: code, responseFlags: flags } = splitCode(counted);
      const key = `${code} ${flags}`;
      const seen = series.get(key);
      if (seen) seen.n += n;
      else series.set(key, { code, flags, n });
    }
    for (const [, { code, flags, n }] of [...series].sort(([a], [b]) => compare(a, b))) {
      lines.push(
        sample(requests, [...labels, ["response_code", code], ["response_flags", flags]], n),
      );
    }
  }

  const duration = "meshwork_request_duration_milliseconds";
  lines.push(
    ...header(
      duration,
      "histogram",
      "Milliseconds from a call's arrival at the mesh to its answer's headers, by edge and route.",
    ),
  );
  for (const [, { labels, tally }] of sorted) {
    let total = 0;
    for (const n of tally.latency) total += n;
    let cumulative = 0;
    let next = 0;
    EXPOSED_BUCKETS.forEach((index, b) => {
      for (; next <= index; next++) cumulative += tally.latency[next]!;
      lines.push(
        sample(`${duration}_bucket`, [...labels, ["le", String(EXPOSED_BOUNDS_MS[b])]], cumulative),
      );
    });
    lines.push(sample(`${duration}_bucket`, [...labels, ["le", "+Inf"]], total));
    lines.push(sample(`${duration}_sum`, labels, tally.latencySumMs));
    lines.push(sample(`${duration}_count`, labels, total));
  }

  const breaker = "meshwork_circuit_breaker_state";
  lines.push(
    ...header(
      breaker,
      "gauge",
      "A backend's circuit breaker as router isolates last reported it: 1 for its state, 0 for the others.",
    ),
  );
  for (const report of [...breakers.values()].sort((a, b) => compare(a.backend, b.backend))) {
    for (const state of BREAKER_STATES) {
      lines.push(
        sample(
          breaker,
          [
            ["destination_workload", report.backend],
            ["state", state],
          ],
          report.state === state ? 1 : 0,
        ),
      );
    }
  }

  const version = "meshwork_config_version";
  lines.push(
    ...header(
      version,
      "gauge",
      "The config version the policy store holds (none before the first).",
    ),
  );
  if (info.configVersion !== null) lines.push(sample(version, [], info.configVersion));

  return `${lines.join("\n")}\n`;
}
