// `meshctl stat`: golden metrics (success rate, requests per second, latency percentiles) over
// the last minute or so, as `linkerd viz stat` shows them — per edge (caller → destination →
// backend), per edge and route, or per Service — from the policy Worker's `GET /v1/metrics`.
import { outputFormat } from "../args.mjs";
import { UsageError } from "../errors.mjs";
import {
  filterEdges,
  latencyText,
  noTraffic,
  readMetrics,
  rpsText,
  serviceFlag,
  successText,
  WINDOW_OPTIONS,
  windowSeconds,
} from "../metrics-report.mjs";
import { table, toJson } from "../output.mjs";

/** What a table's rows are, by --by value; the positional words that mean the same. */
const GROUPINGS = {
  edge: ["edge", "edges"],
  route: ["route", "routes"],
  service: ["service", "services", "svc"],
};

/** The grouping the command line asks for: --by, or a positional word, not both at odds. */
function grouping(values, positionals) {
  let fromWord;
  const [word, name, extra] = positionals;
  if (word !== undefined) {
    fromWord = Object.keys(GROUPINGS).find((by) => GROUPINGS[by].includes(word.toLowerCase()));
    if (!fromWord) {
      throw new UsageError(`unknown argument '${word}': one of edges, routes, services`, "stat");
    }
  }
  const by = values.by;
  if (by !== undefined && !(by in GROUPINGS)) {
    throw new UsageError(`--by must be one of edge, route, service, got '${by}'`, "stat");
  }
  if (by !== undefined && fromWord !== undefined && by !== fromWord) {
    throw new UsageError(`'${word}' and --by ${by} ask for different tables`, "stat");
  }
  const chosen = by ?? fromWord ?? "edge";
  if (name !== undefined && chosen !== "service") {
    throw new UsageError(
      `unexpected argument '${name}': name a destination with --to ${name}`,
      "stat",
    );
  }
  if (extra !== undefined) throw new UsageError(`unexpected argument '${extra}'`, "stat");
  return { by: chosen, name };
}

/**
 * Edges that differ only by route, as one row per edge: counts and success rate add up exactly;
 * a percentile of several routes together is at most the largest of theirs, so that is shown,
 * marked as a bound (`≤`).
 */
function byEdge(edges) {
  const rows = new Map();
  for (const edge of edges) {
    const key = `${edge.caller}|${edge.destination}|${edge.backend}`;
    const row = rows.get(key);
    const failures = edge.successRate === null ? 0 : edge.requests * (1 - edge.successRate);
    if (!row) {
      rows.set(key, { ...edge, failures, routes: 1 });
      continue;
    }
    row.requests += edge.requests;
    row.rps += edge.rps;
    row.failures += failures;
    row.routes += 1;
    for (const q of ["p50", "p95", "p99"]) {
      if (edge[q] !== null) row[q] = row[q] === null ? edge[q] : Math.max(row[q], edge[q]);
    }
  }
  return [...rows.values()].map((row) => ({
    ...row,
    successRate: row.requests === 0 ? null : 1 - row.failures / row.requests,
  }));
}

const latencyCells = (row, bound = false) => [
  latencyText(row.p50, bound),
  latencyText(row.p95, bound),
  latencyText(row.p99, bound),
];

