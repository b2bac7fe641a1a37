/**
 * Golden metrics per edge, in a form that adds up: an isolate counts its calls per edge (caller →
 * destination → backend, by route) in 10-second slots — requests, failures, counts by status and
 * mesh error code, a latency histogram over the fixed buckets of core/resilience/latency.ts,
 * bytes — and flushes them; a metrics Durable Object adds every isolate's counts into the same
 * slots and keeps running totals. Because every count is a plain sum over fixed buckets, any
 * window read back is exact in its counts, and a percentile read from its histogram is within
 * one bucket of the true value.
 *
 * Everything here is pure (no Workers APIs): the router's accumulator, the object's store and
 * the policy Worker's reading of it all use it, and unit tests drive it with their own clock.
 */
import {
  addSparse,
  bucketOf,
  emptyCounts,
  LATENCY_BOUNDS_MS,
  quantile,
  toSparse,
  type LatencyCounts,
  type SparseCounts,
} from "../resilience/latency.ts";
import { isFailure, statusClass, type CallFacts } from "./data-point.ts";

/** Width of a slot: the finest time resolution of the metrics. */
export const SLOT_MS = 10_000;
/** How much history a metrics object keeps: 15 minutes. */
export const RETAINED_MS = 15 * 60_000;
/** The longest window a reader may ask for. */
export const MAX_WINDOW_MS = RETAINED_MS;

/** The start of the slot `time` falls in. */
export function slotOf(time: number): number {
  return Math.floor(time / SLOT_MS) * SLOT_MS;
}

/** Who called what, where it went, by which rule. */
export interface Edge {
  readonly caller: string;
  readonly destination: string;
  readonly backend: string;
  readonly route: string;
}

/** One key per edge (the fields cannot hold the separator: names are DNS-like). */
export function edgeKey(edge: Edge): string {
  return `${edge.caller}|${edge.destination}|${edge.backend}|${edge.route}`;
}

/** Counts of one edge over some time, as they cross RPC (plain data, sparse histogram). */
export interface EdgeCounts {
  requests: number;
  /** Calls whose caller got a 5xx. */
  failures: number;
  /** Calls by status, and by mesh error code where the mesh answered: `200`, `503 circuit_open`. */
  codes: Record<string, number>;
  /** Latency (arrival to answer's headers) over LATENCY_BOUNDS_MS, `[bucket, count]` pairs. */
  latency: SparseCounts;
  latencySumMs: number;
  /** Tries sent to backends. */
  attempts: number;
  bytes: number;
}

/** An edge's counts in one slot: what an isolate flushes. */
export interface EdgeSample extends Edge, EdgeCounts {
  /** The slot's start (ms since the epoch). */
  slot: number;
}

/** The code a call is counted under: its status, and the mesh's error code when there is one. */
export function codeOf(status: number, meshError: string | undefined): string {
  return meshError === undefined ? String(status) : `${status} ${meshError}`;
}

/** Counts being added to, with a dense histogram (cheap to add one call to). */
export class Tally {
  requests = 0;
  failures = 0;
  codes: Record<string, number> = {};
  latency: LatencyCounts = emptyCounts();
  latencySumMs = 0;
  attempts = 0;
  bytes = 0;

  addCall(status: number, code: string, latencyMs: number, attempts: number, bytes: number): void {
    this.requests += 1;
    if (isFailure(status)) this.failures += 1;
    this.codes[code] = (this.codes[code] ?? 0) + 1;
    this.latency[bucketOf(latencyMs)]! += 1;
    this.latencySumMs += latencyMs;
    this.attempts += attempts;
    this.bytes += bytes;
  }

  addCounts(counts: EdgeCounts): void {
    this.requests += counts.requests;
    this.failures += counts.failures;
    for (const [code, n] of Object.entries(counts.codes)) {
      this.codes[code] = (this.codes[code] ?? 0) + n;
    }
    addSparse(this.latency, counts.latency);
    this.latencySumMs += counts.latencySumMs;
    this.attempts += counts.attempts;
    this.bytes += counts.bytes;
  }

  addTally(other: Tally): void {
    this.requests += other.requests;
    this.failures += other.failures;
    for (const [code, n] of Object.entries(other.codes)) {
      this.codes[code] = (this.codes[code] ?? 0) + n;
    }
    for (let i = 0; i < this.latency.length; i++) this.latency[i]! += other.latency[i]!;
    this.latencySumMs += other.latencySumMs;
    this.attempts += other.attempts;
    this.bytes += other.bytes;
  }

  toCounts(): EdgeCounts {
    return {
      requests: this.requests,
      failures: this.failures,
      codes: { ...this.codes },
      latency: toSparse(this.latency),
      latencySumMs: this.latencySumMs,
      attempts: this.attempts,
      bytes: this.bytes,
    };
  }

  static of(counts: EdgeCounts): Tally {
    const tally = new Tally();
    tally.addCounts(counts);
    return tally;
  }
}

