/**
 * Request id, trace context and header hygiene: the first layer, so that everything below —
 * including the errors the mesh produces — carries the same request id and span.
 *
 * The headers to send downstream are built here in one pass over the caller's: hop-by-hop
 * headers are dropped, and identity headers arriving from a caller are never trusted —
 * `X-Mesh-Caller`, `X-Forwarded-Client-Cert` and `X-Mesh-Passport` are dropped and only the mesh
 * sets them again (authorize.ts and passport.ts, for the verified caller). `X-Mesh-SVID` is the
 * caller's credential for the router (authenticate.ts) and `X-Mesh-Backend` the mesh's own
 * request (a pin, read from the caller's headers by trafficSplit): neither goes anywhere,
 * mirrors included.
 */
import { copyForwardable } from "../../../core/http-headers.ts";
import {
  continueRequestId,
  continueTrace,
  formatTraceparent,
} from "../../../core/trace-context.ts";
import type { Layer } from "../call.ts";

const NOT_FORWARDED: ReadonlySet<string> = new Set([
  "x-mesh-caller",
  "x-forwarded-client-cert",
  "x-mesh-passport",
  "x-mesh-backend",
  "x-mesh-svid",
]);

export const requestContext: Layer = (call, next) => {
  const headers = copyForwardable(call.request.headers, NOT_FORWARDED);
  call.headers = headers;

  call.requestId = continueRequestId(headers.get("x-request-id"), call.random);
  headers.set("x-request-id", call.requestId);

  const trace = continueTrace(headers.get("traceparent"), call.random);
  call.trace = trace;
  headers.set("traceparent", formatTraceparent(trace));
  // tracestate belongs to the trace it came with; a restarted trace drops it.
  if (!trace.continued) headers.delete("tracestate");

  // Upgrade is hop-by-hop, but a WebSocket upgrade is the one the mesh carries end to end:
  // Workers hand the upgraded socket back through the binding's response.
  if (call.request.headers.get("upgrade")?.toLowerCase() === "websocket") {
    headers.set("upgrade", "websocket");
  }

  return next();
};
