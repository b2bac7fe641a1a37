/**
 * Applies a matched rule's filters: CORS answers preflights at once and labels cross-origin
 * responses; a FaultInjection (ExtensionRef) holds the call or answers it in the backend's place;
 * RequestRedirect answers at once; RequestHeaderModifier and URLRewrite shape the request;
 * RequestMirror copies it elsewhere without waiting; ResponseHeaderModifier shapes the answer on
 * the way back. An ExtensionRef that does not resolve answers 500, as the Gateway API says. The
 * same function serves backend-level filters (see traffic-split.ts).
 */
import { MeshError } from "../../../core/errors.ts";
import { isReservedPath } from "../../../core/request-target.ts";
import { decideFault } from "../../../core/resilience/fault.ts";
import { isPreflight, preflightHeaders, responseHeaders } from "../../../core/routing/cors.ts";
import { applyHeaderEdits, redirectLocation, rewriteUrl } from "../../../core/routing/filters.ts";
import type { CompiledFilters } from "../../../core/routing/route-table.ts";
import type { Layer, MeshCall } from "../call.ts";
import { sendMirrors } from "../mirror.ts";
import { withHeaderEdits, withHeaders } from "../response.ts";

/** Runs `filters` around `next`; shared by rule-level and backend-level filters. */
export function runFilters(
  call: MeshCall,
  filters: CompiledFilters,
  next: () => Promise<Response>,
): Promise<Response> {
  const cors = filters.cors;
  if (cors) {
    const origin = call.request.headers.get("origin");
    if (origin !== null) {
      // A preflight is the mesh's to answer: the backend never sees it.
      if (isPreflight(call.request.method, call.request.headers)) {
        const answer = new Response(null, {
          status: 200,
          headers: preflightHeaders(cors, call.request.headers),
        });
        return Promise.resolve(answer);
      }
      const added = responseHeaders(cors, origin);
      return applyFilters(call, filters, next).then((response) =>
        withHeaders(response, added, "Origin"),
      );
    }
  }
  return applyFilters(call, filters, next);
}

/** Header on a response the mesh delayed or answered in the backend's place. */
export const FAULT_HEADER = "x-mesh-fault";

function applyFilters(
  call: MeshCall,
  filters: CompiledFilters,
  next: () => Promise<Response>,
): Promise<Response> {
  if (filters.unresolved) {
    throw new MeshError("no_backend", `rule '${call.rule?.id}': ${filters.unresolved}`, {
      destination: call.destination,
      route: call.rule?.id,
    });
  }
  const fault = filters.fault;
  if (fault) {
    const decision = decideFault(fault, call.caller, call.request.headers, call.random);
    if (decision.delayMs > 0 || decision.abortStatus !== undefined) {
      call.faults.push({ name: fault.name, ...decision });
      const faulted = (): Promise<Response> => {
        if (decision.abortStatus !== undefined) {
          return Promise.resolve(
            new Response(`fault injected by the mesh (FaultInjection '${fault.name}')\n`, {
              status: decision.abortStatus,
              headers: { "content-type": "text/plain", [FAULT_HEADER]: "abort" },
            }),
          );
        }
        return applyShaping(call, filters, next).then((response) =>
          withHeaders(response, [[FAULT_HEADER, `delay=${decision.delayMs}ms`]]),
        );
      };
      if (decision.delayMs <= 0) return faulted();
      return new Promise((resolve) => setTimeout(resolve, decision.delayMs)).then(faulted);
    }
  }
  return applyShaping(call, filters, next);
}

/** The filters that shape the call and its answer (after any fault). */
function applyShaping(
  call: MeshCall,
  filters: CompiledFilters,
  next: () => Promise<Response>,
): Promise<Response> {
  if (filters.redirect) {
    const redirect = new Response(null, {
      status: filters.redirect.statusCode,
      headers: { location: redirectLocation(call.url, filters.redirect, call.match) },
    });
    return Promise.resolve(redirect);
  }
  if (filters.requestHeaders) applyHeaderEdits(call.headers, filters.requestHeaders);
  if (filters.rewrite) {
    const before = call.url.pathname;
    call.url = rewriteUrl(call.url, filters.rewrite, call.match);
    // /.mesh/ is reserved on every hop: a rewrite must not forward into it what the entry kept out.
    if (isReservedPath(call.url.pathname)) {
      throw new MeshError(
        "bad_request",
        `rewriting ${before} gives ${call.url.pathname}, which is reserved for the mesh (/.mesh/)`,
        { destination: call.destination, route: call.rule?.id },
      );
    }
    if (filters.rewrite.hostname !== undefined) call.headers.set("host", filters.rewrite.hostname);
  }
  if (filters.mirrors.length > 0) sendMirrors(call, filters.mirrors);
  const edits = filters.responseHeaders;
  return edits ? next().then((response) => withHeaderEdits(response, edits)) : next();
}

export const routeFilters: Layer = (call, next) => runFilters(call, call.rule!.filters, next);
