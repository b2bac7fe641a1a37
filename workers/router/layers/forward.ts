/**
 * The terminal layer: picks one of the backend Service's endpoints (another than earlier tries
 * used, when there is one) and sends the request, streaming the body both ways (and WebSocket
 * upgrades through). Upstream redirects are passed back, not followed. A thrown fetch
 * (connection failure, a Worker that threw) is `upstream_error` (502), which a retry may try
 * again.
 */
import { MeshError } from "../../../core/errors.ts";
import { hasHopByHop, stripHopByHop } from "../../../core/http-headers.ts";
import type { CompiledEndpoint } from "../../../core/routing/route-table.ts";
import { pickWeighted, type SplitTable } from "../../../core/split/pick-backend.ts";
import type { AttemptLayer, MeshCall } from "../call.ts";
import { endpointUrl, sendToEndpoint } from "../endpoint.ts";

/** An endpoint by weight, avoiding those in `avoid` while any other has weight. */
function pickEndpoint(
  endpoints: SplitTable<CompiledEndpoint>,
  avoid: ReadonlySet<string>,
  call: MeshCall,
): CompiledEndpoint | undefined {
  if (avoid.size > 0 && endpoints.items.length > 1) {
    const others = endpoints.items.filter((e) => !avoid.has(e.name) && e.weight > 0);
    const total = others.reduce((sum, e) => sum + e.weight, 0);
    if (total > 0) {
      let point = call.random() * total;
      for (const endpoint of others) {
        point -= endpoint.weight;
        if (point < 0) return endpoint;
      }
      return others.at(-1);
    }
  }
  return pickWeighted(endpoints, call.random);
}

export const forward: AttemptLayer = async (call, attempt) => {
  const service = call.backend!.service!;
  const endpoint = pickEndpoint(service.endpoints, attempt.avoid, call);
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
  const request = new Request(endpointUrl(endpoint, call.url), {
    method: call.request.method,
    headers: call.headers,
    body: attempt.body,
    redirect: "manual",
    signal: attempt.signal,
  });
  let response: Response;
  try {
    response = await sendToEndpoint(call.env, endpoint, request);
  } catch (error) {
    if (attempt.signal?.aborted) throw attempt.signal.reason;
    throw new MeshError(
      "upstream_error",
      `sending to '${service.name}' (${endpoint.name}) failed: ${(error as Error).message}`,
      { destination: call.destination, route: call.rule?.id, cause: error, retryable: true },
    );
  }
  // An accepted WebSocket (101) is passed back as it is: the socket travels with the response.
  if (response.webSocket || !hasHopByHop(response.headers)) return response;
  const cleaned = new Response(response.body, response);
  stripHopByHop(cleaned.headers);
  return cleaned;
};
