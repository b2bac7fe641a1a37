/**
 * RequestMirror: a copy of the request goes to another Service, fire-and-forget through
 * `waitUntil`; its response is discarded and its failure never touches the real call. A request
 * body is split with `tee()` so both copies stream.
 */
import type { MirrorSpec } from "../../core/routing/route-table.ts";
import { pickWeighted } from "../../core/split/pick-backend.ts";
import type { MeshCall } from "./call.ts";
import { endpointUrl, sendToEndpoint } from "./endpoint.ts";
import { backendRefusal } from "./layers/authorize-backend.ts";

/**
 * Sends the mirrors whose share this request falls in — not for a call authorization has held
 * back (a preflight), nor to a Service whose own policies refuse this caller.
 */
export function sendMirrors(call: MeshCall, mirrors: readonly MirrorSpec[]): void {
  if (call.deferredRefusal) return;
  for (const mirror of mirrors) {
    const endpoints = mirror.service?.endpoints;
    if (!endpoints || endpoints.total <= 0) continue;
    if (backendRefusal(call, mirror.service!) !== undefined) continue;
    if (call.random() * mirror.denominator >= mirror.numerator) continue;
    const endpoint = pickWeighted(endpoints, call.random);
    if (!endpoint) continue;
    let body: ReadableStream | null = null;
    if (call.body) {
      const [keep, copy] = call.body.tee();
      call.body = keep;
      body = copy;
    }
    const request = new Request(endpointUrl(endpoint, call.url), {
      method: call.request.method,
      headers: new Headers(call.headers),
      body,
      redirect: "manual",
    });
    call.ctx.waitUntil(
      sendToEndpoint(call.env, endpoint, request)
        .then((response) => response.body?.cancel())
        .catch(() => undefined),
    );
  }
}
