/**
 * The per-try deadline: `timeouts.backendRequest` — fixed, or `auto`, learned from the backend's
 * latency across the mesh — capped by what is left of `timeouts.request`. It sits just above
 * `forward`, so each try gets its own; one timer enforces whichever limit comes first, and the
 * error says which one it was — a try that ran out of its own time may be retried, one that ran
 * out of the call's time may not.
 */
import { MeshError } from "../../../core/errors.ts";
import { withDeadline } from "../../../core/timeout.ts";
import type { AttemptLayer } from "../call.ts";

export const perTryTimeout: AttemptLayer = (call, attempt, next) => {
  const policy = call.backend!.policy;
  const auto = policy.autoTimeout;
  const perTry = auto
    ? call.backendState!.autoTimeoutMs(auto, call.now())
    : policy.backendTimeoutMs > 0
      ? policy.backendTimeoutMs
      : Infinity;
  attempt.record.learnsLatency = auto !== undefined;
  const remaining = call.deadline === undefined ? Infinity : call.deadline - call.now();
  if (perTry === Infinity && remaining === Infinity) return next();
  const requestLimited = remaining <= perTry;
  if (remaining <= 0) {
    // Nothing left of the call's time (a delay before the try ate it): not sent at all.
    throw new MeshError(
      "upstream_timeout",
      `no response within the request timeout of ${policy.requestTimeoutMs} ms`,
      { destination: call.destination, route: call.rule?.id },
    );
  }
  const ms = Math.min(perTry, remaining);
  attempt.record.timeoutMs = ms;
  attempt.record.deadlineLimited = requestLimited;
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
          ? `no response within the request timeout of ${policy.requestTimeoutMs} ms`
          : `backend '${call.backend?.name}' did not answer within ${perTry} ms${auto ? " (learned from its latency)" : ""}`,
        { destination: call.destination, route: call.rule?.id, retryable: !requestLimited },
      ),
  );
};
