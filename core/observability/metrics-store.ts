/**
 * What one metrics Durable Object keeps (durable-objects/mesh-metrics.ts wraps it with SQLite):
 * the counts of one destination's edges, from every router isolate that called it, in 10-second
 * slots over the last 15 minutes, plus running totals since the object began (what Prometheus
 * scrapes as counters); the breaker states the isolates last saw of its backends; and its most
 * recent denials. Pure, so its arithmetic is tested with an injected clock.
 */
import {
  edgeKey,
  RETAINED_MS,
  SLOT_MS,
  slotOf,
  Tally,
  type BreakerReport,
  type DenialRecord,
  type DestinationReport,
  type Edge,
  type EdgeCounts,
} from "./metrics.ts";

/** Denials kept per destination (the newest). */
export const MAX_DENIALS = 50;
/** Edges kept per destination; samples of further ones are counted in `dropped`. */
export const MAX_EDGES = 2000;
/** A sample stamped this far ahead of the object's clock is refused as bad (clock skew allowed). */
const MAX_FUTURE_MS = 60_000;

export interface EdgeTallyEntry {
  readonly edge: Edge;
  readonly tally: Tally;
}

export interface StoredBreaker extends BreakerReport {
  /** When an isolate last reported it. */
  readonly reportedAt: number;
}

/** A row that changed (for the Durable Object to write): slot -1 is the running total. */
export interface Touched {
  readonly slot: number;
  readonly key: string;
}

export const TOTAL_SLOT = -1;

/** An edge's counts over a window. */
export interface WindowEdge {
  readonly edge: Edge;
  readonly counts: EdgeCounts;
}

/** What a reader gets back from one object over a window. */
export interface WindowReading {
  readonly destination: string;
  /** The seconds the counts cover (shorter than the window while the object is young). */
  readonly seconds: number;
  readonly edges: WindowEdge[];
  /** Counts per slot of the window, summed over edges: [slot start, requests, failures]. */
  readonly series: [number, number, number][];
  readonly breakers: StoredBreaker[];
  readonly denials: DenialRecord[];
}

/** The running totals, for Prometheus. */
export interface TotalsReading {
  readonly destination: string;
  readonly edges: WindowEdge[];
  readonly breakers: StoredBreaker[];
}

export class MetricsStore {
  readonly destination: string;
  /** Slot start → edge key → counts. */
  private readonly slots = new Map<number, Map<string, EdgeTallyEntry>>();
  private readonly totals = new Map<string, EdgeTallyEntry>();
  private readonly breakers = new Map<string, StoredBreaker>();
  private denials: DenialRecord[] = [];
  /** The earliest slot with counts (what a young object's windows are measured from). */
  since: number | undefined;
  /** Samples refused: too old, too far ahead, or past MAX_EDGES. */
  dropped = 0;

  constructor(destination: string) {
    this.destination = destination;
  }

  /** Adds an isolate's report; the rows it changed. */
  record(report: DestinationReport, now: number): Touched[] {
    this.prune(now);
    const touched: Touched[] = [];
    const oldest = slotOf(now - RETAINED_MS) + SLOT_MS;
    for (const sample of report.edges) {
      if (sample.slot > now + MAX_FUTURE_MS) {
        this.dropped += 1;
        continue;
      }
      const key = edgeKey(sample);
      const total = this.entry(this.totals, key, sample);
      if (!total) {
        this.dropped += 1;
        continue;
      }
      total.tally.addCounts(sample);
      touched.push({ slot: TOTAL_SLOT, key });
      // Too old for any window (a report held up for minutes): the totals have it.
      if (sample.slot < oldest) continue;
      const slot = slotOf(sample.slot);
      let edges = this.slots.get(slot);
      if (!edges) {
        edges = new Map();
        this.slots.set(slot, edges);
      }
      this.entry(edges, key, sample)!.tally.addCounts(sample);
      touched.push({ slot, key });
      this.since = this.since === undefined ? slot : Math.min(this.since, slot);
    }
    for (const breaker of report.breakers) {
      this.breakers.set(breaker.backend, { ...breaker, reportedAt: now });
    }
    if (report.denials.length > 0) {
      this.denials = [...this.denials, ...report.denials]
        .sort((a, b) => a.at - b.at)
        .slice(-MAX_DENIALS);
    }
    return touched;
  }