/** An edge and its tally. */
interface EdgeTally {
  readonly edge: Edge;
  readonly tally: Tally;
}

/**
 * An isolate's counts since its last flush, per slot and edge. `add` is on every call's path:
 * one string key, one map lookup, one binary search over the buckets.
 */
export class EdgeAccumulator {
  private slot = -1;
  private current = new Map<string, EdgeTally>();
  /** Earlier slots not flushed yet (a flush at a slot's boundary carries two). */
  private older: EdgeSample[] = [];
  /** Edges this accumulator keeps per slot at most; calls on further ones are counted apart. */
  private readonly maxEdges: number;
  /** Calls not counted because the slot had maxEdges edges already. */
  overflow = 0;

  constructor(maxEdges = 1000) {
    this.maxEdges = maxEdges;
  }

  get isEmpty(): boolean {
    return this.current.size === 0 && this.older.length === 0;
  }

  add(facts: CallFacts, code: string, at: number): void {
    const slot = slotOf(at);
    if (slot !== this.slot) {
      this.older.push(...this.samples());
      this.current = new Map();
      this.slot = slot;
    }
    const key = edgeKey(facts);
    let entry = this.current.get(key);
    if (!entry) {
      if (this.current.size >= this.maxEdges) {
        this.overflow += 1;
        return;
      }
      const edge = {
        caller: facts.caller,
        destination: facts.destination,
        backend: facts.backend,
        route: facts.route,
      };
      entry = { edge, tally: new Tally() };
      this.current.set(key, entry);
    }
    entry.tally.addCall(facts.status, code, facts.latencyMs, facts.attempts, facts.bytes);
  }

  private samples(): EdgeSample[] {
    const out: EdgeSample[] = [];
    for (const { edge, tally } of this.current.values()) {
      out.push({ ...edge, slot: this.slot, ...tally.toCounts() });
    }
    return out;
  }

  /** Everything counted since the last take, as samples; the accumulator starts afresh. */
  take(): EdgeSample[] {
    const out = [...this.older, ...this.samples()];
    this.older = [];
    this.current = new Map();
    return out;
  }
}

/** A backend's circuit breaker as a router isolate last saw it. */
export interface BreakerReport {
  readonly backend: string;
  readonly state: "closed" | "open" | "half-open";
  /** Until when it stays open (ms since the epoch), when open. */
  readonly openUntil: number | null;
}

/** A call the mesh refused for who was calling (unauthenticated or forbidden). */
export interface DenialRecord {
  readonly at: number;
  readonly caller: string;
  readonly destination: string;
  readonly code: string;
  /** Why (the authorization layer's reason; never a token or a secret). */
  readonly reason: string;
  readonly requestId: string;
}

/** What a router isolate flushes for one destination's metrics object. */
export interface DestinationReport {
  readonly destination: string;
  readonly edges: EdgeSample[];
  readonly breakers: BreakerReport[];
  readonly denials: DenialRecord[];
}

/** One isolate's flush: every destination it has news for. */
export interface MetricsReport {
  readonly isolate: string;
  readonly colo: string | null;
  readonly sentAt: number;
  readonly destinations: DestinationReport[];
}

// ---------------------------------------------------------------------------------------------
// Reading

/** The golden metrics of an edge (or a Service) over a window. */
export interface GoldenMetrics {
  requests: number;
  /** Requests per second over the window. */
  rps: number;
  /** Share of calls that were not 5xx; null with no calls. */
  successRate: number | null;
  latencyMs: { p50: number | null; p95: number | null; p99: number | null; mean: number | null };
  /** Calls by status class (`2xx` …). */
  classes: Record<string, number>;
  /** Calls by status and mesh error code (`200`, `503 circuit_open`). */
  codes: Record<string, number>;
  /** Tries per call (1 without retries). */
  attemptsPerCall: number | null;
  bytes: number;
}

export function goldenMetrics(tally: Tally, seconds: number): GoldenMetrics {
  const classes: Record<string, number> = {};
  for (const [code, n] of Object.entries(tally.codes)) {
    const status = Number.parseInt(code, 10);
    const key = Number.isFinite(status) ? statusClass(status) : "other";
    classes[key] = (classes[key] ?? 0) + n;
  }
  const requests = tally.requests;
  const q = (p: number) => quantile(tally.latency, p) ?? null;
  return {
    requests,
    rps: seconds > 0 ? requests / seconds : 0,
    successRate: requests === 0 ? null : (requests - tally.failures) / requests,
    latencyMs: {
      p50: q(0.5),
      p95: q(0.95),
      p99: q(0.99),
      mean: requests === 0 ? null : tally.latencySumMs / requests,
    },
    classes,
    codes: { ...tally.codes },
    attemptsPerCall: requests === 0 ? null : tally.attempts / requests,
    bytes: tally.bytes,
  };
}

/** The latency histogram's bucket bounds (ms), for readers that render it (Prometheus). */
export const HISTOGRAM_BOUNDS_MS = LATENCY_BOUNDS_MS;
