/**
 * What the mesh tells operators about each call, from the call's one outcome (outcome.ts runs
 * this when the answer's headers are known), without delaying the answer:
 *  - one Analytics Engine data point (`writeDataPoint` only queues it; core/observability/
 *    data-point.ts has the columns);
 *  - one JSON access-log line, for a sampled share of calls (ACCESS_LOG_SAMPLE) and — unless the
 *    share is 0, which turns the log off — for every call that ended in a 5xx: what Workers
 *    Logs, Tail Workers and Logpush collect;
 *  - the call's counts in the isolate's per-edge tallies (core/observability/metrics.ts), which
 *    `MetricsSync` flushes to the policy Worker through `waitUntil`, at most once a second and
 *    only with news; the policy Worker adds them into the destination's metrics object.
 * Refused calls (unauthenticated, forbidden) are also kept, a few per destination per flush,
 * for the dashboard's recent denials.
 */
import {
  BACKEND_ANSWERED,
  dataPoint,
  NONE,
  UNKNOWN_CALLER,
  type AnalyticsDataset,
  type CallFacts,
} from "../../core/observability/data-point.ts";
import {
  codeOf,
  EdgeAccumulator,
  type BreakerReport,
  type DenialRecord,
  type DestinationReport,
  type MetricsReport,
} from "../../core/observability/metrics.ts";
import type { MeshCall } from "./call.ts";
import type { IsolateLocation } from "./location.ts";
import type { ServiceStates } from "./service-state.ts";

/** The policy Worker's entrypoint method that takes an isolate's metrics. */
export interface MetricsReceiver {
  metrics(report: MetricsReport): Promise<unknown>;
}

/** At most one flush per isolate per this interval. */
export const METRICS_FLUSH_INTERVAL_MS = 1000;
/** Flushes one `waitUntil` makes at most, before the next call schedules anew. */
const MAX_ROUNDS = 5;
/** A flush not answered within this is given up (its counts are dropped). */
const FLUSH_TIMEOUT_MS = 5000;
/** Denials kept per destination between flushes (the latest). */
const MAX_DENIALS_PER_FLUSH = 10;
/** A round scheduled this long ago that never finished is presumed lost. */
const SCHEDULE_EXPIRY_MS = 30_000;

/** The access log's knobs and the metrics switch (settings.ts reads them). */
export interface TelemetrySettings {
  /** Share of calls (0–1) that get an access-log line; calls ending in a 5xx always do. */
  readonly accessLogSample: number;
  /** Whether the isolate counts calls per edge and flushes them to the policy Worker. */
  readonly metrics: boolean;
}

/** What `/.mesh/status` shows of the telemetry. */
export interface TelemetryView {
  /** Whether data points are being written (a MESH_ANALYTICS binding). */
  analytics: boolean;
  /** Data points the binding refused (thrown). */
  analyticsErrors: number;
  accessLogSample: number;
  metrics: {
    enabled: boolean;
    flushes: number;
    failedFlushes: number;
    lastFlushAt: string | null;
    lastError: string | null;
    /** Calls not counted because an isolate's slot held too many edges. */
    overflow: number;
  };
}

/** The clock and the timer the flushes run on (tests give a virtual one). */
export interface TelemetryClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const REAL_CLOCK: TelemetryClock = {
  now: Date.now,
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

export class Telemetry {
  readonly isolate = crypto.randomUUID();
  private readonly settings: TelemetrySettings;
  private readonly location: IsolateLocation;
  private readonly clock: TelemetryClock;
  private readonly edges = new EdgeAccumulator();
  private denials = new Map<string, DenialRecord[]>();
  private scheduledAt: number | undefined;
  private lastFlush = -Infinity;
  private flushes = 0;
  private failedFlushes = 0;
  private lastFlushAt = 0;
  private lastError: string | undefined;
  private analytics = false;
  private analyticsErrors = 0;

  constructor(
    settings: TelemetrySettings,
    location: IsolateLocation,
    clock: TelemetryClock = REAL_CLOCK,
  ) {
    this.settings = settings;
    this.location = location;
    this.clock = clock;
  }

