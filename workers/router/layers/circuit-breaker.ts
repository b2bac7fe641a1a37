/**
 * The circuit breaker of the backend Service a try goes to (when its BackendPolicy sets one):
 * refuses the try with `circuit_open` (503) while the breaker is open, and lets a bounded number
 * of probes through while half-open. It only asks; how each try ended is recorded once the call
 * is over, by the outcome stage (outcome.ts), which feeds the breaker. A backend that outlier
 * detection keeps in its split although its breaker is open (its cap, or fail-open) is not asked.
 */
import { MeshError } from "../../../core/errors.ts";
import type { AttemptLayer } from "../call.ts";

export const circuitBreaker: AttemptLayer = async (call, attempt, next) => {
  const service = call.backend!.service!;
  const policy = service.policy.breaker;
  if (!policy || call.breakerBypass) return next();
  const state = call.backendState!;
  const admitted = state.admit(policy, call.now());
  if (admitted !== "refuse") {
    // A probe's success is what closes a half-open breaker (here and in the mesh).
    attempt.record.probe = admitted === "probe";
    return next();
  }
  const s = state.breaker(call.now());
  throw new MeshError(
    "circuit_open",
    s.kind === "open"
      ? `the circuit breaker of Service '${service.name}' is open until ${new Date(s.until).toISOString()} (trip ${s.trips} in a row)`
      : `the circuit breaker of Service '${service.name}' is half-open and its probes are in flight`,
    {
      destination: call.destination,
      route: call.rule?.id,
      // Until it half-opens (at least a second: Retry-After counts whole seconds).
      retryAfterSeconds:
        s.kind === "open" ? Math.max(1, Math.ceil((s.until - call.now()) / 1000)) : 1,
    },
  );
};
