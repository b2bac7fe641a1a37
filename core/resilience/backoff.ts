/**
 * How long to wait before a retry: exponential backoff with full jitter (a uniformly random
 * wait between 0 and min(cap, base × 2^retry)), as AWS's architecture note and Envoy's retry
 * policy do, so clients that failed together do not retry together. A floor can sit under the
 * jitter: the Gateway API's HTTPRoute `retry.backoff` is the *minimum* wait between tries
 * (GEP-1731; its conformance test checks that no retry starts sooner), so a rule's backoff is
 * waited in full and the jitter comes on top. A `Retry-After` the upstream sent is honoured
 * instead, up to a cap: a backend that says when to come back is believed, but never for longer
 * than the policy allows.
 */
import type { RandomSource } from "../random.ts";

export interface BackoffPolicy {
  /** The first retry's jitter bound, in milliseconds; it doubles with each retry. */
  readonly baseMs: number;
  /** No wait is longer than this, in milliseconds (at least `minMs`). */
  readonly maxMs: number;
  /** No wait is shorter than this, in milliseconds (a rule's Gateway API `backoff`; else 0). */
  readonly minMs: number;
}

/**
 * The wait before retry number `retry` (0 for the first retry): `minMs` plus a uniform draw
 * from [0, min(maxMs, baseMs × 2^retry)), never above `maxMs`. With `random` returning 0.5 the
 * draw is half its bound, which makes tests exact.
 */
export function backoffDelay(policy: BackoffPolicy, retry: number, random: RandomSource): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(retry, 30));
  return Math.min(
    Math.max(policy.maxMs, policy.minMs),
    policy.minMs + Math.floor(random() * ceiling),
  );
}

/**
 * A `Retry-After` header's wait in milliseconds (delay-seconds or an HTTP date, RFC 9110
 * §10.2.3), or undefined when absent or unreadable. A date in the past is 0.
 */
export function retryAfterMs(header: string | null, now: number): number | undefined {
  if (header === null) return undefined;
  const text = header.trim();
  if (/^\d{1,10}$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  if (Number.isNaN(date) || !/[a-z]/i.test(text)) return undefined;
  return Math.max(0, date - now);
}

/**
 * The wait before a retry: the upstream's `Retry-After` when it sent one (capped at
 * `retryAfterCapMs`; above the cap the retry is not worth making, so undefined), else the
 * jittered backoff.
 */
export function retryDelay(
  policy: BackoffPolicy & { readonly retryAfterCapMs: number },
  retry: number,
  retryAfter: number | undefined,
  random: RandomSource,
): number | undefined {
  if (retryAfter === undefined) return backoffDelay(policy, retry, random);
  return retryAfter <= policy.retryAfterCapMs ? retryAfter : undefined;
}
