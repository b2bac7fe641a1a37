/**
 * The circuit breaker as data: a state (closed | open | half-open) and pure functions that step
 * it, with the clock and randomness passed in. The same machine runs in two places: in each
 * isolate, fed one outcome at a time (it trips at once), and in the backend's Durable Object, fed
 * the isolates' batched reports (it sees what every isolate saw). Both persist nothing but this
 * state, with timestamps — no timers: "open until T" becomes half-open when the clock passes T.
 *
 * Tripping, as Envoy's outlier detection and Resilience4j's breaker do: `consecutiveFailures` in
 * a row, or a failure rate at or above `failureRate` over the sliding window once it holds
 * `minimumRequests`. Each consecutive trip stays open longer (base × 2^(trips−1), up to the cap)
 * with random jitter on top, so breakers that tripped together do not probe together. Half-open
 * admits `halfOpenProbes` calls; that many successes close it, any failure opens it again.
 *
 * Probes are counted mesh-wide, not per isolate: an isolate whose breaker is open because the
 * mesh said so (`awaitsGrant`) does not half-open on its own clock — a thousand isolates would
 * send a thousand probes to a backend that may still be down. It asks the Durable Object, which
 * grants the Service's `halfOpenProbes` to the first isolates that ask (`adopt` with a grant).
 * An isolate asks as soon as it adopts the mesh's open state, so the grant is usually made while
 * the breaker is still open — a reservation (`reserved` on the object's state, `granted` on the
 * isolate's) for when it half-opens — and recovery is not a report round slower than a breaker
 * of its own. If no grant and no word from the object comes for `MESH_PROBE_WAIT_MS` after the
 * open time, the isolate probes on its own: an unreachable object delays recovery, it never
 * prevents it.
 */
import type { RandomSource } from "../random.ts";

export interface BreakerPolicy {
  /** Trip after this many failures in a row (0: never on a streak). */
  readonly consecutiveFailures: number;
  /** Trip when failures / requests over the window reach this (0–1; undefined: never). */
  readonly failureRate: number | undefined;
  /** ... provided the window holds at least this many requests. */
  readonly minimumRequests: number;
  /** The failure-rate window, in milliseconds. */
  readonly windowMs: number;
  /** How long the first trip stays open, in milliseconds. */
  readonly baseOpenMs: number;
  /** The longest an open period grows to, in milliseconds. */
  readonly maxOpenMs: number;
  /** Random extra open time, as a fraction of the open period (0.1: up to 10% more). */
  readonly openJitter: number;
  /** Calls admitted while half-open; that many successes close the breaker. */
  readonly halfOpenProbes: number;
}

/** Successes and failures in one slice of the window. */
export interface WindowBucket {
  readonly at: number;
  readonly successes: number;
  readonly failures: number;
}

export type BreakerState =
  | {
      readonly kind: "closed";
      /** Failures since the last success. */
      readonly consecutive: number;
      /** Outcomes over the window, oldest first; buckets older than the window are dropped. */
      readonly window: readonly WindowBucket[];
      /** Trips in a row before this close (0 once a half-open probe run closed it). */
      readonly trips: number;
    }
  | {
      readonly kind: "open";
      readonly openedAt: number;
      /** When it turns half-open. */
      readonly until: number;
      /** Consecutive trips, this one included. */
      readonly trips: number;
      /**
       * Open on the mesh's word: when the time is up, it probes only with a grant from the
       * Durable Object (or, without word from it, `MESH_PROBE_WAIT_MS` later).
       */
      readonly awaitsGrant?: true;
      /** The object's: probes promised to isolates for when it half-opens (counted admitted). */
      readonly reserved?: number;
      /** An isolate's: probes the mesh promised it for when this open time is up. */
      readonly granted?: number;
    }
  | {
      readonly kind: "half-open";
      readonly trips: number;
      /** Probes admitted so far. */
      readonly admitted: number;
      /** Probes that succeeded. */
      readonly successes: number;
      /** When the last probe was admitted (a probe never answered is given back later). */
      readonly probedAt?: number;
      /** Probes this breaker may admit, when the mesh granted them (else the policy's). */
      readonly allowance?: number;
    };

/** A breaker that has seen nothing. */
export const CLOSED: BreakerState = { kind: "closed", consecutive: 0, window: [], trips: 0 };

const BUCKETS = 10;

