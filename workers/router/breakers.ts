/**
 * The isolate's circuit breakers, one per backend Service, stepping the pure state machine of
 * core/resilience/breaker.ts. An isolate trips at once on what it sees; the mesh-wide state (from
 * the backends' Durable Objects) is adopted on top of it as it arrives.
 */
import {
  admit,
  adopt,
  CLOSED,
  current,
  record,
  type BreakerPolicy,
  type BreakerState,
  type Outcomes,
} from "../../core/resilience/breaker.ts";
import type { RandomSource } from "../../core/random.ts";

/** What `/.mesh/status` shows of one breaker. */
export interface BreakerView {
  state: BreakerState["kind"];
  /** Until when it stays open (ISO 8601), when open. */
  openUntil: string | null;
  /** Trips in a row. */
  trips: number;
  /** Failures in a row, when closed. */
  consecutiveFailures: number;
}

export class Breakers {
  private readonly states = new Map<string, BreakerState>();

  /** Whether a call to `service` may go now (a half-open breaker counts its probes). */
  admit(service: string, policy: BreakerPolicy, now: number): boolean {
    const result = admit(this.states.get(service) ?? CLOSED, policy, now);
    this.states.set(service, result.state);
    return result.admitted;
  }

  /** Records how a call to `service` ended. */
  record(
    service: string,
    policy: BreakerPolicy,
    outcomes: Outcomes,
    now: number,
    random: RandomSource,
  ): void {
    this.states.set(
      service,
      record(this.states.get(service) ?? CLOSED, policy, outcomes, now, random),
    );
  }

  /** Takes in the mesh-wide state of `service`'s breaker (the more cautious of the two wins). */
  adopt(service: string, global: BreakerState, now: number): void {
    this.states.set(service, adopt(this.states.get(service) ?? CLOSED, global, now));
  }

  /** The breaker of `service` as the clock stands. */
  state(service: string, now: number): BreakerState {
    return current(this.states.get(service) ?? CLOSED, now);
  }

  /** Every breaker that has seen a call, for `/.mesh/status`. */
  view(now: number): Record<string, BreakerView> {
    const out: Record<string, BreakerView> = {};
    for (const name of [...this.states.keys()].sort()) {
      const s = this.state(name, now);
      out[name] = {
        state: s.kind,
        openUntil: s.kind === "open" ? new Date(s.until).toISOString() : null,
        trips: s.trips,
        consecutiveFailures: s.kind === "closed" ? s.consecutive : 0,
      };
    }
    return out;
  }
}
