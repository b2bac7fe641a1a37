/**
 * Sending a request to one endpoint: a router service binding, or a URL outside Workers
 * (a hybrid workload), where the request path is appended to the endpoint's base path.
 */
import type { CompiledEndpoint } from "../../core/routing/route-table.ts";

/** The URL a request for `url` takes at `endpoint`. */
export function endpointUrl(endpoint: CompiledEndpoint, url: URL): URL {
  if (endpoint.target.kind === "binding") return url;
  const base = endpoint.target.base;
  const target = new URL(base);
  const basePath = base.pathname.endsWith("/") ? base.pathname.slice(0, -1) : base.pathname;
  target.pathname = basePath + url.pathname;
  target.search = url.search;
  return target;
}

/** Sends `request` (already addressed with `endpointUrl`) to the endpoint. */
export function sendToEndpoint(
  env: Env,
  endpoint: CompiledEndpoint,
  request: Request,
): Promise<Response> {
  if (endpoint.target.kind === "binding") {
    const binding = (env as unknown as Record<string, Fetcher | undefined>)[
      endpoint.target.binding
    ];
    // Compilation left out endpoints whose binding is missing, so this holds.
    return binding!.fetch(request);
  }
  return fetch(request);
}
