/**
 * The rate limits of the destination Service (its BackendPolicy's `rateLimit`), checked before
 * anything else is done for the call: the caller's own limit (an override naming it, else
 * `perCaller`), then the limit on all calls (`total`). A refused call is `rate_limited` (429)
 * with `Retry-After`: the whole seconds until this isolate's bucket has a token again.
 *
 * Each limit holds across the mesh: this isolate's bucket runs at its share of the limit, which
 * the destination's Durable Object hands back as it learns every isolate's demand
 * (core/resilience/rate-limit.ts). The check itself is a few arithmetic steps in memory.
 */
import { MeshError } from "../../../core/errors.ts";
import type { SharedRateLimit } from "../../../core/resilience/rate-limit.ts";
import type { Layer, MeshCall } from "../call.ts";

/** The caller of a call whose entry attests none (until identity lands: plain HTTP calls). */
export const ANONYMOUS_CALLER = "(anonymous)";

function refuse(call: MeshCall, key: string, limit: SharedRateLimit, what: string): never {
  call.limitedBy = key;
  throw new MeshError(
    "rate_limited",
    `${what} to '${call.destination}' exceed ${limit.policy.ratePerSecond} a second`,
    {
      destination: call.destination,
      retryAfterSeconds: Math.max(1, Math.ceil(limit.waitMs(call.now()) / 1000)),
    },
  );
}

export const rateLimit: Layer = (call, next) => {
  const limits = call.table!.service.policy.rateLimit;
  if (!limits) return next();
  const now = call.now();
  const state = call.services.get(call.destination);
  const caller = call.caller ?? ANONYMOUS_CALLER;
  const ownPolicy = limits.overrides.get(caller) ?? limits.perCaller;
  const own = ownPolicy && state.limit(`caller:${caller}`, ownPolicy, now);
  if (own && !own.tryTake(now)) refuse(call, `caller:${caller}`, own, `calls from '${caller}'`);
  if (limits.total) {
    const total = state.limit("total", limits.total, now);
    if (!total.tryTake(now)) {
      // The call does not go: the caller's own limit is not charged for it.
      own?.giveBack(now);
      refuse(call, "total", total, "calls");
    }
  }
  return next();
};
