/**
 * The per-attempt deadline (`timeouts.backendRequest`, capped by what is left of
 * `timeouts.request`). It sits just above `forward`, so each retry gets its own.
 */
import { MeshError } from "../../../core/errors.ts";
import { withDeadline } from "../../../core/timeout.ts";
import type { Layer } from "../call.ts";

export const perTryTimeout: Layer = (call, next) => {
  const perTry = call.rule!.backendTimeoutMs;
  const remaining = call.deadline === undefined ? Infinity : call.deadline - call.now();
  const ms = Math.min(perTry > 0 ? perTry : Infinity, remaining);
  if (ms === Infinity) return next();
  return withDeadline(
    Math.max(ms, 1),
    (signal) => {
      call.attemptSignal = signal;
      return next();
    },
    () =>
      new MeshError(
        "upstream_timeout",
        `backend '${call.backend?.name}' did not answer within ${Math.round(ms)} ms`,
        { destination: call.destination, route: call.rule?.id },
      ),
  );
};
