/**
 * May this caller make this call? In order:
 *  1. what may have changed since the caller's token was verified and cached: revoked (by
 *     `jti` or subject, from the applied config), or bound to a client certificate this
 *     connection does not have (a call through a service binding never has one) —
 *     `unauthenticated`; a Worker attested by its binding whose subject is revoked outright,
 *     likewise;
 *  2. the destination's peer authentication: STRICT (the default) refuses a call with no
 *     verified caller (`unauthenticated`), PERMISSIVE lets it on, with no principal;
 *  3. its authorization policies, compiled with its routes: DENY, then ALLOW, then the mesh's
 *     default action (`forbidden`; core/authz). The path they match is the normalised one the
 *     routes match, so no spelling of a path gets past a DENY; a rewrite is checked again, and
 *     the backend's own policies too, once the backend is chosen (authorize-backend.ts).
 *
 * A CORS preflight carries no credentials: a refusal of one is held back, so the route's CORS
 * filter can answer it; if none does, authorize-backend.ts refuses it after all.
 *
 * Once allowed, the destination is told who called: `X-Mesh-Caller` (the verified SPIFFE ID) and
 * `X-Forwarded-Client-Cert` in Envoy's form — both stripped from what the caller sent
 * (request-context.ts), so only the mesh sets them.
 */
import { authorize as decide } from "../../../core/authz/authorization.ts";
import type { MeshError } from "../../../core/errors.ts";
import { spiffeId } from "../../../core/identity/names.ts";
import { isPreflight } from "../../../core/routing/cors.ts";
import type { Layer, MeshCall } from "../call.ts";
import {
  clientCertificate,
  noCertificateReason,
  refusal,
  type ClientCertificate,
} from "../identity/authenticator.ts";
import { refuse } from "../identity/refuse.ts";

export const authorize: Layer = (call, next) => {
  // Only the HTTP entry's request.cf is Cloudflare's; through any binding there is none.
  const certificate = clientCertificate(call.request, call.entry === "http");
  const refused = check(call, certificate);
  if (refused) {
    if (!isPreflight(call.request.method, call.request.headers)) throw refused;
    call.deferredRefusal = refused;
    return next();
  }
  forwardIdentity(call, certificate);
  return next();
};

/** The refusal of this call, or undefined when it may go on. */
function check(call: MeshCall, certificate: ClientCertificate | undefined): MeshError | undefined {
  const { revocations } = call.config;
  if (call.svid) {
    const reason = refusal(call.svid, certificate, revocations, () =>
      noCertificateReason(call.request, call.entry === "http"),
    );
    if (reason) return refuse(call, "unauthenticated", reason);
  } else if (call.principal !== undefined) {
    const reason = revocations.checkSubject(call.principal);
    if (reason) return refuse(call, "unauthenticated", reason);
  }
  const { security } = call.table!;
  if (call.principal === undefined && security.peerMode === "STRICT") {
    return refuse(
      call,
      "unauthenticated",
      `no verified caller, and '${call.destination}' takes only authenticated calls (peer authentication ${security.peerPolicy ?? "default"}: STRICT)`,
    );
  }
  const decision = decide(security.authorization, {
    principal: call.principal,
    // Fetch upper-cases only the six common methods; `patch` must not slip past a DENY on PATCH.
    method: call.request.method.toUpperCase(),
    path: call.url.pathname,
    headers: call.request.headers,
  });
  call.authorization = decision;
  call.authorizedPath = call.url.pathname;
  return decision.allowed ? undefined : refuse(call, "forbidden", decision.reason);
}

/** `X-Mesh-Caller` and `X-Forwarded-Client-Cert` for the destination. */
function forwardIdentity(call: MeshCall, certificate: ClientCertificate | undefined): void {
  if (call.principal === undefined && !certificate) return;
  if (call.principal !== undefined) call.headers.set("x-mesh-caller", call.principal);
  let xfcc = `By=${spiffeId(call.identity.trustDomain, call.destination)}`;
  if (certificate) {
    xfcc += `;Hash=${certificate.hash}`;
    if (certificate.subject) xfcc += `;Subject="${certificate.subject.replace(/["\\]/g, "\\$&")}"`;
  }
  if (call.principal !== undefined) xfcc += `;URI=${call.principal}`;
  call.headers.set("x-forwarded-client-cert", xfcc);
}
