/**
 * `X-Mesh-Passport`: the verified caller, signed for the Service that receives the call
 * (identity/passports.ts). Runs once the backend is chosen — the audience is the destination and
 * that backend — and before the retries, which all carry the same passport. A call with no
 * verified caller gets none; so does one made while the router has no certified key (the
 * identity Worker unreachable), which `/.mesh/status` reports.
 */
import { spiffeId } from "../../../core/identity/names.ts";
import type { Layer } from "../call.ts";

const HEADER = "x-mesh-passport";

export const passport: Layer = (call, next) => {
  const backend = call.backend?.service;
  const subject = call.principal;
  if (subject === undefined || backend === undefined) return next();
  const { passports, trustDomain } = call.identity;
  const audience =
    backend.name === call.destination
      ? [spiffeId(trustDomain, call.destination)]
      : [spiffeId(trustDomain, call.destination), spiffeId(trustDomain, backend.name)];
  let cacheKey: string | undefined;
  if (backend.passport === "Shared") {
    cacheKey = `${subject}\n${call.destination}\n${backend.name}`;
    const cached = passports.cachedShared(cacheKey, call.now());
    if (cached !== undefined) {
      call.headers.set(HEADER, cached);
      return next();
    }
  }
  const request =
    backend.passport === "PerRequest"
      ? { method: call.request.method, path: call.url.pathname, requestId: call.requestId }
      : undefined;
  return passports
    .sign({ subject, audience, ...(request ? { request } : {}) }, cacheKey, (p) =>
      call.ctx.waitUntil(p),
    )
    .then((token) => {
      if (token !== undefined) call.headers.set(HEADER, token);
      return next();
    });
};