export const stat = {
  name: "stat",
  summary: "show success rate, requests per second and latency per edge or Service",
  usage:
    "meshctl stat [edges|routes|services [NAME]] [--by edge|route|service] [--window 1m] [--from SERVICE] [--to SERVICE] [-o table|wide|json]",
  description: `
Golden metrics over the last --window (default 1m), as the mesh's metrics objects count them:
SUCCESS (calls whose caller got no 5xx), RPS, and LATENCY_P50/P95/P99 (ms from a call's arrival
to its answer's headers; within one histogram bucket, about 26%, of the exact value).

By default one row per edge — SOURCE (the caller), DESTINATION (the Service called) and BACKEND
(the Service the call went to). \`routes\` (or --by route, or -o wide) adds ROUTE, the rule that
matched, one row per edge and route. \`services\` (or --by service) shows each Service's inbound
traffic, all callers and routes together; \`services NAME\` only that one.

A row that adds several routes up marks its latency with ≤: a percentile of calls on several
routes is at most the largest of theirs (\`routes\` shows each exactly).`,
  options: {
    ...WINDOW_OPTIONS,
    by: {
      type: "string",
      flags: "--by edge|route|service",
      help: "one row per edge (default), per edge and route, or per Service",
    },
  },
  examples: [
    "meshctl stat",
    "meshctl stat --to payments --window 5m",
    "meshctl stat routes --from frontend",
    "meshctl stat services",
    "meshctl stat services payments -o json",
  ],
  async run({ values, positionals, io, client }) {
    const output = outputFormat(values, ["table", "wide", "json"], "stat");
    const { by: asked, name } = grouping(values, positionals);
    const by = output === "wide" && asked === "edge" ? "route" : asked;
    const seconds = windowSeconds(values, "stat", 60);
    const from = serviceFlag(values, "from", "stat");
    const to = serviceFlag(values, "to", "stat");
    if (by === "service" && from !== undefined) {
      throw new UsageError(
        `--from filters edges, and a Service's numbers are all its callers together: \`meshctl stat --from ${from}\` shows the edges`,
        "stat",
      );
    }
    const service = name ?? to;
    if (name !== undefined && to !== undefined && name !== to) {
      throw new UsageError(`'${name}' and --to ${to} name different Services`, "stat");
    }

    const body = await client().metrics({ window: seconds });
    const view = readMetrics(body);
    // -o json: the API's own entries (every field it sends), filtered as the table would be.
    const raw = (list, keep) => (Array.isArray(list) ? list.filter(keep) : []);
    for (const problem of view.problems) io.warn(`⚠ ${problem}`);
    const window = view.windowSeconds ?? seconds;

    if (by === "service") {
      const services = view.services.filter((s) => service === undefined || s.name === service);
      if (output === "json") {
        io.print(
          toJson({
            windowSeconds: window,
            source: view.source,
            services: raw(body.services, (s) => service === undefined || s?.name === service),
            problems: view.problems,
          }).trimEnd(),
        );
        return 0;
      }
      if (services.every((s) => s.requests === 0)) {
        io.warn(noTraffic(window, { to: service }));
        return 0;
      }
      io.print(
        table(
          ["SERVICE", "SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P95", "LATENCY_P99"],
          services.map((s) => [
            s.name,
            successText(s.successRate),
            rpsText(s.rps),
            ...latencyCells(s),
          ]),
        ),
      );
      return 0;
    }

    const edges = filterEdges(view.edges, { from, to });
    if (output === "json") {
      io.print(
        toJson({
          windowSeconds: window,
          source: view.source,
          edges: raw(
            body.edges,
            (e) =>
              (from === undefined || e?.caller === from) &&
              (to === undefined || e?.destination === to),
          ),
          problems: view.problems,
        }).trimEnd(),
      );
      return 0;
    }
    if (edges.every((e) => e.requests === 0)) {
      io.warn(noTraffic(window, { from, to }));
      return 0;
    }
    const rows = by === "route" ? edges : byEdge(edges);
    rows.sort((a, b) => b.rps - a.rps);
    io.print(
      table(
        [
          "SOURCE",
          "DESTINATION",
          "BACKEND",
          ...(by === "route" ? ["ROUTE"] : []),
          "SUCCESS",
          "RPS",
          "LATENCY_P50",
          "LATENCY_P95",
          "LATENCY_P99",
        ],
        rows.map((row) => [
          row.caller,
          row.destination,
          row.backend,
          ...(by === "route" ? [row.route] : []),
          successText(row.successRate),
          rpsText(row.rps),
          ...latencyCells(row, (row.routes ?? 1) > 1),
        ]),
      ),
    );
    return 0;
  },
};
