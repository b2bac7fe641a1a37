/**
 * BackendState: one Durable Object per backend Service, holding what every router isolate has
 * learned about that backend — today its circuit breaker. It is a thin shell around the pure
 * state machine in core/resilience/breaker.ts: it loads the state, steps it with the batch of
 * outcomes an isolate reports, stores it (SQLite-backed storage, synchronous), and answers the
 * mesh-wide state, which the isolate adopts. No timers decide anything: "open until T" is a
 * timestamp, and the clock makes it half-open. An alarm only forgets a backend nobody has
 * reported on for a day.
 *
 * Isolates call it through `waitUntil`, batched, at most about once a second each and only with
 * news (workers/router/backend-sync.ts): a request never waits for it.
 */
import { DurableObject } from "cloudflare:workers";
import {
  CLOSED,
  current,
  record,
  type BreakerPolicy,
  type BreakerState,
  type Outcomes,
} from "../core/resilience/breaker.ts";

/** What an isolate reports about one backend since its last report. */
export interface BackendReport {
  /** The breaker policy the isolate applies, and the outcomes it saw. */
  readonly breaker?: { readonly policy: BreakerPolicy; readonly outcomes: Outcomes };
}

/** The mesh-wide state of one backend, as the object answers it. */
export interface BackendView {
  readonly breaker: BreakerState | undefined;
  /** The object's clock when it answered (ms). */
  readonly at: number;
}

const BREAKER_KEY = "breaker";
/** A backend with no report for this long is forgotten. */
const FORGET_AFTER_MS = 24 * 60 * 60 * 1000;

export class BackendState extends DurableObject {
  /** Steps the mesh-wide state with one isolate's report and answers it. */
  report(report: BackendReport): BackendView {
    const now = Date.now();
    const storage = this.ctx.storage;
    let breaker = storage.kv.get<BreakerState>(BREAKER_KEY);
    if (report.breaker) {
      const { policy, outcomes } = report.breaker;
      breaker = record(breaker ?? CLOSED, policy, outcomes, now, Math.random);
      storage.kv.put(BREAKER_KEY, breaker);
    }
    // Forget a backend a day after its last report (the alarm moves with every report).
    void storage.setAlarm(now + FORGET_AFTER_MS);
    return { breaker: breaker === undefined ? undefined : current(breaker, now), at: now };
  }

  /** The mesh-wide state, without reporting anything (for status pages and tests). */
  view(): BackendView {
    const now = Date.now();
    const breaker = this.ctx.storage.kv.get<BreakerState>(BREAKER_KEY);
    return { breaker: breaker === undefined ? undefined : current(breaker, now), at: now };
  }

  override async alarm(): Promise<void> {
    await this.ctx.storage.deleteAll();
  }
}
