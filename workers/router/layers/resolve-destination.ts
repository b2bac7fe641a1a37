/**
 * Finds the destination's compiled route table. Warm, this is a map lookup; only an isolate's
 * first call for a destination waits for KV (see config-cache.ts).
 */
import { MeshError } from "../../../core/errors.ts";
import type { Layer } from "../call.ts";

export const resolveDestination: Layer = async (call, next) => {
  const destination = call.destination;
  if (!destination) {
    throw new MeshError(
      "no_route",
      call.entry === "http"
        ? "the Host header must name the destination service (for example 'payments' or 'payments.mesh')"
        : "the service binding's props must name the destination ({ target: '<service>' })",
    );
  }
  const found = call.config.tableFor(destination, (p) => call.ctx.waitUntil(p));
  const table = found instanceof Promise ? await found : found;
  if (!table) {
    const loadError = call.config.errorFor(destination);
    throw new MeshError(
      "no_route",
      loadError
        ? `no usable config for service '${destination}': ${loadError.message}`
        : `service '${destination}' is not in the mesh`,
      { destination },
    );
  }
  call.table = table;
  return next();
};
