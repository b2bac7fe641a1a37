/**
 * Request id, trace context and header hygiene: the first layer, so that everything below —
 * including the errors the mesh produces — carries the same request id and span.
 *
 * Identity headers arriving from a caller are never trusted: `X-Mesh-Caller`,
 * `X-Forwarded-Client-Cert` and `X-Mesh-Passport` are stripped and only the mesh sets them again
 * (here, from the caller a service binding attests).
 */
import { stripHopByHop } from "../../../core/http-headers.ts";
import {
  continueRequestId,
  continueTrace,
  formatTraceparent,
} from "../../../core/trace-context.ts";
import type { Layer } from "../call.ts";

const IDENTITY_HEADERS = ["x-mesh-caller", "x-forwarded-client-cert", "x-mesh-passport"];

export const requestContext: Layer = (call, next) => {
  const headers = call.headers;
  stripHopByHop(headers);
  for (const name of IDENTITY_HEADERS) headers.delete(name);

  call.requestId = continueRequestId(headers.get("x-request-id"), call.random);
  headers.set("x-request-id", call.requestId);

  const trace = continueTrace(headers.get("traceparent"), call.random);
  call.trace = trace;
  headers.set("traceparent", formatTraceparent(trace));
  // tracestate belongs to the trace it came with; a restarted trace drops it.
  if (!trace.continued) headers.delete("tracestate");

  if (call.caller) {
    headers.set("x-mesh-caller", `spiffe://${call.env.TRUST_DOMAIN}/${call.caller}`);
  }
  return next();
};
