/**
 * What a router isolate tells a Service's Durable Object (BackendState) about that Service, and
 * what the object answers: plain data, the same on both sides of the call. Every field is
 * optional — an isolate sends only what it has news of — and counts are what happened since the
 * isolate's last report.
 */
import type { BreakerPolicy, BreakerState, Outcomes } from "./breaker.ts";
import type { SparseCounts } from "./latency.ts";

export interface BackendReport {
  /**
   * The breaker policy the isolate applies, the tries' outcomes it saw, and whether it asks for
   * a probe (its breaker waits for the mesh's grant and a call was refused meanwhile).
   */
  readonly breaker?: {
    readonly policy: BreakerPolicy;
    readonly outcomes: Outcomes;
    readonly wantsProbe?: boolean;
  };
  /** Original requests and retries sent to the Service, and the budget's window. */
  readonly budget?: {
    readonly windowMs: number;
    readonly requests: number;
    readonly retries: number;
  };
  /** Tries' latency (time to the response's headers), as histogram counts. */
  readonly latency?: SparseCounts;
  /** Calls that asked to pass each rate limit of the Service, by limit key. */
  readonly limits?: Readonly<Record<string, number>>;
  /**
   * Set when the report goes to a location shard of the Service (`<service>@<location>`): the
   * name of the Service's root object the shard rolls its news up to (core/resilience/rollup.ts).
   */
  readonly rollUpTo?: string;
}

/** The mesh-wide state of one Service, as its object answers it. */
export interface BackendView {
  readonly breaker: BreakerState | undefined;
  /** Half-open probes granted to the isolate that asked (absent: none). */
  readonly probes?: number;
  /** Original requests and retries over the budget's window, every isolate's together. */
  readonly budget?: { readonly requests: number; readonly retries: number };
  /** Latency counts over the last one to two minutes, every isolate's together. */
  readonly latency?: SparseCounts;
  /** Demand on each rate limit over the last few seconds, every isolate's together. */
  readonly limits?: Readonly<Record<string, number>>;
  /** The object's clock when it answered (ms). */
  readonly at: number;
}
