/**
 * BackendPolicy settings compiled for serving: what a Service's own policy says about it (its
 * breaker, retry budget, balancer, failover, rate limit), and what governs one call — its
 * timeouts and retries — from the sources that apply to it, most specific first:
 *
 *   1. the rule's own `timeouts` and `retry` fields (Gateway API);
 *   2. a policy on that rule (an HTTPRoute target with `sectionName`);
 *   3. a policy on the whole HTTPRoute;
 *   4. a policy on the destination Service (the one the caller addressed);
 *   5. a policy on the backend Service the rule sends to;
 *   6. the defaults.
 *
 * Each field comes from the first source that sets it. What happens to a split when breakers
 * open (outlier detection) comes from sources 2–4: it describes the split, not a backend.
 */
import type { PolicyKnobs } from "../config/policy.ts";
import type { HTTPRouteRule } from "../config/schema.ts";
import { parseDuration } from "../duration.ts";
import type { BreakerPolicy } from "../resilience/breaker.ts";
import type { AutoTimeoutPolicy } from "../resilience/latency.ts";
import { compileRetry, type RetrySource, type RetrySpec } from "../resilience/retry.ts";
import type { RetryBudgetPolicy } from "../resilience/retry-budget.ts";
import type { TokenBucketPolicy } from "../resilience/token-bucket.ts";

/** What governs one call to one backend. */
export interface CallPolicy {
  /** The whole call's deadline, ms; 0 for none. */
  readonly requestTimeoutMs: number;
  /** Each try's deadline, ms; 0 for none (or learned, when `autoTimeout` is set). */
  readonly backendTimeoutMs: number;
  /** Set when the per-try timeout is `auto`: learned from the backend's latency. */
  readonly autoTimeout: AutoTimeoutPolicy | undefined;
  /** Retries of failed tries; undefined: one try. */
  readonly retry: RetrySpec | undefined;
}

/** What happens to a split when some of its backends' breakers are open. */
export interface OutlierPolicy {
  /** At most this share of the split's backends (rounded down, at least one) is ejected. */
  readonly maxEjectionPercent: number;
  /** With every backend open, call the least-bad one instead of `no_healthy_backend`. */
  readonly failOpen: boolean;
}

export interface BalancerPolicy {
  readonly type: "RoundRobin" | "Random" | "PeakEWMA";
  /** PeakEWMA: how fast a slow answer is forgotten, ms. */
  readonly decayMs: number;
}

/** Rate limits on calls addressed to a Service; each enforced across the mesh. */
export interface RateLimitPolicy {
  readonly total: TokenBucketPolicy | undefined;
  readonly perCaller: TokenBucketPolicy | undefined;
  /** Named callers' limits, in place of `perCaller`. */
  readonly overrides: ReadonlyMap<string, TokenBucketPolicy>;
}

/** What a Service's own policies say about it. */
export interface ServicePolicy {
  /** The BackendPolicies in effect (names, oldest first). */
  readonly names: readonly string[];
  readonly breaker: BreakerPolicy | undefined;
  readonly budget: RetryBudgetPolicy;
  readonly balancer: BalancerPolicy;
  readonly rateLimit: RateLimitPolicy | undefined;
  /** The Service calls go to while this one's breaker is open. */
  readonly failover: string | undefined;
}

/** Linkerd's budget: retries add at most 20% to the requests, plus 10 a second, over 10 s. */
export const DEFAULT_RETRY_BUDGET: RetryBudgetPolicy = {
  ratio: 0.2,
  minPerSecond: 10,
  windowMs: 10_000,
};
export const DEFAULT_AUTO_TIMEOUT: AutoTimeoutPolicy = {
  quantile: 0.99,
  factor: 2,
  minMs: 100,
  maxMs: 10_000,
  minSamples: 100,
};
export const DEFAULT_OUTLIER: OutlierPolicy = { maxEjectionPercent: 100, failOpen: false };
export const DEFAULT_BALANCER: BalancerPolicy = { type: "RoundRobin", decayMs: 10_000 };

const ms = (duration: string | undefined) =>
  duration === undefined ? undefined : parseDuration(duration);

