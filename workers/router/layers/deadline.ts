/**
 * The overall deadline (`timeouts.request`): everything below — later, every retry — must
 * produce response headers in time, or the call ends with `upstream_timeout` (504).
 */
import { MeshError } from "../../../core/errors.ts";
import { withDeadline } from "../../../core/timeout.ts";
import type { Layer } from "../call.ts";

export const deadline: Layer = (call, next) => {
  const ms = call.rule!.requestTimeoutMs;
  if (ms <= 0) return next();
  call.deadline = call.startedAt + ms;
  return withDeadline(
    ms,
    () => next(),
    () =>
      new MeshError("upstream_timeout", `no response within the request timeout of ${ms} ms`, {
        destination: call.destination,
        route: call.rule?.id,
      }),
  );
};