  private entry(
    map: Map<string, EdgeTallyEntry>,
    key: string,
    edge: Edge,
  ): EdgeTallyEntry | undefined {
    let entry = map.get(key);
    if (!entry) {
      if (map === this.totals && map.size >= MAX_EDGES) return undefined;
      entry = {
        edge: {
          caller: edge.caller,
          destination: edge.destination,
          backend: edge.backend,
          route: edge.route,
        },
        tally: new Tally(),
      };
      map.set(key, entry);
    }
    return entry;
  }

  /** The counts of a row (for the Durable Object to write). */
  row(touched: Touched): EdgeTallyEntry | undefined {
    return touched.slot === TOTAL_SLOT
      ? this.totals.get(touched.key)
      : this.slots.get(touched.slot)?.get(touched.key);
  }

  /** Puts back a row the Durable Object kept (when it starts). */
  restore(slot: number, edge: Edge, counts: EdgeCounts): void {
    const key = edgeKey(edge);
    if (slot === TOTAL_SLOT) {
      this.entry(this.totals, key, edge)?.tally.addCounts(counts);
      return;
    }
    let edges = this.slots.get(slot);
    if (!edges) {
      edges = new Map();
      this.slots.set(slot, edges);
    }
    this.entry(edges, key, edge)!.tally.addCounts(counts);
    this.since = this.since === undefined ? slot : Math.min(this.since, slot);
  }

  restoreBreaker(breaker: StoredBreaker): void {
    this.breakers.set(breaker.backend, breaker);
  }

  restoreDenials(denials: DenialRecord[]): void {
    this.denials = denials.slice(-MAX_DENIALS);
  }

  get recentDenials(): readonly DenialRecord[] {
    return this.denials;
  }

  /** Slots gone past the retention (the Durable Object deletes their rows). */
  prune(now: number): number[] {
    const oldest = slotOf(now - RETAINED_MS) + SLOT_MS;
    const gone: number[] = [];
    for (const slot of this.slots.keys()) if (slot < oldest) gone.push(slot);
    for (const slot of gone) this.slots.delete(slot);
    if (this.since !== undefined && this.since < oldest) {
      this.since = this.slots.size === 0 ? undefined : Math.min(...this.slots.keys());
    }
    return gone;
  }

  /**
   * The counts of the last `windowMs`: the slots that start inside it (the one in progress
   * included), over the seconds from the first of them — or from the object's first counts,
   * when later — to now.
   */
  window(windowMs: number, now: number): WindowReading {
    this.prune(now);
    const first = slotOf(now - windowMs) + SLOT_MS;
    const start = Math.max(first, this.since ?? now);
    const seconds = Math.max(1, (now - start) / 1000);
    const merged = new Map<string, EdgeTallyEntry>();
    const series: [number, number, number][] = [];
    for (let slot = first; slot <= slotOf(now); slot += SLOT_MS) {
      let requests = 0;
      let failures = 0;
      for (const [key, { edge, tally }] of this.slots.get(slot) ?? []) {
        let into = merged.get(key);
        if (!into) {
          into = { edge, tally: new Tally() };
          merged.set(key, into);
        }
        into.tally.addTally(tally);
        requests += tally.requests;
        failures += tally.failures;
      }
      series.push([slot, requests, failures]);
    }
    return {
      destination: this.destination,
      seconds,
      edges: [...merged.values()].map(({ edge, tally }) => ({ edge, counts: tally.toCounts() })),
      series,
      breakers: [...this.breakers.values()],
      denials: [...this.denials],
    };
  }

  totalsReading(): TotalsReading {
    return {
      destination: this.destination,
      edges: [...this.totals.values()].map(({ edge, tally }) => ({
        edge,
        counts: tally.toCounts(),
      })),
      breakers: [...this.breakers.values()],
    };
  }
}