/** Outcomes to record: one call's, or a batch (an isolate's report to the Durable Object). */
export interface Outcomes {
  readonly successes: number;
  readonly failures: number;
  /**
   * Failures at the end of the batch with no success after them (for one failure: 1; for one
   * success: 0). A streak that spans batches adds up across them.
   */
  readonly trailingFailures: number;
  /**
   * How many of the successes were half-open probes. Only a probe's success counts towards
   * closing a half-open breaker: a success reported late, from a try sent before the breaker
   * opened, says nothing of the backend now — a failure still reopens it.
   */
  readonly probeSuccesses: number;
}

/** A half-open probe's success. */
export const PROBE_SUCCESS: Outcomes = {
  successes: 1,
  failures: 0,
  trailingFailures: 0,
  probeSuccesses: 1,
};
/** A success that was not a probe (a try admitted while the breaker was closed). */
export const PLAIN_SUCCESS: Outcomes = {
  successes: 1,
  failures: 0,
  trailingFailures: 0,
  probeSuccesses: 0,
};
export const FAILURE: Outcomes = {
  successes: 0,
  failures: 1,
  trailingFailures: 1,
  probeSuccesses: 0,
};

/** How long trip number `trips` stays open: doubling from the base, capped, plus jitter. */
export function openDuration(policy: BreakerPolicy, trips: number, random: RandomSource): number {
  const grown = Math.min(policy.maxOpenMs, policy.baseOpenMs * 2 ** Math.min(trips - 1, 30));
  return Math.round(grown * (1 + policy.openJitter * random()));
}

function open(policy: BreakerPolicy, trips: number, now: number, random: RandomSource) {
  return {
    kind: "open",
    openedAt: now,
    until: now + openDuration(policy, trips, random),
    trips,
  } as const;
}

/** The window's buckets that are still inside it at `now`, with `outcomes` added. */
function slide(
  window: readonly WindowBucket[],
  policy: BreakerPolicy,
  outcomes: Outcomes,
  now: number,
): WindowBucket[] {
  const width = Math.max(1, policy.windowMs / BUCKETS);
  const start = now - (now % width);
  const kept = window.filter((b) => b.at > now - policy.windowMs);
  const last = kept.at(-1);
  if (last && last.at === start) {
    kept[kept.length - 1] = {
      at: start,
      successes: last.successes + outcomes.successes,
      failures: last.failures + outcomes.failures,
    };
  } else {
    kept.push({ at: start, successes: outcomes.successes, failures: outcomes.failures });
  }
  return kept;
}

/** Requests and failures in the window at `now`. */
export function windowCounts(
  state: BreakerState,
  policy: BreakerPolicy,
  now: number,
): { requests: number; failures: number } {
  if (state.kind !== "closed") return { requests: 0, failures: 0 };
  let requests = 0;
  let failures = 0;
  for (const b of state.window) {
    if (b.at <= now - policy.windowMs) continue;
    requests += b.successes + b.failures;
    failures += b.failures;
  }
  return { requests, failures };
}

/**
 * Probes admitted this long ago and never answered (the call was abandoned: the caller went
 * away) are given back, so a lost probe cannot hold a breaker half-open for good.
 */
export const PROBE_EXPIRY_MS = 30_000;

/**
 * How long after its open time an isolate waiting for the mesh's probe grant gives up waiting
 * and probes on its own (the Durable Object is unreachable or slow).
 */
export const MESH_PROBE_WAIT_MS = 5_000;

/**
 * How long after the open time a probe reserved while open stays out before it is given back
 * to the mesh (about two report rounds): long enough for its holder's first call and report.
 */
export const RESERVATION_GRACE_MS = 3_000;

/** True when `state` is open on the mesh's word, its time is up, and it waits for a grant. */
export function awaitingGrant(state: BreakerState, now: number): boolean {
  return (
    state.kind === "open" &&
    state.awaitsGrant === true &&
    now >= state.until &&
    now < state.until + MESH_PROBE_WAIT_MS
  );
}

/**
 * The state as the clock stands at `now`: an open breaker whose time is up is half-open (one
 * open on the mesh's word, only once it has waited `MESH_PROBE_WAIT_MS` for a grant); a
 * half-open one whose probes have been out for `PROBE_EXPIRY_MS` admits probes again.
 */
