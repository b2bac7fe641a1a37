/**
 * Verifying a JWT-SVID, as the router does for every caller that presents one. The signature
 * and the registered claims are jose's work; what is checked before it runs is the mesh's:
 * a size limit, exactly one token, three non-empty parts, and a protected header holding
 * nothing but `alg` (ES256), `kid` and `typ`. So `alg: none`, HS256 keyed with the public key,
 * `jku`/`x5u`/`jwk`/`x5c` pointing at an attacker's key and any `crit` extension are refused
 * before a key is looked up, and keys come only from the mesh's JWKS, by `kid`.
 */
import { errors as joseErrors, jwtVerify, type JWTPayload } from "jose";
import {
  ADMIN_ROLES,
  ALGORITHM,
  identityIssuer,
  MAX_TOKEN_LENGTH,
  ROLES_CLAIM,
  routerId,
  serviceOf,
  type AdminRole,
} from "./names.ts";

/** Why a token was refused: for logs and the call's outcome, never for the caller. */
export class SvidError extends Error {
  readonly reason: string;
  constructor(reason: string) {
    super(reason);
    this.reason = reason;
    this.name = "SvidError";
  }
}

/** What the mesh takes from a verified SVID. */
export interface VerifiedSvid {
  /** The SPIFFE ID (`sub`). */
  readonly subject: string;
  /** The service it names inside the trust domain. */
  readonly service: string;
  readonly jti: string;
  /** The signing key's id (a cached token is dropped when its key leaves the JWKS). */
  readonly kid: string;
  /** `iat` and `exp`, in ms since the epoch. */
  readonly issuedAt: number;
  readonly expiresAt: number;
  /** RFC 8705 `cnf["x5t#S256"]`: the client certificate the token is bound to, if any. */
  readonly certificateThumbprint: string | undefined;
  /** The control-plane roles the ROLES_CLAIM names (roles this code does not know are left out). */
  readonly roles: readonly AdminRole[];
}

export interface SvidCheck {
  readonly trustDomain: string;
  /** The verification key with this `kid`, or undefined when the mesh has none. */
  readonly key: (kid: string) => CryptoKey | undefined | Promise<CryptoKey | undefined>;
  readonly now: number;
  /** Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds. */
  readonly skewSeconds: number;
}

const ALLOWED_HEADER = new Set(["alg", "kid", "typ"]);
/**
 * The longest-lived SVID the router takes (a day): the identity Worker issues at most its
 * SVID_MAX_TTL_SECONDS (an hour by default), so anything longer was not minted as configured.
 */
export const MAX_SVID_LIFETIME_SECONDS = 86_400;
// SPIFFE's JWT-SVID allows `typ` JWT or JOSE, or none; anything else is another kind of token.
const SVID_TYPES = new Set([undefined, "JWT", "JOSE"]);
const BASE64URL_PART = /^[A-Za-z0-9_-]+$/;

/** Verifies `token` as a JWT-SVID for the router; throws SvidError saying why not. */
export async function verifySvid(token: string, check: SvidCheck): Promise<VerifiedSvid> {
  const header = protectedHeader(token);
  const kid = header.kid as string;
  const key = await check.key(kid);
  if (!key) throw new SvidError(`unknown kid '${kid.slice(0, 64)}'`);
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, key, {
      algorithms: [ALGORITHM],
      issuer: identityIssuer(check.trustDomain),
      audience: routerId(check.trustDomain),
      clockTolerance: check.skewSeconds,
      currentDate: new Date(check.now),
      requiredClaims: ["sub", "exp", "iat", "jti"],
    }));
  } catch (error) {
    throw new SvidError(joseReason(error));
  }
  const subject = payload.sub as string;
  const service = serviceOf(subject, check.trustDomain);
  if (service === undefined || service.includes("/")) {
    throw new SvidError(`subject '${subject.slice(0, 200)}' is not a service of this trust domain`);
  }
  if (typeof payload.jti !== "string" || payload.jti === "") {
    throw new SvidError("jti is not a non-empty string");
  }
  if (
    typeof payload.iat !== "number" ||
    payload.iat * 1000 > check.now + check.skewSeconds * 1000
  ) {
    throw new SvidError("issued in the future");
  }
  const lifetime = (payload.exp as number) - payload.iat;
  if (lifetime > MAX_SVID_LIFETIME_SECONDS) {
    throw new SvidError(
      `valid for ${lifetime} s; the mesh takes at most ${MAX_SVID_LIFETIME_SECONDS}`,
    );
  }
  return {
    subject,
    service,
    jti: payload.jti,
    kid,
    issuedAt: payload.iat * 1000,
    expiresAt: (payload.exp as number) * 1000,
    certificateThumbprint: thumbprintOf(payload.cnf),
    roles: rolesOf(payload[ROLES_CLAIM]),
  };
}

