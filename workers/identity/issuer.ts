/**
 * What the identity Worker signs, once a caller is attested: JWT-SVIDs for workloads and key
 * certificates for routers. The claims are decided here; the signature is the SigningKeys
 * object's (passed in as `sign`), so no key material ever reaches this code.
 */
import { base64url } from "jose";
import { z } from "zod";
import type { RevocationResource } from "../../core/config/identity-schema.ts";
import { issuesFromZod } from "../../core/config/validate.ts";
import { MeshError } from "../../core/errors.ts";
import {
  identityIssuer,
  isReservedService,
  ROLES_CLAIM,
  ROUTER_KEY_TYPE,
  routerId,
  spiffeId,
  SVID_TYPE,
  type AdminRole,
} from "../../core/identity/names.ts";
import type { IdentitySettings } from "./settings.ts";

/** Signs `claims` as a compact JWS of type `typ` with the mesh's current key. */
export type Sign = (typ: string, claims: Record<string, unknown>) => Promise<string>;

/** A signed JWT-SVID and what a caller needs to use it. */
export interface IssuedSvid {
  token: string;
  /** Its subject. */
  spiffeId: string;
  /** Its `exp`, as ISO 8601. */
  expiresAt: string;
}

/** A signed router key certificate. */
export interface RouterKeyCertificate {
  certificate: string;
  expiresAt: string;
}

const Audience = z.string().min(1, "must not be empty").max(512, "must be at most 512 characters");

/** What a workload may ask of its SVID. */
export const SvidOptions = z.strictObject(
  {
    /** `aud` of the token; default: the router's SPIFFE ID (the token is for calls through it). */
    audience: z
      .union([Audience, z.array(Audience).min(1).max(16)], {
        error: "must be a string or a list of 1 to 16 strings",
      })
      .optional(),
    /** Lifetime in seconds; default SVID_TTL_SECONDS, capped at SVID_MAX_TTL_SECONDS. */
    ttlSeconds: z
      .number({ error: "must be a number of seconds" })
      .int("must be a whole number of seconds")
      .positive("must be at least 1")
      .optional(),
  },
  { error: (issue) => (issue.code === "invalid_type" ? "must be a JSON object" : undefined) },
);
export type SvidOptions = z.infer<typeof SvidOptions>;

/** Checks what a caller asked for; throws `bad_request` naming every field that is wrong. */
export function parseSvidOptions(input: unknown): SvidOptions {
  const parsed = SvidOptions.safeParse(input ?? {});
  if (parsed.success) return parsed.data;
  const issues = issuesFromZod(parsed.error).map((issue) =>
    issue.path === "" ? issue.message : `${issue.path}: ${issue.message}`,
  );
  throw new MeshError(
    "bad_request",
    `invalid SVID request: ${issues.join("; ")} (expected { "audience"?: string | string[], "ttlSeconds"?: number })`,
  );
}

/** 128 random bits, base64url: unique per token, so one token can be revoked by its `jti`. */
function newJti(): string {
  return base64url.encode(crypto.getRandomValues(new Uint8Array(16)));
}

/**
 * Refuses to issue to `subject` while a Revocation covers every token it could get now: one
 * without `issuedBefore`, or with an `issuedBefore` still ahead (a token issued now would be
 * refused on arrival anyway). The caller is told only `forbidden`; which Revocation, and that
 * there is one, goes to the log (the error's cause).
 */
function checkNotRevoked(
  subject: string,
  revocations: readonly RevocationResource[],
  now: number,
): void {
  for (const revocation of revocations) {
    const { subject: revoked, issuedBefore } = revocation.spec;
    if (revoked !== subject) continue;
    if (issuedBefore === undefined || Date.parse(issuedBefore) > now) {
      throw new MeshError("forbidden", "the identity Worker issues no token to this caller", {
        cause: `${subject} is revoked by Revocation '${revocation.metadata.name}'`,
      });
    }
  }
}

/**
 * Refuses an SVID for one of the mesh's own services (the router, the identity Worker, the policy
 * Worker), however the caller was attested — binding props or a WorkloadCredential that reached
 * KV without the admin API's validation. `forbidden`; the name goes to the log.
 */
function checkNotReserved(service: string): void {
  if (!isReservedService(service)) return;
  throw new MeshError("forbidden", "the identity Worker issues no token to this caller", {
    cause: `'${service}' is one of the mesh's own services: no workload may have its identity`,
  });
}

