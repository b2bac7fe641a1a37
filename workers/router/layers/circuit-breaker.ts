/**
 * The circuit breaker of the backend Service a try goes to (when its BackendPolicy sets one):
 * refuses the try with `circuit_open` (503) while the breaker is open, lets a bounded number of
 * probes through while half-open, and records how each try ended. A failure is a 5xx response,
 * or a try that could not reach the upstream, threw, or timed out; anything else is a success.
 * It sits below the retry layer, so each try counts, and above the per-try timeout, so a try
 * that timed out counts as a failure.
 */
import { MeshError } from "../../../core/errors.ts";
import { FAILURE, SUCCESS, type Outcomes } from "../../../core/resilience/breaker.ts";
import type { AttemptLayer, MeshCall } from "../call.ts";

/** Records a try's outcome locally, and queues it for the backend's Durable Object. */
function recordOutcome(call: MeshCall, outcomes: Outcomes): void {
  const service = call.backend!.service!;
  const policy = service.breaker!;
  call.breakers.record(service.name, policy, outcomes, call.now(), call.random);
  call.sync.note(service.name, policy, outcomes);
  call.sync.schedule(call.env.BACKEND_STATE, call.breakers, call.now, (p) => call.ctx.waitUntil(p));
}

export const circuitBreaker: AttemptLayer = async (call, _attempt, next) => {
  const service = call.backend!.service!;
  const policy = service.breaker;
  if (!policy) return next();
  if (!call.breakers.admit(service.name, policy, call.now())) {
    const state = call.breakers.state(service.name, call.now());
    throw new MeshError(
      "circuit_open",
      state.kind === "open"
        ? `the circuit breaker of Service '${service.name}' is open until ${new Date(state.until).toISOString()} (trip ${state.trips} in a row)`
        : `the circuit breaker of Service '${service.name}' is half-open and its probes are in flight`,
      { destination: call.destination, route: call.rule?.id },
    );
  }
  let response: Response;
  try {
    response = await next();
  } catch (error) {
    if (
      error instanceof MeshError &&
      (error.code === "upstream_error" || error.code === "upstream_timeout")
    ) {
      recordOutcome(call, FAILURE);
    }
    throw error;
  }
  recordOutcome(call, response.status >= 500 ? FAILURE : SUCCESS);
  return response;
};
