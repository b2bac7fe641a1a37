/**
 * The terminal layer: picks one of the backend Service's endpoints by its balancer (round robin,
 * random or PeakEWMA; another than earlier tries used, when there is one) and sends the request,
 * streaming the body both ways (and WebSocket upgrades through). Upstream redirects are passed
 * back, not followed. A thrown fetch (connection failure, a Worker that threw) is
 * `upstream_error` (502), which a retry may try again.
 */
import { MeshError } from "../../../core/errors.ts";
import { hasHopByHop, stripHopByHop } from "../../../core/http-headers.ts";
import type { AttemptLayer, MeshCall } from "../call.ts";
import { endpointUrl, sendToEndpoint } from "../endpoint.ts";
import { perTryPassport } from "./passport.ts";

export const forward: AttemptLayer = async (call, attempt) => {
  const service = call.backend!.service!;
  const state = call.backendState!;
  const balancer = service.policy.balancer;
  const endpoint = state.pickEndpoint(
    service.endpoints,
    balancer,
    attempt.avoid,
    call.random,
    call.now(),
  );
  if (!endpoint) {
    throw new MeshError(
      "no_backend",
      service.problems.length > 0
        ? `Service '${service.name}' has no usable endpoint: ${service.problems.join("; ")}`
        : `Service '${service.name}' has no endpoint with a weight above 0`,
      { destination: call.destination, route: call.rule?.id },
    );
  }
  attempt.record.endpoint = endpoint.name;
  const url = endpointUrl(endpoint, call.url);
  if (service.passport === "PerRequest") await perTryPassport(call, url);
  const request = new Request(url, {
    method: call.request.method,
    headers: call.headers,
    body: attempt.body,
    redirect: "manual",
    signal: attempt.signal,
  });
  const ewma = balancer.type === "PeakEWMA";
  if (ewma) state.sent(endpoint.name, call.now());
  let response: Response;
  try {
    response = await sendToEndpoint(call.env, endpoint, request);
  } catch (error) {
    if (ewma) answered(call, endpoint.name, attempt.record.startedAt, balancer.decayMs);
    if (attempt.signal?.aborted) throw attempt.signal.reason;
    throw new MeshError(
      "upstream_error",
      `sending to '${service.name}' (${endpoint.name}) failed: ${(error as Error).message}`,
      { destination: call.destination, route: call.rule?.id, cause: error, retryable: true },
    );
  }
  if (ewma) answered(call, endpoint.name, attempt.record.startedAt, balancer.decayMs);
  // An accepted WebSocket (101) is passed back as it is: the socket travels with the response.
  if (response.webSocket || !hasHopByHop(response.headers)) return response;
  const cleaned = new Response(response.body, response);
  stripHopByHop(cleaned.headers);
  return cleaned;
};

/** PeakEWMA: the try to `endpoint` is no longer in flight, and its latency counts. */
function answered(call: MeshCall, endpoint: string, startedAt: number, decayMs: number): void {
  const now = call.now();
  call.backendState!.answered(endpoint, now - startedAt, now, decayMs);
}
