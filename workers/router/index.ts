/**
 * Router Worker entry: wires the two ways into the mesh to one app.
 *  - `fetch` (HTTP entry): the destination is the first label of the Host header.
 *  - `Mesh` (entrypoint for callers' service bindings): the destination and caller come from the
 *    binding's props, so a caller's code keeps calling `env.PAYMENTS.fetch(...)` unchanged.
 */
import { WorkerEntrypoint } from "cloudflare:workers";
export { BackendState } from "../../durable-objects/backend-state.ts";
import { routerFetch } from "./app.ts";
import type { MeshProps } from "./call.ts";

export class Mesh extends WorkerEntrypoint<Env, MeshProps> {
  override fetch(request: Request): Promise<Response> {
    return Promise.resolve(routerFetch(request, this.env, this.ctx));
  }
}

export default {
  fetch(request, env, ctx) {
    return routerFetch(request, env, ctx);
  },
} satisfies ExportedHandler<Env>;