  /**
   * Records one finished call: the data point, maybe a log line, the edge's counts; schedules a
   * flush when a receiver is bound. Nothing here waits.
   */
  observe(
    call: MeshCall,
    response: Response,
    now: number,
    dataset: AnalyticsDataset | undefined,
    receiver: MetricsReceiver | undefined,
    states: ServiceStates,
  ): void {
    const meshError = response.headers.get("x-mesh-error") ?? undefined;
    const facts = factsOf(call, response, meshError, now, this.location.colo);
    if (dataset) {
      this.analytics = true;
      try {
        dataset.writeDataPoint(dataPoint(facts));
      } catch (error) {
        // Analytics is never worth a call: the point is lost, the answer goes out.
        this.analyticsErrors += 1;
        this.lastError = `writing the Analytics Engine data point failed: ${String(error)}`;
      }
    }
    // Sampled with the runtime's own random numbers: the call's source decides its routing
    // (tests seed it), and a log line must not change which backend a call goes to. A share
    // of 0 turns the log off; otherwise every call that ended in a 5xx is logged as well.
    const sample = this.settings.accessLogSample;
    if (sample > 0 && (facts.status >= 500 || Math.random() < sample)) {
      console.log(JSON.stringify(accessLogLine(call, facts, now)));
    }
    if (!this.settings.metrics || !receiver) return;
    this.edges.add(facts, codeOf(facts.status, meshError), call.startedAt);
    if (meshError === "unauthenticated" || meshError === "forbidden") {
      this.noteDenial({
        at: call.startedAt,
        caller: facts.caller,
        destination: facts.destination,
        code: meshError,
        reason: call.refusal ?? meshError,
        requestId: call.requestId,
      });
    }
    this.schedule(receiver, states, (p) => call.ctx.waitUntil(p));
  }

  private noteDenial(denial: DenialRecord): void {
    let list = this.denials.get(denial.destination);
    if (!list) {
      list = [];
      this.denials.set(denial.destination, list);
    }
    list.push(denial);
    if (list.length > MAX_DENIALS_PER_FLUSH) list.shift();
  }

  /** Makes sure a flush goes out within the interval; cheap when one is scheduled. */
  private schedule(
    receiver: MetricsReceiver,
    states: ServiceStates,
    waitUntil: (promise: Promise<unknown>) => void,
  ): void {
    const at = this.clock.now();
    if (this.scheduledAt !== undefined && at - this.scheduledAt < SCHEDULE_EXPIRY_MS) return;
    this.scheduledAt = at;
    waitUntil(
      this.drain(receiver, states).finally(() => {
        if (this.scheduledAt === at) this.scheduledAt = undefined;
      }),
    );
  }

  /** Flushes, a second apart, while news keeps coming — a few rounds in one `waitUntil`. */
  private async drain(receiver: MetricsReceiver, states: ServiceStates): Promise<void> {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const delay = this.lastFlush + METRICS_FLUSH_INTERVAL_MS - this.clock.now();
      if (delay > 0) await this.clock.sleep(delay);
      if (this.edges.isEmpty && this.denials.size === 0) return;
      await this.flush(receiver, states);
    }
  }

