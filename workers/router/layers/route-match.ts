/**
 * Chooses the rule: the highest-precedence HTTPRoute match (Gateway API order, compiled ahead of
 * time), or — for a Service with no routes attached — its own endpoints.
 */
import { MeshError } from "../../../core/errors.ts";
import { matchRoute } from "../../../core/routing/route-table.ts";
import type { Layer } from "../call.ts";

export const routeMatch: Layer = (call, next) => {
  const table = call.table!;
  if (!table.hasRoutes) {
    call.rule = table.defaultRule;
    return next();
  }
  const match = matchRoute(table, {
    method: call.request.method,
    path: call.url.pathname,
    headers: call.request.headers,
    // Parsed only if a match has query conditions.
    query: { get: (name) => call.url.searchParams.get(name) },
  });
  if (!match) {
    throw new MeshError(
      "no_route",
      `no HTTPRoute rule of service '${call.destination}' matches ${call.request.method} ${call.url.pathname}`,
      { destination: call.destination },
    );
  }
  call.match = match;
  call.rule = match.rule;
  return next();
};
