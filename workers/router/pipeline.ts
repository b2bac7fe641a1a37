/**
 * The data plane, in order. Every call through the mesh passes these layers top to bottom; each
 * does one thing and calls the next (or answers, or throws a MeshError that `rescue.ts` turns
 * into the contract's error response). Below the retry layer, the layers work on one try of the
 * call at a time (an `Attempt`), and run again for each retry. When the answer is known —
 * whichever layer gave it — the outcome stage (outcome.ts) records one outcome for the call and
 * feeds the isolate's breakers and latency estimates from it. Read this list to learn the router.
 */
import type { Attempt, AttemptLayer, Layer, MeshCall } from "./call.ts";
import { authenticate } from "./layers/authenticate.ts";
import { authorize } from "./layers/authorize.ts";
import { authorizeBackend } from "./layers/authorize-backend.ts";
import { circuitBreaker } from "./layers/circuit-breaker.ts";
import { deadline } from "./layers/deadline.ts";
import { forward } from "./layers/forward.ts";
import { passport } from "./layers/passport.ts";
import { perTryTimeout } from "./layers/per-try-timeout.ts";
import { rateLimit } from "./layers/rate-limit.ts";
import { requestContext } from "./layers/request-context.ts";
import { resolveDestination } from "./layers/resolve-destination.ts";
import { retry } from "./layers/retry.ts";
import { routeFilters } from "./layers/route-filters.ts";
import { routeMatch } from "./layers/route-match.ts";
import { trafficSplit } from "./layers/traffic-split.ts";

/** One try: what runs again on every retry. */
export const ATTEMPT: readonly AttemptLayer[] = [
  // The backend's circuit breaker: refuses the try while open, counts how it ended.
  circuitBreaker,
  // Each try's deadline (timeouts.backendRequest, capped by what is left of the call's).
  perTryTimeout,
  // Pick an endpoint of the backend Service (another than earlier tries used) and send.
  forward,
];

export const PIPELINE: readonly Layer[] = [
  // Request id, trace context and identity-header stripping first, so every outcome below
  // (mesh errors included) is correlated and no forged identity header gets past.
  requestContext,
  // Who is calling: the binding's props, or a verified JWT-SVID (cached once verified); a bad
  // token is refused before the destination is looked up.
  authenticate,
  // The destination's compiled routes, from isolate memory (KV only on a cold isolate), with
  // its policies and the applied version's revocations.
  resolveDestination,
  // Revocation and certificate binding, peer authentication (STRICT or PERMISSIVE), then DENY,
  // ALLOW and the mesh's default; the destination is told who called (X-Mesh-Caller, XFCC).
  authorize,
  // The destination's rate limits (per caller, then in total), before any other work.
  rateLimit,
  // Gateway API precedence picks one rule; no rule is `no_route`.
  routeMatch,
  // The rule's filters: CORS preflights and redirects answer here; header edits, rewrites and
  // mirrors shape the call.
  routeFilters,
  // Weighted, pinned or sticky choice of backend — open breakers ejected or failed over — then
  // that backend's own filters.
  trafficSplit,
  // Authorization again where routing changed the call: a rewritten path, a backend Service
  // with policies of its own; a preflight no CORS filter answered is refused here.
  authorizeBackend,
  // The caller's passport for the chosen backend, signed in the isolate (reused by default).
  passport,
  // The whole call's deadline (timeouts.request), around every try and backoff below it.
  deadline,
  // Tries again what failed, within the policy, the budget and the deadline; then one try.
  retry(composeAttempt(ATTEMPT)),
];

/** Chains layers into one function from call to response. */
export function compose(layers: readonly Layer[]): (call: MeshCall) => Promise<Response> {
  return (call) => {
    const dispatch = (i: number): Promise<Response> => {
      const layer = layers[i];
      if (!layer) return Promise.reject(new Error("the pipeline ended without a terminal layer"));
      return layer(call, () => dispatch(i + 1));
    };
    return dispatch(0);
  };
}

/** Chains the layers of one try into one function from (call, attempt) to response. */
export function composeAttempt(
  layers: readonly AttemptLayer[],
): (call: MeshCall, attempt: Attempt) => Promise<Response> {
  return (call, attempt) => {
    const dispatch = (i: number): Promise<Response> => {
      const layer = layers[i];
      if (!layer) return Promise.reject(new Error("a try ended without a terminal layer"));
      return layer(call, attempt, () => dispatch(i + 1));
    };
    return dispatch(0);
  };
}

export const runPipeline = compose(PIPELINE);
