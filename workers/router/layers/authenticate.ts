/**
 * Who is calling. Through the `Mesh` entrypoint the caller is the one its service binding's
 * props name — the account's own deploy config attests it. Over HTTP, and through a `Mesh`
 * binding whose props name no caller, it is the one a JWT-SVID in `X-Mesh-SVID` names, verified
 * against the mesh's keys (identity/authenticator.ts); through a binding with a caller a token
 * may be sent too, and then it must name the same caller. A token that is present and fails is
 * `unauthenticated` whatever the destination's mode — refused here, before the destination is
 * looked up, so a bad token learns nothing about which Services exist. What can change while a
 * verified token is cached (revocation, the client certificate) is checked by authorize.ts once
 * the config is loaded; a call with no caller at all goes on, and the destination's peer
 * authentication decides there.
 *
 * Warm, this layer is synchronous: a token this isolate verified before is a map lookup (which
 * may hand a JWKS refresh to `waitUntil`, never waiting for it).
 */
import { spiffeId } from "../../../core/identity/names.ts";
import { SvidError, type VerifiedSvid } from "../../../core/identity/svid.ts";
import type { Layer, MeshCall } from "../call.ts";
import { refuse } from "../identity/refuse.ts";

/** The request header that carries a caller's JWT-SVID. */
export const SVID_HEADER = "x-mesh-svid";

export const authenticate: Layer = (call, next) => {
  const token = call.request.headers.get(SVID_HEADER);
  if (token === null) {
    if (call.caller !== undefined) {
      call.principal = spiffeId(call.identity.trustDomain, call.caller);
      call.authenticatedBy = "binding";
    }
    return next();
  }
  const { authenticator } = call.identity;
  const waitUntil = (p: Promise<unknown>) => call.ctx.waitUntil(p);
  const cached = authenticator.cached(token, waitUntil);
  if (cached) {
    accept(call, cached);
    return next();
  }
  return authenticator.verify(token, waitUntil).then(
    (svid) => {
      accept(call, svid);
      return next();
    },
    (error: unknown) => {
      throw refuse(
        call,
        "unauthenticated",
        error instanceof SvidError ? error.reason : `verification failed: ${String(error)}`,
      );
    },
  );
};

function accept(call: MeshCall, svid: VerifiedSvid): void {
  if (call.caller !== undefined && call.caller !== svid.service) {
    throw refuse(
      call,
      "unauthenticated",
      `the binding's props name caller '${call.caller}', its token '${svid.subject}'`,
    );
  }
  call.caller = svid.service;
  call.principal = svid.subject;
  call.authenticatedBy = "svid";
  call.svid = svid;
}
