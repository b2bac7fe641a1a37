/**
 * Verifying `X-Mesh-Passport` in a destination Worker — offline, against the mesh's JWKS — in one
 * line:
 *
 *   const caller = await verifyPassport(request, { identity: env.IDENTITY, audience: "spiffe://meshwork.local/payments" });
 *
 * `caller.subject` is then the verified SPIFFE ID of the service that called. A passport is signed
 * by a router isolate's own key, which the identity Worker certified with the mesh's key; the
 * certificate rides in the passport's protected header (`mesh_router_cert`). So this checks the
 * certificate against the JWKS, then the passport against the certified key: type, issuer,
 * audience, expiry, and — for a per-request passport — the request's method and path, and that
 * its `jti` was not seen before by this isolate. The JWKS and every verified certificate are
 * cached in the isolate; only a first call (or a key it does not know, at most every 30 s) waits
 * for the JWKS.
 *
 * Import it from this file (it depends on `jose` only).
 */
import { decodeProtectedHeader, importJWK, jwtVerify, type JWTPayload } from "jose";

export interface PassportOptions {
  /** Where the mesh's JWKS comes from: a service binding to the identity Worker, or its URL. */
  identity: { fetch(input: string): Promise<Response> } | string;
  /**
   * This service's SPIFFE ID — the Service the mesh routes to it as — or several (a Worker that
   * serves as more than one Service); the passport's audience must hold one of them.
   */
  audience: string | readonly string[];
  /** The mesh's trust domain; default: the (first) audience's. */
  trustDomain?: string;
  /** Take only per-request passports (bound to the method, path and one use). */
  requirePerRequest?: boolean;
  /** Clock skew tolerated, in seconds (default 30). */
  skewSeconds?: number;
}

export interface VerifiedPassport {
  /** The caller's SPIFFE ID. */
  subject: string;
  /** The caller's service name (the SPIFFE ID's path). */
  service: string;
  /** True for a per-request passport (bound to this call's method and path). */
  perRequest: boolean;
  /** The router's request id (per-request passports). */
  requestId: string | undefined;
  claims: JWTPayload;
}

/** A passport that does not verify; `message` says why (for your logs, not your callers). */
export class PassportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PassportError";
  }
}

const PASSPORT_TYPE = "mesh-passport+jwt";
const ROUTER_KEY_TYPE = "mesh-router-key+jwt";
const MAX_LENGTH = 8192;
const JWKS_MIN_REFETCH_MS = 30_000;

/** The passport of `request`, verified; throws PassportError. */
export async function verifyPassport(
  request: Request,
  options: PassportOptions,
): Promise<VerifiedPassport> {
  const token = request.headers.get("x-mesh-passport");
  if (token === null) throw new PassportError("no X-Mesh-Passport header");
  if (token.length > MAX_LENGTH || token.includes(",")) {
    throw new PassportError("not one passport of a sane size");
  }
  const audiences =
    typeof options.audience === "string" ? [options.audience] : [...options.audience];
  const trustDomain = options.trustDomain ?? /^spiffe:\/\/([^/]+)\//.exec(audiences[0] ?? "")?.[1];
  if (!trustDomain) throw new PassportError(`audience '${audiences[0]}' is not a SPIFFE ID`);
  const skew = options.skewSeconds ?? 30;
  const router = `spiffe://${trustDomain}/meshwork-router`;

  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw new PassportError("not a JWS");
  }
  if (header.alg !== "ES256" || header.typ !== PASSPORT_TYPE) {
    throw new PassportError("not an ES256 mesh passport");
  }
  const certificate = (header as Record<string, unknown>).mesh_router_cert;
  if (typeof certificate !== "string") throw new PassportError("no router key certificate");
  const routerKey = await certifiedKey(certificate, options.identity, trustDomain, router, skew);

  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, routerKey, {
      algorithms: ["ES256"],
      typ: PASSPORT_TYPE,
      issuer: router,
      audience: audiences,
      clockTolerance: skew,
      requiredClaims: ["sub", "exp", "iat", "jti"],
    }));
  } catch (error) {
    throw new PassportError(`the passport does not verify: ${(error as Error).message}`);
  }
  const subject = payload.sub!;
  const service = subject.startsWith(`spiffe://${trustDomain}/`)
    ? subject.slice(`spiffe://${trustDomain}/`.length)
    : "";
  if (service === "") throw new PassportError("the subject is not of this trust domain");

  const perRequest = payload.htm !== undefined || payload.path !== undefined;
  if (!perRequest && options.requirePerRequest) {
    throw new PassportError("a shared passport, and this service takes per-request ones only");
  }
  if (perRequest) {
    if (payload.htm !== request.method.toUpperCase()) {
      throw new PassportError("the passport was issued for another method");
    }
    if (payload.path !== new URL(request.url).pathname) {
      throw new PassportError("the passport was issued for another path");
    }
    if (!firstUse(payload.jti!, (payload.exp! + skew) * 1000)) {
      throw new PassportError("the passport was used before (replay)");
    }
  }
  return {
    subject,
    service,
    perRequest,
    requestId: typeof payload.rid === "string" ? payload.rid : undefined,
    claims: payload,
  };
}

// ---------------------------------------------------------------------------------------------
// The JWKS, router key certificates and seen jtis, cached in the isolate.

