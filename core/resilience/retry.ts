/**
 * What the retry layer may retry: the compiled form of a rule's retry policy, and the rules for
 * which requests and which failures qualify. Kept apart from the layer so the choices are
 * visible and unit-tested:
 *  - only idempotent methods (GET, HEAD, OPTIONS, TRACE, PUT, DELETE), or a request carrying
 *    `Idempotency-Key` — a POST that failed may already have charged the card (Istio's
 *    long-standing default retried it; this does not);
 *  - a response whose status the policy lists, a connection failure or an exception from the
 *    binding, and a try that exceeded its per-try timeout; never the whole call's deadline.
 */
import type { BackoffPolicy } from "./backoff.ts";

/** A rule's retry policy, compiled. */
export interface RetrySpec {
  /** Retries after the first try; 0 means none. */
  readonly attempts: number;
  /** Statuses that are retried. */
  readonly codes: ReadonlySet<number>;
  readonly backoff: BackoffPolicy;
  /** The longest `Retry-After` honoured; a longer one ends the retries. */
  readonly retryAfterCapMs: number;
}

/** Defaults, as Envoy's: two retries, 25 ms base backoff, capped at ten times the base. */
export const DEFAULT_RETRY_ATTEMPTS = 2;
export const DEFAULT_BACKOFF_BASE_MS = 25;
export const BACKOFF_CAP_FACTOR = 10;
export const DEFAULT_RETRY_AFTER_CAP_MS = 10_000;

/** Compiles a Gateway API `retry` stanza (durations already in milliseconds). */
export function compileRetry(retry: {
  codes?: readonly number[] | undefined;
  attempts?: number | undefined;
  backoffMs?: number | undefined;
}): RetrySpec {
  const base = retry.backoffMs ?? DEFAULT_BACKOFF_BASE_MS;
  return {
    attempts: retry.attempts ?? DEFAULT_RETRY_ATTEMPTS,
    codes: new Set(retry.codes ?? []),
    backoff: { baseMs: base, maxMs: base * BACKOFF_CAP_FACTOR },
    retryAfterCapMs: DEFAULT_RETRY_AFTER_CAP_MS,
  };
}

const IDEMPOTENT: ReadonlySet<string> = new Set([
  "GET",
  "HEAD",
  "OPTIONS",
  "TRACE",
  "PUT",
  "DELETE",
]);

/** True when the request may be sent more than once. */
export function isRetryableRequest(
  method: string,
  headers: { get(name: string): string | null },
): boolean {
  return IDEMPOTENT.has(method) || headers.get("idempotency-key") !== null;
}
