/**
 * `X-Mesh-Passport`: the verified caller, signed for the Service that receives the call
 * (identity/passports.ts) — its audience is that Service alone, so the passport is worth nothing
 * at any other. Runs once the backend is chosen. A Shared passport (the default) is one per
 * caller and backend, reused by every try; a Service with `passport.mode: PerRequest` gets one
 * per try, signed by forward.ts once the endpoint is known and bound to the method, the path the
 * endpoint receives and the request id. A call with no verified caller gets none; so does one
 * made while the router has no certified key (the identity Worker unreachable), which
 * `/.mesh/status` reports.
 */
import { spiffeId } from "../../../core/identity/names.ts";
import type { Layer, MeshCall } from "../call.ts";

const HEADER = "x-mesh-passport";

export const passport: Layer = (call, next) => {
  const backend = call.backend?.service;
  const subject = call.principal;
  if (subject === undefined || backend === undefined) return next();
  if (backend.passport === "PerRequest") return next(); // forward.ts signs one per try
  const { passports, trustDomain } = call.identity;
  const cacheKey = `${subject}\n${backend.name}`;
  const cached = passports.cachedShared(cacheKey, call.now());
  if (cached !== undefined) {
    call.headers.set(HEADER, cached);
    return next();
  }
  const audience = [spiffeId(trustDomain, backend.name)];
  return passports
    .sign({ subject, audience }, cacheKey, (p) => call.ctx.waitUntil(p))
    .then((token) => {
      if (token !== undefined) call.headers.set(HEADER, token);
      return next();
    });
};

/**
 * A PerRequest backend's passport for one try, sent to `url` (the endpoint's: for a URL endpoint
 * its base path included, the path the destination sees).
 */
export async function perTryPassport(call: MeshCall, url: URL): Promise<void> {
  const backend = call.backend?.service;
  const subject = call.principal;
  if (subject === undefined || backend?.passport !== "PerRequest") return;
  const token = await call.identity.passports.sign(
    {
      subject,
      audience: [spiffeId(call.identity.trustDomain, backend.name)],
      request: {
        method: call.request.method.toUpperCase(),
        path: url.pathname,
        requestId: call.requestId,
      },
    },
    undefined,
    (p) => call.ctx.waitUntil(p),
  );
  if (token !== undefined) call.headers.set(HEADER, token);
  else call.headers.delete(HEADER);
}
