/**
 * Finds the destination's compiled route table. Warm, this is a map lookup and the layer stays
 * synchronous; only an isolate's first call for a destination waits for KV (config-cache.ts).
 */
import { MeshError } from "../../../core/errors.ts";
import type { RouteTable } from "../../../core/routing/route-table.ts";
import type { Layer, MeshCall } from "../call.ts";

function useTable(call: MeshCall, table: RouteTable | undefined, next: () => Promise<Response>) {
  if (!table) {
    const loadError = call.config.errorFor(call.destination);
    throw new MeshError(
      "no_route",
      loadError
        ? `no usable config for service '${call.destination}': ${loadError.message}`
        : `service '${call.destination}' is not in the mesh`,
      { destination: call.destination },
    );
  }
  call.table = table;
  return next();
}

export const resolveDestination: Layer = (call, next) => {
  if (!call.destination) {
    throw new MeshError(
      "no_route",
      call.entry === "http"
        ? "the Host header must name the destination service (for example 'payments' or 'payments.mesh')"
        : "the service binding's props must name the destination ({ target: '<service>' })",
    );
  }
  const found = call.config.tableFor(call.destination, (p) => call.ctx.waitUntil(p));
  return found instanceof Promise
    ? found.then((table) => useTable(call, table, next))
    : useTable(call, found, next);
};