function rate(spec: { requestsPerSecond: number; burst?: number | undefined }): TokenBucketPolicy {
  return {
    ratePerSecond: spec.requestsPerSecond,
    burst: spec.burst ?? Math.max(1, Math.ceil(spec.requestsPerSecond)),
  };
}

/** Compiles a Service's own settings from the knobs its policies give it. */
export function compileServicePolicy(knobs: PolicyKnobs, names: readonly string[]): ServicePolicy {
  const { circuitBreaker: b, retryBudget, loadBalancer, rateLimit, failover } = knobs;
  return {
    names,
    breaker: b && {
      consecutiveFailures: b.consecutiveFailures,
      failureRate: b.failureRate,
      minimumRequests: b.minimumRequests,
      windowMs: parseDuration(b.window),
      baseOpenMs: parseDuration(b.baseOpenTime),
      maxOpenMs: parseDuration(b.maxOpenTime),
      openJitter: b.openJitter,
      halfOpenProbes: b.halfOpenProbes,
    },
    budget: retryBudget
      ? {
          ratio: retryBudget.ratio,
          minPerSecond: retryBudget.minPerSecond,
          windowMs: parseDuration(retryBudget.window),
        }
      : DEFAULT_RETRY_BUDGET,
    balancer: loadBalancer
      ? { type: loadBalancer.type, decayMs: parseDuration(loadBalancer.decay) }
      : DEFAULT_BALANCER,
    rateLimit: rateLimit && {
      total: rateLimit.total && rate(rateLimit.total),
      perCaller: rateLimit.perCaller && rate(rateLimit.perCaller),
      overrides: new Map(
        (rateLimit.overrides ?? []).flatMap((o) => o.callers.map((c) => [c, rate(o)] as const)),
      ),
    },
    failover: failover?.service,
  };
}

function policyRetry(knobs: PolicyKnobs): RetrySource | undefined {
  const r = knobs.retry;
  return (
    r && {
      attempts: r.attempts,
      on: r.on,
      codes: r.codes,
      backoffMs: ms(r.backoff),
      maxBackoffMs: ms(r.maxBackoff),
      maxRetryAfterMs: ms(r.maxRetryAfter),
      nonIdempotent: r.nonIdempotent,
    }
  );
}

/**
 * The policy of one call: the rule's own fields (none for a destination without routes), then
 * `chain` — the knobs of sources 2–5 above, most specific first.
 */
export function compileCallPolicy(
  rule: HTTPRouteRule | undefined,
  chain: readonly PolicyKnobs[],
): CallPolicy {
  const timeout = <K extends "request" | "backendRequest" | "auto">(key: K) =>
    chain.find((k) => k.timeouts?.[key] !== undefined)?.timeouts?.[key];
  const request = rule?.timeouts?.request ?? timeout("request");
  const backend = rule?.timeouts?.backendRequest ?? timeout("backendRequest");
  const auto = timeout("auto");
  const policies = chain.flatMap((k) => policyRetry(k) ?? []);
  const retry =
    rule?.retry || policies.length > 0
      ? compileRetry(
          rule?.retry && {
            attempts: rule.retry.attempts,
            codes: rule.retry.codes,
            backoffMs: ms(rule.retry.backoff),
          },
          policies,
        )
      : undefined;
  return {
    requestTimeoutMs: ms(request) ?? 0,
    backendTimeoutMs: backend === undefined || backend === "auto" ? 0 : parseDuration(backend),
    autoTimeout:
      backend === "auto"
        ? auto
          ? {
              quantile: auto.quantile,
              factor: auto.factor,
              minMs: parseDuration(auto.min),
              maxMs: parseDuration(auto.max),
              minSamples: auto.minSamples,
            }
          : DEFAULT_AUTO_TIMEOUT
        : undefined,
    retry,
  };
}

/** Outlier detection of a rule's split, from sources 2–4, most specific first. */
export function compileOutlier(chain: readonly PolicyKnobs[]): OutlierPolicy {
  const spec = chain.find((k) => k.outlierDetection !== undefined)?.outlierDetection;
  return spec
    ? { maxEjectionPercent: spec.maxEjectionPercent, failOpen: spec.failOpen }
    : DEFAULT_OUTLIER;
}