/** The roles of ROLES_CLAIM: none when absent; a claim that is not a list of names is refused. */
function rolesOf(claim: unknown): readonly AdminRole[] {
  if (claim === undefined) return [];
  if (!Array.isArray(claim) || claim.length > 16 || !claim.every((r) => typeof r === "string")) {
    throw new SvidError(`${ROLES_CLAIM} is not a list of role names`);
  }
  return ADMIN_ROLES.filter((role) => claim.includes(role));
}

/** The protected header, after the checks that need no key; throws SvidError. */
function protectedHeader(token: string): Record<string, unknown> {
  if (token.length > MAX_TOKEN_LENGTH) {
    throw new SvidError(`token of ${token.length} characters; the limit is ${MAX_TOKEN_LENGTH}`);
  }
  // Two X-Mesh-SVID headers arrive joined by ", " (a compact JWS never holds a comma).
  if (token.includes(",")) throw new SvidError("more than one token");
  const parts = token.split(".");
  if (parts.length !== 3) throw new SvidError("not a compact JWS (three parts)");
  if (!parts.every((part) => BASE64URL_PART.test(part))) {
    throw new SvidError("a part is empty or not base64url (stripped signature?)");
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(base64url(parts[0]!)));
  } catch {
    throw new SvidError("the header is not JSON");
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    throw new SvidError("the header is not a JSON object");
  }
  const fields = header as Record<string, unknown>;
  for (const name of Object.keys(fields)) {
    if (!ALLOWED_HEADER.has(name)) {
      throw new SvidError(`header parameter '${name.slice(0, 32)}' is not accepted`);
    }
  }
  if (fields.alg !== ALGORITHM) throw new SvidError(`alg ${String(fields.alg)} is not ES256`);
  if (typeof fields.kid !== "string" || fields.kid === "") throw new SvidError("no kid");
  if (!SVID_TYPES.has(fields.typ as string | undefined)) {
    throw new SvidError(`typ '${String(fields.typ).slice(0, 40)}' is not a JWT-SVID's`);
  }
  return fields;
}

function thumbprintOf(cnf: unknown): string | undefined {
  if (cnf === undefined) return undefined;
  const value = (cnf as Record<string, unknown> | null)?.["x5t#S256"];
  if (typeof value !== "string" || !BASE64URL_PART.test(value)) {
    throw new SvidError("cnf holds no x5t#S256 certificate thumbprint");
  }
  return value;
}

/** Decodes base64url (no padding). */
export function base64url(text: string): Uint8Array {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** The RFC 8705 thumbprint (base64url SHA-256) of a certificate, from its hex fingerprint. */
export function thumbprintFromHex(fingerprint: string): string | undefined {
  if (!/^[0-9a-fA-F]{64}$/.test(fingerprint)) return undefined;
  let binary = "";
  for (let i = 0; i < 64; i += 2) {
    binary += String.fromCharCode(parseInt(fingerprint.slice(i, i + 2), 16));
  }
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function joseReason(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return "expired";
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.claim === "nbf") return "not yet valid";
    return `claim ${error.claim}: ${error.reason}`;
  }
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return "bad signature";
  if (error instanceof joseErrors.JOSEError) return error.code;
  return "not a valid token";
}
