/**
 * The last stage of every call: once the answer's status is known — the backend's response, or
 * the mesh's own error — it reads what the layers noted on the call and its attempts and records
 * one outcome: the tries (endpoint, status or error, latency, backoff), budget refusals, breaker
 * transitions, ejections, failover, rate limiting, injected faults. It is the one place that
 * feeds the isolate's state with how tries ended — each try's result steps its backend's breaker,
 * each learned timeout's latency feeds the estimate — and the one place that schedules the
 * reports to the Durable Objects. Telemetry reads the same record (telemetry.ts): the call's
 * Analytics Engine data point, its access-log line, its per-edge counts.
 *
 * It runs when the response headers are in, not when the body has streamed: watching the body
 * means piping it through a stream of the router's own, which decodes a compressed body (and the
 * runtime would compress it again) — a cost on every call that no mesh feature here needs. A
 * body that breaks after its headers is the caller's to see; the breakers judge the status.
 */
import { FAILURE, PLAIN_SUCCESS, PROBE_SUCCESS } from "../../core/resilience/breaker.ts";
import type { AttemptRecord, MeshCall } from "./call.ts";
import type { BreakerTransition } from "./service-state.ts";
import type { AnalyticsDataset } from "../../core/observability/data-point.ts";
import type { MetricsReceiver } from "./telemetry.ts";

/** The router's Analytics Engine dataset, when it is bound. */
export function analyticsOf(env: Env): AnalyticsDataset | undefined {
  const dataset = (env as unknown as { MESH_ANALYTICS?: Partial<AnalyticsDataset> }).MESH_ANALYTICS;
  return typeof dataset?.writeDataPoint === "function" ? (dataset as AnalyticsDataset) : undefined;
}

/** The policy Worker's RouterReports entrypoint, which takes the metrics flushes, when bound. */
export function receiverOf(env: Env): MetricsReceiver | undefined {
  const binding = (env as unknown as { POLICY?: Partial<MetricsReceiver> }).POLICY;
  return typeof binding?.metrics === "function" ? (binding as MetricsReceiver) : undefined;
}

/** How one call through the mesh ended. */
export interface CallOutcome {
  readonly requestId: string;
  /** The calling service, once authenticated. */
  readonly caller: string | undefined;
  /** Its SPIFFE ID; undefined for an unauthenticated call (a PERMISSIVE destination's). */
  readonly principal: string | undefined;
  /** How it was authenticated: its binding's props, a JWT-SVID, or not at all. */
  readonly authenticatedBy: MeshCall["authenticatedBy"];
  /** The authorization decision, when one was made. */
  readonly authorization: MeshCall["authorization"];
  /** Why the call was refused `unauthenticated` or `forbidden`, when it was. */
  readonly refusal: string | undefined;
  readonly destination: string;
  /** The rule that matched (`route/rule`), when one did. */
  readonly route: string | undefined;
  /** The backend Service the call went to, when it got that far. */
  readonly backend: string | undefined;
  /** The backend it failed over from, when its breaker was open. */
  readonly failedOverFrom: string | undefined;
  /** The status the caller got. */
  readonly status: number;
  /** The mesh's error code, when the mesh answered instead of the backend. */
  readonly error: string | undefined;
  /** Every try, in order. */
  readonly attempts: readonly AttemptRecord[];
  /** Milliseconds spent waiting between tries. */
  readonly backoffMs: number;
  /** Why retrying stopped early (`budget`, `deadline`, `retry-after`), when it did. */
  readonly retryStopped: MeshCall["retryStopped"];
  /** Backends left out of the split because their breakers were open. */
  readonly ejected: readonly string[];
  /** The rate limit that refused the call, when one did. */
  readonly limitedBy: string | undefined;
  readonly faults: MeshCall["faults"];
  /** Breakers this call's tries moved to another state. */
  readonly transitions: readonly BreakerTransition[];
  readonly startedAt: number;
  /** Milliseconds from the call's arrival to its answer's headers. */
  readonly durationMs: number;
}

/**
 * A try cut by the call's deadline after less than this says nothing about the backend (the
 * call's time went elsewhere: a fault's delay, earlier tries); a longer one counts as a failure.
 */
export const MIN_EVIDENCE_MS = 100;

/**
 * What a try says about its backend: a failure (a 5xx, no connection, an exception, a timeout),
 * a success (any other status), or nothing — it was refused by the breaker, never sent, failed
 * inside the mesh, or had too little time to tell.
 */
function verdict(attempt: AttemptRecord): "failure" | "success" | undefined {
  if (attempt.endpoint === undefined) return undefined;
  if (attempt.status !== undefined) return attempt.status >= 500 ? "failure" : "success";
  if (attempt.error === "upstream_error") return "failure";
  if (attempt.error !== "upstream_timeout") return undefined;
  if (attempt.deadlineLimited && (attempt.timeoutMs ?? 0) < MIN_EVIDENCE_MS) return undefined;
  return "failure";
}

/** Feeds the tries' results to the isolate's state; the breakers' transitions. */
function feed(call: MeshCall, now: number): BreakerTransition[] {
  const transitions: BreakerTransition[] = [];
  const service = call.backend?.service;
  const state = call.backendState;
  if (!service || !state || call.attempts.length === 0) return transitions;
  const breaker = service.policy.breaker;
  for (const attempt of call.attempts) {
    const result = verdict(attempt);
    if (result === undefined) continue;
    if (breaker) {
      const change = state.recordOutcome(
        breaker,
        result === "failure" ? FAILURE : attempt.probe ? PROBE_SUCCESS : PLAIN_SUCCESS,
        now,
        call.random,
      );
      if (change) transitions.push(change);
    }
    // Learn from answers, and from tries cut at their own timeout — not from those the call's
    // deadline cut, whose time says nothing of the backend's.
    const cutByCall = attempt.status === undefined && attempt.deadlineLimited;
    if (attempt.learnsLatency && !cutByCall && attempt.latencyMs !== undefined) {
      state.observeLatency(attempt.latencyMs, now);
    }
  }
  return transitions;
}

/**
 * Records how the call ended (the answer is `response`, status and headers known), feeds the
 * isolate's state, schedules the reports, and hands the outcome to `sink` when there is one.
 */
export function recordOutcome(
  call: MeshCall,
  response: Response,
  sink?: (outcome: CallOutcome) => void,
): void {
  const now = call.now();
  call.transitions.push(...feed(call, now));
  // News for the Durable Objects: tries, budget counts, rate-limit demand, a probe asked for.
  if (call.services.hasNews) {
    call.sync.schedule(call.env.BACKEND_STATE, call.services, call.now, (p) =>
      call.ctx.waitUntil(p),
    );
  }
  call.telemetry.observe(
    call,
    response,
    now,
    analyticsOf(call.env),
    receiverOf(call.env),
    call.services,
  );
  if (!sink) return;
  sink({
    requestId: call.requestId,
    caller: call.caller,
    principal: call.principal,
    authenticatedBy: call.authenticatedBy,
    authorization: call.authorization,
    refusal: call.refusal,
    destination: call.destination,
    route: call.rule?.id,
    backend: call.backend?.name,
    failedOverFrom: call.failedOverFrom,
    status: response.status,
    error: response.headers.get("x-mesh-error") ?? undefined,
    attempts: call.attempts,
    backoffMs: call.attempts.reduce((sum, a) => sum + a.waitedMs, 0),
    retryStopped: call.retryStopped,
    ejected: call.ejected,
    limitedBy: call.limitedBy,
    faults: call.faults,
    transitions: call.transitions,
    startedAt: call.startedAt,
    durationMs: now - call.startedAt,
  });
}