export function current(state: BreakerState, now: number): BreakerState {
  const s = state.kind === "open" && now >= state.until ? halfOpened(state, now) : state;
  if (s.kind === "half-open" && s.probedAt !== undefined && now - s.probedAt >= PROBE_EXPIRY_MS) {
    return {
      kind: "half-open",
      trips: s.trips,
      admitted: s.successes,
      successes: s.successes,
      ...(s.allowance !== undefined ? { allowance: s.allowance } : {}),
    };
  }
  return s;
}

/** An open breaker whose time is up, at `now` (still open while it waits for the mesh). */
function halfOpened(state: BreakerState & { kind: "open" }, now: number): BreakerState {
  if (state.granted !== undefined) {
    return {
      kind: "half-open",
      trips: state.trips,
      admitted: 0,
      successes: 0,
      allowance: state.granted,
    };
  }
  if (state.awaitsGrant && now < state.until + MESH_PROBE_WAIT_MS) return state;
  if (state.reserved) {
    // The promised probes are out from the moment it half-opens; an isolate that holds one
    // probes at its first call after that, so one not answered within RESERVATION_GRACE_MS
    // (no call came, the isolate is gone, the grant was lost) is given back.
    return {
      kind: "half-open",
      trips: state.trips,
      admitted: state.reserved,
      successes: 0,
      probedAt: state.until + RESERVATION_GRACE_MS - PROBE_EXPIRY_MS,
    };
  }
  return { kind: "half-open", trips: state.trips, admitted: 0, successes: 0 };
}

/**
 * The object's answer to an isolate asking for probes: how many it grants, and the state after.
 * The first isolate to ask gets every probe still free — half-open, admitted now; open, reserved
 * for when it half-opens — so one isolate sends the `halfOpenProbes` it takes to close, rather
 * than several isolates one each, flapping between closed and refusing while the mesh counts.
 * Closed, no probe is needed; with none free, the rest wait.
 */
export function grantProbes(
  state: BreakerState,
  policy: BreakerPolicy,
  now: number,
): { granted: number; state: BreakerState } | undefined {
  const s = current(state, now);
  if (s.kind === "half-open") {
    const free = policy.halfOpenProbes - s.admitted;
    if (free <= 0) return undefined;
    return { granted: free, state: { ...s, admitted: s.admitted + free, probedAt: now } };
  }
  if (s.kind === "open") {
    const free = policy.halfOpenProbes - (s.reserved ?? 0);
    if (free <= 0) return undefined;
    return { granted: free, state: { ...s, reserved: (s.reserved ?? 0) + free } };
  }
  return undefined;
}

/** The probes a half-open breaker may admit in all. */
function probeLimit(state: BreakerState & { kind: "half-open" }, policy: BreakerPolicy): number {
  return state.allowance ?? policy.halfOpenProbes;
}

/**
 * Whether a call may go to the backend now, and the state after admitting it (a half-open
 * breaker counts its probes).
 */
export function admit(
  state: BreakerState,
  policy: BreakerPolicy,
  now: number,
): { admitted: boolean; state: BreakerState } {
  const s = current(state, now);
  if (s.kind === "closed") return { admitted: true, state: s };
  if (s.kind === "open") return { admitted: false, state: s };
  if (s.admitted >= probeLimit(s, policy)) return { admitted: false, state: s };
  return { admitted: true, state: { ...s, admitted: s.admitted + 1, probedAt: now } };
}

/** True when a try would be refused now: open, or half-open with every probe in flight. */
export function refuses(state: BreakerState, policy: BreakerPolicy, now: number): boolean {
  const s = current(state, now);
  return s.kind === "open" || (s.kind === "half-open" && s.admitted >= probeLimit(s, policy));
}

