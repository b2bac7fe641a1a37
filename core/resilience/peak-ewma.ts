/**
 * Latency-aware balancing across a Service's endpoints, as Linkerd does it: each endpoint's cost
 * is a peak-sensitive moving average of its latency (a slow answer raises it at once, fast ones
 * bring it down over `decayMs`) times its calls in flight plus one; a call goes to the cheaper of
 * two endpoints drawn at random (power of two choices), which avoids both the herd that "always
 * the fastest" creates and the blindness of round robin.
 */
import type { RandomSource } from "../random.ts";

export interface EndpointLoad {
  /** Moving average latency, ms (peak-sensitive). */
  ewmaMs: number;
  /** When it was last updated. */
  updated: number;
  /** Calls in flight. */
  pending: number;
}

/** A new endpoint starts as if it answered in `initialMs`. */
export function newLoad(initialMs: number, now: number): EndpointLoad {
  return { ewmaMs: initialMs, updated: now, pending: 0 };
}

/** Folds an observed latency into the average: peaks at once, decays with time. */
export function observe(load: EndpointLoad, latencyMs: number, now: number, decayMs: number): void {
  if (latencyMs > load.ewmaMs) {
    load.ewmaMs = latencyMs;
  } else {
    const elapsed = Math.max(0, now - load.updated);
    const weight = Math.exp(-elapsed / decayMs);
    load.ewmaMs = load.ewmaMs * weight + latencyMs * (1 - weight);
  }
  load.updated = now;
}

export function cost(load: EndpointLoad): number {
  return load.ewmaMs * (load.pending + 1);
}

/**
 * Index of the endpoint to use among `loads` (power of two choices); −1 when there is none.
 * `eligible` leaves out ejected endpoints.
 */
export function pickP2C(
  loads: readonly EndpointLoad[],
  random: RandomSource,
  eligible: (index: number) => boolean = () => true,
): number {
  const candidates: number[] = [];
  for (let i = 0; i < loads.length; i++) if (eligible(i)) candidates.push(i);
  if (candidates.length === 0) return -1;
  if (candidates.length === 1) return candidates[0]!;
  // Two distinct candidates, each pair equally likely.
  const i = Math.floor(random() * candidates.length);
  let j = Math.floor(random() * (candidates.length - 1));
  if (j >= i) j++;
  const a = candidates[i]!;
  const b = candidates[j]!;
  return cost(loads[a]!) <= cost(loads[b]!) ? a : b;
}