let jwks: Map<string, CryptoKey> | undefined;
let jwksFetchedAt = -Infinity;
/** Until when the keys are fresh (the JWKS answer's max-age); after it they are fetched again. */
let jwksFreshUntil = -Infinity;
let jwksLoad: Promise<void> | undefined;
const certified = new Map<string, { key: CryptoKey; until: number }>();

async function meshKey(
  kid: string,
  identity: PassportOptions["identity"],
): Promise<CryptoKey | undefined> {
  const now = Date.now();
  const known = jwks?.get(kid);
  // Keys past their max-age are fetched again, so a key the mesh withdrew stops verifying.
  if (known && now < jwksFreshUntil) return known;
  if (!jwksLoad && now - jwksFetchedAt < JWKS_MIN_REFETCH_MS) return known;
  jwksLoad ??= loadJwks(identity).finally(() => (jwksLoad = undefined));
  await jwksLoad.catch(() => undefined);
  return jwks?.get(kid);
}

async function loadJwks(identity: PassportOptions["identity"]): Promise<void> {
  jwksFetchedAt = Date.now();
  const url = "https://identity.mesh/.well-known/jwks.json";
  const response =
    typeof identity === "string"
      ? await fetch(new URL("/.well-known/jwks.json", identity))
      : await identity.fetch(url);
  if (!response.ok) throw new PassportError(`the JWKS answered ${response.status}`);
  const body = (await response.json()) as { keys?: Record<string, unknown>[] };
  const keys = new Map<string, CryptoKey>();
  for (const jwk of body.keys ?? []) {
    if (typeof jwk.kid !== "string" || jwk.kty !== "EC" || jwk.crv !== "P-256" || "d" in jwk) {
      continue;
    }
    keys.set(
      jwk.kid,
      (await importJWK(
        { kty: "EC", crv: "P-256", x: jwk.x as string, y: jwk.y as string },
        "ES256",
      )) as CryptoKey,
    );
  }
  jwks = keys;
  const maxAge = /max-age=(\d+)/i.exec(response.headers.get("cache-control") ?? "")?.[1];
  jwksFreshUntil = Date.now() + Math.min(Number(maxAge ?? 300), 86_400) * 1000;
  // Certificates signed by keys the mesh no longer publishes are not trusted any more.
  certified.clear();
}

async function certifiedKey(
  certificate: string,
  identity: PassportOptions["identity"],
  trustDomain: string,
  router: string,
  skew: number,
): Promise<CryptoKey> {
  const cached = certified.get(certificate);
  if (cached && Date.now() < cached.until) return cached.key;
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(certificate);
  } catch {
    throw new PassportError("the router key certificate is not a JWS");
  }
  if (header.alg !== "ES256" || typeof header.kid !== "string") {
    throw new PassportError("the router key certificate is not ES256 with a kid");
  }
  const key = await meshKey(header.kid, identity);
  if (!key) throw new PassportError("the router key certificate is signed by an unknown key");
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(certificate, key, {
      algorithms: ["ES256"],
      typ: ROUTER_KEY_TYPE,
      issuer: `spiffe://${trustDomain}/meshwork-identity`,
      subject: router,
      clockTolerance: skew,
      requiredClaims: ["exp"],
    }));
  } catch (error) {
    throw new PassportError(
      `the router key certificate does not verify: ${(error as Error).message}`,
    );
  }
  const jwk = (payload.cnf as { jwk?: Record<string, unknown> } | undefined)?.jwk;
  if (!jwk || jwk.kty !== "EC" || jwk.crv !== "P-256" || "d" in jwk) {
    throw new PassportError("the router key certificate holds no P-256 public key");
  }
  const routerKey = (await importJWK(
    { kty: "EC", crv: "P-256", x: jwk.x as string, y: jwk.y as string },
    "ES256",
  )) as CryptoKey;
  if (certified.size > 1000) certified.clear();
  certified.set(certificate, { key: routerKey, until: (payload.exp ?? 0) * 1000 });
  return routerKey;
}

/**
 * The per-request passports' jtis this isolate has seen, in buckets by the minute they expire
 * in: a bucket is dropped whole once its minute has passed, so the work per call is a few set
 * lookups and memory is what a minute or two of calls holds (per-request passports live a
 * minute). Past MAX_SEEN, passports are refused rather than forgotten, which fails closed.
 */
const seenByMinute = new Map<number, Set<string>>();
let seenCount = 0;
const MAX_SEEN = 200_000;

/** True the first time this isolate sees `jti` (remembered until `until`). */
function firstUse(jti: string, until: number): boolean {
  const minute = Math.floor(Date.now() / 60_000);
  // A handful of buckets at most: per-request passports live a minute (plus the skew).
  for (const [bucket, ids] of seenByMinute) {
    if (bucket < minute) {
      seenCount -= ids.size;
      seenByMinute.delete(bucket);
    } else if (ids.has(jti)) {
      return false;
    }
  }
  if (seenCount >= MAX_SEEN) {
    throw new PassportError("too many passports in flight to track replays");
  }
  const expires = Math.floor(until / 60_000);
  let ids = seenByMinute.get(expires);
  if (!ids) seenByMinute.set(expires, (ids = new Set()));
  ids.add(jti);
  seenCount++;
  return true;
}
