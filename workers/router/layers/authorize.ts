/**
 * May this caller make this call? First the destination's peer authentication: STRICT (the
 * default) refuses a call with no verified caller (`unauthenticated`), PERMISSIVE lets it on,
 * with no principal. Then its authorization policies, compiled with its routes: DENY policies,
 * then ALLOW ones, then the mesh's default action (`forbidden` when refused; core/authz). The
 * path they match is the normalised one the routes match, so no spelling of a path gets past a
 * DENY.
 *
 * Once allowed, the destination is told who called: `X-Mesh-Caller` (the verified SPIFFE ID) and
 * `X-Forwarded-Client-Cert` in Envoy's form — both stripped from what the caller sent
 * (request-context.ts), so only the mesh sets them.
 */
import { authorize as decide } from "../../../core/authz/authorization.ts";
import { spiffeId } from "../../../core/identity/names.ts";
import type { Layer, MeshCall } from "../call.ts";
import { refuse } from "../identity/refuse.ts";

export const authorize: Layer = (call, next) => {
  const { security } = call.table!;
  if (call.principal === undefined && security.peerMode === "STRICT") {
    throw refuse(
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
  if (!decision.allowed) throw refuse(call, "forbidden", decision.reason);
  forwardIdentity(call);
  return next();
};

/** `X-Mesh-Caller` and `X-Forwarded-Client-Cert` for the destination. */
function forwardIdentity(call: MeshCall): void {
  const certificate = clientCertificate(call.request);
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

/** The verified client certificate of the connection, as XFCC describes it. */
function clientCertificate(request: Request): { hash: string; subject: string } | undefined {
  const auth = (request as Request & { cf?: { tlsClientAuth?: Record<string, unknown> } }).cf
    ?.tlsClientAuth;
  if (!auth || auth.certPresented !== "1" || auth.certVerified !== "SUCCESS") return undefined;
  const hash = auth.certFingerprintSHA256;
  if (typeof hash !== "string" || !/^[0-9a-fA-F]{64}$/.test(hash)) return undefined;
  const subject = typeof auth.certSubjectDN === "string" ? auth.certSubjectDN : "";
  return { hash: hash.toLowerCase(), subject };
}
