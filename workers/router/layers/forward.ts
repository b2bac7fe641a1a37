/**
 * The terminal layer: picks one of the backend Service's endpoints and sends the request,
 * streaming the body both ways (and WebSocket upgrades through). Upstream redirects are passed
 * back, not followed. A thrown
 * fetch (connection failure, missing Worker) is `upstream_error` (502).
 */
import { MeshError } from "../../../core/errors.ts";
import { hasHopByHop, stripHopByHop } from "../../../core/http-headers.ts";
import { pickWeighted } from "../../../core/split/pick-backend.ts";
import type { Layer } from "../call.ts";
import { endpointUrl, sendToEndpoint } from "../endpoint.ts";

export const forward: Layer = async (call) => {
  const service = call.backend!.service!;
  const endpoint = pickWeighted(service.endpoints, call.random);
  if (!endpoint) {
    throw new MeshError(
      "no_backend",
      service.problems.length > 0
        ? `Service '${service.name}' has no usable endpoint: ${service.problems.join("; ")}`
        : `Service '${service.name}' has no endpoint with a weight above 0`,
      { destination: call.destination, route: call.rule?.id },
    );
  }
  call.endpoint = endpoint;
  call.attempts++;
  const request = new Request(endpointUrl(endpoint, call.url), {
    method: call.request.method,
    headers: call.headers,
    body: call.body,
    redirect: "manual",
    signal: call.attemptSignal,
  });
  let response: Response;
  try {
    response = await sendToEndpoint(call.env, endpoint, request);
  } catch (error) {
    if (call.attemptSignal?.aborted) throw call.attemptSignal.reason;
    throw new MeshError(
      "upstream_error",
      `sending to '${service.name}' (${endpoint.name}) failed: ${(error as Error).message}`,
      { destination: call.destination, route: call.rule?.id, cause: error },
    );
  }
  // An accepted WebSocket (101) is passed back as it is: the socket travels with the response.
  if (response.webSocket || !hasHopByHop(response.headers)) return response;
  const cleaned = new Response(response.body, response);
  stripHopByHop(cleaned.headers);
  return cleaned;
};
