/**
 * What the retry layer may retry: the compiled form of a retry policy, and the rules for which
 * requests and which failures qualify. Kept apart from the layer so the choices are visible and
 * unit-tested:
 *  - only idempotent methods (GET, HEAD, OPTIONS, TRACE, PUT, DELETE), or a request carrying
 *    `Idempotency-Key`, unless the policy allows non-idempotent retries — a POST that failed may
 *    already have charged the card (Istio's long-standing default retried it; this does not);
 *  - a response whose status the policy lists, a connection failure or an exception from the
 *    binding, and a try that exceeded its per-try timeout; never the whole call's deadline.
 *
 * A rule's Gateway API `retry` (attempts, codes, backoff) and the BackendPolicies above it are
 * merged field by field, the rule first: see `compileRetry`.
 */
import type { BackoffPolicy } from "./backoff.ts";

/** A retry policy, compiled. */
export interface RetrySpec {
  /** Retries after the first try; 0 means none. */
  readonly attempts: number;
  /** Statuses that are retried. */
  readonly codes: ReadonlySet<number>;
  /** Retry a try that could not reach the upstream, or whose binding threw. */
  readonly onConnectFailure: boolean;
  /** Retry a try that exceeded its own timeout. */
  readonly onTimeout: boolean;
  /** Retry non-idempotent requests without an `Idempotency-Key` too. */
  readonly nonIdempotent: boolean;
  readonly backoff: BackoffPolicy;
  /** The longest `Retry-After` honoured; a longer one ends the retries. */
  readonly retryAfterCapMs: number;
}

/** Defaults, as Envoy's: two retries, 25 ms base backoff, capped at ten times the base. */
export const DEFAULT_RETRY_ATTEMPTS = 2;
export const DEFAULT_BACKOFF_BASE_MS = 25;
export const BACKOFF_CAP_FACTOR = 10;
export const DEFAULT_RETRY_AFTER_CAP_MS = 10_000;

/** What a policy's `on` can name. */
export type RetryCondition = "5xx" | "gateway-error" | "connect-failure" | "timeout";
/** What a policy retries when it does not say (a rule's own `codes` replace the statuses). */
export const DEFAULT_RETRY_ON: readonly RetryCondition[] = [
  "gateway-error",
  "connect-failure",
  "timeout",
];

/** One source of retry settings (durations already in milliseconds); unset fields defer. */
export interface RetrySource {
  readonly attempts?: number | undefined;
  readonly on?: readonly RetryCondition[] | undefined;
  readonly codes?: readonly number[] | undefined;
  readonly backoffMs?: number | undefined;
  readonly maxBackoffMs?: number | undefined;
  readonly maxRetryAfterMs?: number | undefined;
  readonly nonIdempotent?: boolean | undefined;
}

function statusesOf(on: readonly RetryCondition[]): number[] {
  const out: number[] = [];
  if (on.includes("5xx")) for (let s = 500; s < 600; s++) out.push(s);
  else if (on.includes("gateway-error")) out.push(502, 503, 504);
  return out;
}

/**
 * Compiles a retry policy from the rule's Gateway API `retry` (which has only attempts, codes and
 * backoff) and the policies that apply, most specific first; each field comes from the first
 * source that sets it. A rule's `codes` are the whole list of retried statuses, as the Gateway API
 * defines them; otherwise the statuses are the policies' `codes` plus those their `on` names. A
 * rule's retry always retries connection failures and per-try timeouts, whatever `on` says.
 */
export function compileRetry(
  rule: RetrySource | undefined,
  policies: readonly RetrySource[],
): RetrySpec {
  const first = <K extends keyof RetrySource>(key: K): RetrySource[K] =>
    policies.find((p) => p[key] !== undefined)?.[key];
  const on = first("on") ?? DEFAULT_RETRY_ON;
  const codes = rule?.codes ?? [
    ...(first("codes") ?? []),
    ...(policies.length > 0 ? statusesOf(on) : []),
  ];
  // The rule's Gateway API backoff is the shortest wait (GEP-1731); a policy's is the jitter's
  // base. Either one alone serves as both.
  const min = rule?.backoffMs ?? 0;
  const base = first("backoffMs") ?? rule?.backoffMs ?? DEFAULT_BACKOFF_BASE_MS;
  const max = Math.max(first("maxBackoffMs") ?? base * BACKOFF_CAP_FACTOR, min);
  return {
    attempts: rule?.attempts ?? first("attempts") ?? DEFAULT_RETRY_ATTEMPTS,
    codes: new Set(codes),
    // A rule's Gateway API retry always covers connection failures and its tries' timeouts.
    onConnectFailure: rule !== undefined || on.includes("connect-failure"),
    onTimeout: rule !== undefined || on.includes("timeout"),
    nonIdempotent: first("nonIdempotent") ?? false,
    backoff: { baseMs: base, maxMs: Math.max(base, max), minMs: min },
    retryAfterCapMs: first("maxRetryAfterMs") ?? DEFAULT_RETRY_AFTER_CAP_MS,
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
