/**
 * The overall deadline (`timeouts.request`): sets the absolute time by which the whole call —
 * later, every retry and backoff — must have its response. It arms no timer of its own: each
 * attempt's timer (per-try-timeout.ts) is capped by what is left of this deadline, so one timer
 * per attempt enforces both limits.
 */
import type { Layer } from "../call.ts";

export const deadline: Layer = (call, next) => {
  const ms = call.rule!.requestTimeoutMs;
  if (ms > 0) call.deadline = call.startedAt + ms;
  return next();
};