/** The state after `outcomes` at `now`. */
export function record(
  state: BreakerState,
  policy: BreakerPolicy,
  outcomes: Outcomes,
  now: number,
  random: RandomSource,
): BreakerState {
  const s = current(state, now);
  switch (s.kind) {
    case "open":
      // Answers to calls admitted before it opened: the breaker already decided.
      return s;
    case "half-open": {
      if (outcomes.failures > 0) return open(policy, s.trips + 1, now, random);
      const successes = s.successes + outcomes.probeSuccesses;
      if (successes >= probeLimit(s, policy)) return { ...CLOSED, trips: 0 };
      return { ...s, successes };
    }
    case "closed": {
      // A success inside the batch ends the streak; only the failures after it still count.
      const consecutive =
        outcomes.successes > 0
          ? outcomes.trailingFailures
          : s.consecutive + outcomes.trailingFailures;
      const window = slide(s.window, policy, outcomes, now);
      const next: BreakerState = { kind: "closed", consecutive, window, trips: s.trips };
      if (policy.consecutiveFailures > 0 && consecutive >= policy.consecutiveFailures) {
        return open(policy, s.trips + 1, now, random);
      }
      if (policy.failureRate !== undefined) {
        const { requests, failures } = windowCounts(next, policy, now);
        if (requests >= policy.minimumRequests && failures / requests >= policy.failureRate) {
          return open(policy, s.trips + 1, now, random);
        }
      }
      return next;
    }
  }
}

/**
 * What an isolate's breaker becomes when the Durable Object hands back the mesh-wide state (and,
 * when the isolate asked for one, `granted` probes): the more cautious of the two, with probes
 * only as the mesh grants them.
 *  - Open in the mesh: the isolate is open too until the mesh's time, then probes if it was
 *    granted a probe, else waits for one — unless it is open on what it saw itself for longer.
 *  - Half-open in the mesh: a grant makes the isolate half-open with that many probes; without
 *    one it keeps probes it was granted before, and otherwise refuses (waits for a grant).
 *  - Closed in the mesh: a breaker open only on the mesh's word closes; one open (or probing) on
 *    what the isolate saw itself stays as it is.
 */
export function adopt(
  local: BreakerState,
  global: BreakerState,
  now: number,
  granted = 0,
): BreakerState {
  const l = current(local, now);
  const g = current(global, now);
  const ownEvidence = !onMeshWord(l);
  if (g.kind === "open") {
    const open = { kind: "open", openedAt: g.openedAt, until: g.until, trips: g.trips } as const;
    if (granted > 0) return { ...open, granted };
    // A reservation holds for the open period it was made in.
    if (l.kind === "open" && l.granted !== undefined && l.until === g.until) return l;
    if (l.kind === "open" && ownEvidence && l.until >= g.until) return l;
    return { ...open, awaitsGrant: true };
  }
  if (g.kind === "half-open") {
    if (granted > 0) {
      return { kind: "half-open", trips: g.trips, admitted: 0, successes: 0, allowance: granted };
    }
    if (isGranted(l)) return l;
    if (l.kind === "open" && ownEvidence && l.until > now) return l;
    // The mesh is probing and this isolate holds no probe: refuse until one is granted.
    return { kind: "open", openedAt: now, until: now, trips: g.trips, awaitsGrant: true };
  }
  return ownEvidence ? l : { ...CLOSED, trips: 0 };
}

/** True when `state` is open or probing on the mesh's word, not on what the isolate saw. */
export function onMeshWord(state: BreakerState): boolean {
  return (
    (state.kind === "open" && (state.awaitsGrant === true || state.granted !== undefined)) ||
    isGranted(state)
  );
}

/** True when `state` is half-open on probes the mesh granted. */
function isGranted(state: BreakerState): boolean {
  return state.kind === "half-open" && state.allowance !== undefined;
}
/**
 * A location shard's breaker after the Service's root object answered its rollup with the
 * mesh-wide `root` state. The shard is its isolates' authority (it grants their probes), so
 * unlike `adopt` nothing here waits for a grant:
 *  - root open: the shard is open until the root's time, unless open longer on its own count;
 *  - root half-open: a closed shard half-opens too (its isolates probe through it); an open or
 *    probing one goes on as it is;
 *  - root closed: the shard keeps its own state — a shard open on the root's word half-opens at
 *    the same time the root did, and closes on its own location's probe.
 */
export function mergeFromRoot(shard: BreakerState, root: BreakerState, now: number): BreakerState {
  const s = current(shard, now);
  const r = current(root, now);
  if (r.kind === "open") {
    if (s.kind === "open" && s.until >= r.until) return s;
    return {
      kind: "open",
      openedAt: r.openedAt,
      until: r.until,
      trips: Math.max(r.trips, s.trips),
      // Promises made for the shard's own open period do not carry over to the root's: the
      // holders' grants end with that period, and they ask again.
    };
  }
  if (r.kind === "half-open" && s.kind === "closed") {
    return { kind: "half-open", trips: r.trips, admitted: 0, successes: 0 };
  }
  return s;
}