  private async flush(receiver: MetricsReceiver, states: ServiceStates): Promise<void> {
    const now = this.clock.now();
    this.lastFlush = now;
    const report = this.takeReport(states, now);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        receiver.metrics(report),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${FLUSH_TIMEOUT_MS} ms`)),
            FLUSH_TIMEOUT_MS,
          );
        }),
      ]);
      this.flushes += 1;
      this.lastError = undefined;
    } catch (error) {
      // Dropped, not kept for later: late counts would land in the wrong slots' windows.
      this.failedFlushes += 1;
      this.lastError = `flushing metrics to the policy Worker failed: ${String(error)}`;
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      this.lastFlushAt = this.clock.now();
    }
  }

  /** Everything counted since the last flush, grouped by destination, with its breakers. */
  takeReport(states: ServiceStates, now: number): MetricsReport {
    const byDestination = new Map<string, DestinationReport>();
    const reportFor = (destination: string) => {
      let report = byDestination.get(destination);
      if (!report) {
        report = { destination, edges: [], breakers: [], denials: [] };
        byDestination.set(destination, report);
      }
      return report;
    };
    const backends = new Map<string, Set<string>>();
    for (const sample of this.edges.take()) {
      reportFor(sample.destination).edges.push(sample);
      if (sample.backend === NONE) continue;
      let set = backends.get(sample.destination);
      if (!set) {
        set = new Set();
        backends.set(sample.destination, set);
      }
      set.add(sample.backend);
    }
    for (const [destination, names] of backends) {
      const report = reportFor(destination);
      for (const backend of names) {
        const breaker = breakerOf(states, backend, now);
        if (breaker) report.breakers.push(breaker);
      }
    }
    for (const [destination, denials] of this.denials)
      reportFor(destination).denials.push(...denials);
    this.denials = new Map();
    return {
      isolate: this.isolate,
      colo: this.location.colo,
      sentAt: now,
      destinations: [...byDestination.values()],
    };
  }

  view(receiverBound: boolean): TelemetryView {
    return {
      analytics: this.analytics,
      analyticsErrors: this.analyticsErrors,
      accessLogSample: this.settings.accessLogSample,
      metrics: {
        enabled: this.settings.metrics && receiverBound,
        flushes: this.flushes,
        failedFlushes: this.failedFlushes,
        lastFlushAt: this.lastFlushAt ? new Date(this.lastFlushAt).toISOString() : null,
        lastError: this.lastError ?? null,
        overflow: this.edges.overflow,
      },
    };
  }
}

/** A backend's breaker as this isolate sees it, when a breaker policy governs it. */
function breakerOf(states: ServiceStates, backend: string, now: number): BreakerReport | undefined {
  const view = states.peek(backend)?.view(now).breaker;
  if (!view) return undefined;
  return {
    backend,
    state: view.state,
    openUntil: view.openUntil === null ? null : Date.parse(view.openUntil),
  };
}

/** The fields of a finished call, as every sink reads them. */
export function factsOf(
  call: MeshCall,
  response: Response,
  meshError: string | undefined,
  now: number,
  colo: string | null,
): CallFacts {
  let attempts = 0;
  let upstreamLatencyMs = 0;
  for (const attempt of call.attempts) {
    if (attempt.endpoint === undefined) continue;
    attempts += 1;
    if (attempt.status !== undefined) upstreamLatencyMs = attempt.latencyMs ?? 0;
  }
  const length = response.headers.get("content-length");
  return {
    caller: call.caller ?? UNKNOWN_CALLER,
    destination: call.destination || NONE,
    backend: call.backend?.name ?? NONE,
    route: call.rule?.id ?? NONE,
    method: call.request.method,
    outcome: meshError ?? BACKEND_ANSWERED,
    status: response.status,
    colo: colo ?? NONE,
    traceId: call.trace?.traceId ?? "",
    latencyMs: Math.max(0, now - call.startedAt),
    upstreamLatencyMs,
    attempts,
    bytes: length === null ? 0 : Number(length) || 0,
  };
}

/**
 * The access-log line of a call: who, what, where it went, how it ended, how long it took, and
 * the ids that find its trace. The path goes without its query (which may carry secrets), and
 * no header or token is ever logged.
 */
function accessLogLine(call: MeshCall, facts: CallFacts, now: number) {
  return {
    level: facts.status >= 500 ? "warn" : "info",
    event: "access",
    time: new Date(now).toISOString(),
    request_id: call.requestId,
    trace_id: facts.traceId,
    span_id: call.trace?.spanId ?? "",
    entry: call.entry,
    caller: facts.caller,
    principal: call.principal ?? null,
    destination: facts.destination,
    backend: facts.backend,
    route: facts.route,
    method: facts.method,
    // The path the caller asked for (a rewrite changes what the backend receives).
    path: pathOf(call.request.url),
    status: facts.status,
    outcome: facts.outcome,
    latency_ms: facts.latencyMs,
    upstream_latency_ms: facts.upstreamLatencyMs,
    attempts: facts.attempts,
    bytes: facts.bytes,
    colo: facts.colo,
    ...(call.refusal !== undefined ? { refusal: call.refusal } : {}),
  };
}

function pathOf(url: string): string {
  try {
    return new URL(url).pathname;
  } catch {
    return "";
  }
}
