// What `meshctl stat` and `meshctl top` share: the --window, --from and --to flags, reading
// the policy Worker's `GET /v1/metrics` view (core/observability/view.ts) defensively — a field
// missing or of another type shows as unknown, so an older or newer policy Worker does not break
// the commands — and the way golden metrics print: SUCCESS as a percentage, RPS, latency in ms.
import { parseDuration } from "../core/duration.ts";
import { MAX_WINDOW_MS, SLOT_MS } from "../core/observability/metrics.ts";
import { UsageError } from "./errors.mjs";

/** The options both commands take. */
export const WINDOW_OPTIONS = {
  window: {
    type: "string",
    flags: "--window DURATION",
    help: `how far back to count, ${SLOT_MS / 1000}s to ${MAX_WINDOW_MS / 60_000}m, as 30s, 1m or 2m30s`,
  },
  from: {
    type: "string",
    flags: "--from SERVICE",
    help: "only calls made by this service (the caller)",
  },
  to: {
    type: "string",
    flags: "--to SERVICE",
    help: "only calls to this Service (the destination)",
  },
};

/** A window in words, as the user would type it: 30s, 1m, 2m30s. */
export function windowText(seconds) {
  const minutes = Math.floor(seconds / 60);
  const rest = seconds % 60;
  if (minutes === 0) return `${rest}s`;
  return rest === 0 ? `${minutes}m` : `${minutes}m${rest}s`;
}

/** `--window` in whole seconds (`fallback` when not given), or a UsageError saying what fits. */
export function windowSeconds(values, command, fallback) {
  if (values.window === undefined) return fallback;
  const text = values.window;
  const range = `${windowText(SLOT_MS / 1000)} to ${windowText(MAX_WINDOW_MS / 1000)}`;
  let ms;
  try {
    ms = parseDuration(text);
  } catch {
    throw new UsageError(
      `--window must be a duration from ${range}, such as 30s, 1m or 2m30s, got '${text}'`,
      command,
    );
  }
  if (ms % 1000 !== 0) {
    throw new UsageError(`--window must be whole seconds, got '${text}'`, command);
  }
  if (ms < SLOT_MS || ms > MAX_WINDOW_MS) {
    throw new UsageError(
      `--window must be from ${range} (the metrics keep ${windowText(MAX_WINDOW_MS / 1000)}), got '${text}'`,
      command,
    );
  }
  return ms / 1000;
}

/** A service name given to --from or --to: non-empty, no spaces. */
export function serviceFlag(values, flag, command) {
  const value = values[flag];
  if (value === undefined) return undefined;
  if (!/^[^\s]+$/.test(value)) {
    throw new UsageError(`--${flag} must name a service, got '${value}'`, command);
  }
  return value;
}

const number = (value) => (typeof value === "number" && Number.isFinite(value) ? value : null);
const text = (value) => (typeof value === "string" ? value : "?");

/** One edge or Service of the view with every field present (null where unknown). */
function golden(entry) {
  const latency = entry?.latencyMs ?? {};
  return {
    requests: number(entry?.requests) ?? 0,
    rps: number(entry?.rps) ?? 0,
    successRate: number(entry?.successRate),
    p50: number(latency.p50),
    p95: number(latency.p95),
    p99: number(latency.p99),
  };
}

/** The view's parts meshctl reads, with every field present. */
export function readMetrics(body) {
  const list = (value) => (Array.isArray(value) ? value : []);
  return {
    windowSeconds: number(body?.windowSeconds),
    source: typeof body?.source === "string" ? body.source : undefined,
    generatedAt: typeof body?.generatedAt === "string" ? body.generatedAt : undefined,
    edges: list(body?.edges).map((edge) => ({
      caller: text(edge?.caller),
      destination: text(edge?.destination),
      backend: text(edge?.backend),
      route: text(edge?.route),
      ...golden(edge),
    })),
    services: list(body?.services).map((service) => ({
      name: text(service?.name),
      ...golden(service),
    })),
    problems: list(body?.problems).map(String),
  };
}

/** Edges that pass --from and --to. */
export function filterEdges(edges, { from, to }) {
  return edges.filter(
    (edge) =>
      (from === undefined || edge.caller === from) && (to === undefined || edge.destination === to),
  );
}

/** A success rate as a percentage: `99.52%`, `-` with no calls. */
export function successText(rate) {
  if (rate === null) return "-";
  return `${(rate * 100).toFixed(2)}%`;
}

/** Requests per second: two decimals below 10, one above. */
export function rpsText(rps) {
  return rps.toFixed(rps < 10 ? 2 : 1);
}

/** A latency in ms: bucket bounds below 100 ms keep their decimals (5.01ms), others round. */
export function latencyText(ms, bound = false) {
  if (ms === null) return "-";
  const value = ms < 100 ? String(Math.round(ms * 100) / 100) : String(Math.round(ms));
  return `${bound ? "≤" : ""}${value}ms`;
}

/** "no traffic in the last 1m", naming the filters. */
export function noTraffic(seconds, { from, to }) {
  return `no traffic${from ? ` from ${from}` : ""}${to ? ` to ${to}` : ""} in the last ${windowText(seconds)}`;
}
