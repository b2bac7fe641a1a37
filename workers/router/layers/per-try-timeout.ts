/**
 * The per-try deadline: `timeouts.backendRequest`, capped by what is left of
 * `timeouts.request`. It sits just above `forward`, so each try gets its own; one timer enforces
 * whichever limit comes first, and the error says which one it was — a try that ran out of its
 * own time may be retried, one that ran out of the call's time may not.
 */
import { MeshError } from "../../../core/errors.ts";
import { withDeadline } from "../../../core/timeout.ts";
import type { AttemptLayer } from "../call.ts";

export const perTryTimeout: AttemptLayer = (call, attempt, next) => {
  const rule = call.rule!;
  const perTry = rule.backendTimeoutMs > 0 ? rule.backendTimeoutMs : Infinity;
  const remaining = call.deadline === undefined ? Infinity : call.deadline - call.now();
  if (perTry === Infinity && remaining === Infinity) return next();
  const requestLimited = remaining <= perTry;
  const ms = Math.max(Math.min(perTry, remaining), 1);
  return withDeadline(
    ms,
    (signal) => {
      attempt.signal = signal;
      return next();
    },
    () =>
      new MeshError(
        "upstream_timeout",
        requestLimited
          ? `no response within the request timeout of ${rule.requestTimeoutMs} ms`
          : `backend '${call.backend?.name}' did not answer within ${rule.backendTimeoutMs} ms`,
        { destination: call.destination, route: rule.id, retryable: !requestLimited },
      ),
  );
};