/** What issuing needs from the Worker: its settings, the revocations, the signer and the time. */
export interface IssueContext {
  readonly settings: IdentitySettings;
  readonly revocations: readonly RevocationResource[];
  readonly sign: Sign;
  readonly now: number;
}

/**
 * A JWT-SVID for `service`: `iss`, `sub`, `aud`, `iat`, `exp`, `jti`, `cnf` when the caller
 * proved itself with a client certificate (RFC 8705: the token is then worth nothing without it),
 * and ROLES_CLAIM when the credential that attested it grants control-plane `roles`.
 */
export async function issueSvid(
  context: IssueContext,
  service: string,
  options: SvidOptions,
  certificateThumbprint?: string,
  roles: readonly AdminRole[] = [],
): Promise<IssuedSvid> {
  const { settings, now } = context;
  checkNotReserved(service);
  const subject = spiffeId(settings.trustDomain, service);
  checkNotRevoked(subject, context.revocations, now);
  const ttl = Math.min(options.ttlSeconds ?? settings.svidTtlSeconds, settings.svidMaxTtlSeconds);
  const iat = Math.floor(now / 1000);
  const exp = iat + ttl;
  const claims: Record<string, unknown> = {
    iss: identityIssuer(settings.trustDomain),
    sub: subject,
    aud: options.audience ?? routerId(settings.trustDomain),
    iat,
    exp,
    jti: newJti(),
  };
  if (certificateThumbprint !== undefined) claims.cnf = { "x5t#S256": certificateThumbprint };
  if (roles.length > 0) claims[ROLES_CLAIM] = [...roles];
  return {
    token: await context.sign(SVID_TYPE, claims),
    spiffeId: subject,
    expiresAt: new Date(exp * 1000).toISOString(),
  };
}

// A P-256 coordinate: 32 bytes, base64url without padding.
const COORDINATE = /^[A-Za-z0-9_-]{43}$/;

/**
 * The public P-256 key a router asks to have certified, reduced to `kty`, `crv`, `x`, `y`; throws
 * `bad_request` saying what is wrong with anything else (a private key above all).
 */
export async function routerPublicKey(
  jwk: unknown,
): Promise<{ kty: "EC"; crv: "P-256"; x: string; y: string }> {
  const bad = (message: string) => new MeshError("bad_request", `invalid router key: ${message}`);
  if (jwk === null || typeof jwk !== "object" || Array.isArray(jwk)) {
    throw bad("must be a JWK object");
  }
  const key = jwk as Record<string, unknown>;
  if ("d" in key) {
    throw bad(
      "the JWK holds a private key (d); send the public key only, the private key never leaves the router",
    );
  }
  if (key.kty !== "EC") throw bad(`kty must be "EC", not ${JSON.stringify(key.kty)}`);
  if (key.crv !== "P-256") throw bad(`crv must be "P-256", not ${JSON.stringify(key.crv)}`);
  const { x, y } = key;
  if (
    typeof x !== "string" ||
    !COORDINATE.test(x) ||
    typeof y !== "string" ||
    !COORDINATE.test(y)
  ) {
    throw bad("x and y must be 32-byte base64url coordinates");
  }
  const point = { kty: "EC" as const, crv: "P-256" as const, x, y };
  try {
    // Catches a point that is not on the curve: certifying it would certify nothing usable.
    await crypto.subtle.importKey("jwk", point, { name: "ECDSA", namedCurve: "P-256" }, false, [
      "verify",
    ]);
  } catch {
    throw bad("x and y are not a point on P-256");
  }
  return point;
}

/**
 * A certificate for a router's own signing key: a JWT from the identity Worker saying that the
 * key in `cnf.jwk` belongs to the router, so what the router signs with it (passports) can be
 * traced back to the mesh's keys.
 */
export async function certifyRouterKey(
  context: IssueContext,
  publicJwk: unknown,
): Promise<RouterKeyCertificate> {
  const { settings, now } = context;
  const jwk = await routerPublicKey(publicJwk);
  const subject = routerId(settings.trustDomain);
  checkNotRevoked(subject, context.revocations, now);
  const iat = Math.floor(now / 1000);
  const exp = iat + settings.routerKeyTtlSeconds;
  const certificate = await context.sign(ROUTER_KEY_TYPE, {
    iss: identityIssuer(settings.trustDomain),
    sub: subject,
    iat,
    exp,
    jti: newJti(),
    cnf: { jwk },
  });
  return { certificate, expiresAt: new Date(exp * 1000).toISOString() };
}
