/**
 * The overall deadline (`timeouts.request`, from the rule or the policies above it): sets the
 * absolute time by which the whole call — every retry and backoff — must have its response. It
 * arms no timer of its own: each attempt's timer (per-try-timeout.ts) is capped by what is left
 * of this deadline, so one timer per attempt enforces both limits.
 */
import type { Layer } from "../call.ts";

export const deadline: Layer = (call, next) => {
  const ms = call.backend!.policy.requestTimeoutMs;
  if (ms > 0) call.deadline = call.startedAt + ms;
  return next();
};
