/**
 * Router Worker entry: wires the two ways into the mesh to one app, each saying which it is —
 * what a call may be trusted with follows from the entrypoint, never from its props.
 *  - `fetch` (HTTP entry): the destination is the first label of the Host header; `request.cf`
 *    is Cloudflare's, so a client certificate it reports counts.
 *  - `Mesh` (entrypoint for callers' service bindings): the destination and caller come from the
 *    binding's props, so a caller's code keeps calling `env.PAYMENTS.fetch(...)` unchanged. The
 *    calling Worker builds `request.cf` itself, so no certificate counts here, props or none.
 */
import { WorkerEntrypoint } from "cloudflare:workers";
export { BackendState } from "../../durable-objects/backend-state.ts";
import { routerFetch } from "./app.ts";
import type { MeshProps } from "./call.ts";

export class Mesh extends WorkerEntrypoint<Env, MeshProps> {
  override fetch(request: Request): Promise<Response> {
    return Promise.resolve(routerFetch(request, this.env, this.ctx, "binding"));
  }
}

export default {
  fetch(request, env, ctx) {
    return routerFetch(request, env, ctx, "http");
  },
} satisfies ExportedHandler<Env>;
