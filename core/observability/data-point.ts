/**
 * The Analytics Engine data point of one mesh call, and the names of its columns: the one schema
 * the router writes, the SQL (sql.ts) reads, the docs show and the dashboards query. A data
 * point is built from the call's single outcome record (workers/router/outcome.ts), so analytics,
 * the access log and the metrics objects count the same calls the same way.
 *
 * Analytics Engine columns are positional (`index1`, `blob1`…`blob20`, `double1`…`double20`);
 * these lists give each position its meaning. New columns go at the end, never in between: a
 * dataset keeps its old rows, and a moved column would change what they mean.
 */

/** `blob1`…`blob9`, in order. */
export const BLOB_COLUMNS = [
  /** The calling service (`unknown` for an unauthenticated call). */
  "caller",
  /** The Service called (also the index). */
  "destination",
  /** The backend Service the call went to (`-` when it got no further than the mesh). */
  "backend",
  /** The rule that matched, `route/rule` (`-` when none did). */
  "route",
  /** The request method. */
  "method",
  /** `backend` when the backend answered, else the mesh's error code (`circuit_open` …). */
  "outcome",
  /** `2xx`, `4xx`, `5xx` … of the status the caller got. */
  "status_class",
  /** The Cloudflare location that served the call (`-` locally). */
  "colo",
  /** The W3C trace id (32 hex digits), to find the call's trace and log line. */
  "trace_id",
] as const;

/** `double1`…`double5`, in order. */
export const DOUBLE_COLUMNS = [
  /** Milliseconds from the call's arrival to its answer's headers. */
  "latency_ms",
  /** Milliseconds the backend took on the try whose answer the caller got (0: none sent). */
  "upstream_latency_ms",
  /** Tries sent to backends (0 when the mesh answered before sending any). */
  "attempts",
  /** The status the caller got. */
  "status",
  /** The answer's declared Content-Length (0 when it declared none, or streamed). */
  "bytes",
] as const;

/** The value of `outcome` when the backend's answer went back to the caller. */
export const BACKEND_ANSWERED = "backend";
/** The text for a field that has no value (a call that never reached a backend, say). */
export const NONE = "-";
/** The caller of a call that carried no identity the mesh accepted. */
export const UNKNOWN_CALLER = "unknown";

/** What `writeDataPoint` takes. */
export interface AnalyticsDataPoint {
  indexes: [string];
  blobs: string[];
  doubles: number[];
}

/** The Analytics Engine binding, as the router uses it. */
export interface AnalyticsDataset {
  writeDataPoint(point: AnalyticsDataPoint): void;
}

/** `2xx`, `5xx` …; `0xx` never happens (every answer has a status). */
export function statusClass(status: number): string {
  return `${Math.floor(status / 100)}xx`;
}

/** A call is a failure when its caller got a 5xx (Linkerd's and Istio's default); else a success. */
export function isFailure(status: number): boolean {
  return status >= 500;
}

/** The fields of one call, as every sink of it (analytics, access log, metrics) reads them. */
export interface CallFacts {
  readonly caller: string;
  readonly destination: string;
  readonly backend: string;
  readonly route: string;
  readonly method: string;
  readonly outcome: string;
  readonly status: number;
  readonly colo: string;
  readonly traceId: string;
  readonly latencyMs: number;
  readonly upstreamLatencyMs: number;
  readonly attempts: number;
  readonly bytes: number;
}

/** The data point of a call (its destination is the index, so sampling keeps edges fair). */
export function dataPoint(facts: CallFacts): AnalyticsDataPoint {
  return {
    indexes: [facts.destination],
    blobs: [
      facts.caller,
      facts.destination,
      facts.backend,
      facts.route,
      facts.method,
      facts.outcome,
      statusClass(facts.status),
      facts.colo,
      facts.traceId,
    ],
    doubles: [facts.latencyMs, facts.upstreamLatencyMs, facts.attempts, facts.status, facts.bytes],
  };
}
