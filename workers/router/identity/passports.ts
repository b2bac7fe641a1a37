/**
 * `X-Mesh-Passport`: what the router tells a destination about the caller, signed, so the
 * destination can check it offline — subject the verified caller, audience the destination.
 *
 * The mesh's signing keys never leave the identity Worker, and a call must not wait for it. So
 * each router isolate makes its own ES256 key pair (the private key is not extractable and never
 * leaves the isolate) and has the identity Worker certify the public half once: a short-lived
 * JWT (typ `mesh-router-key+jwt`) signed with the mesh's key, holding the router's key in
 * `cnf.jwk`. Passports are signed locally with that key and carry the certificate in their
 * protected header (`mesh_router_cert`); a destination verifies the certificate against the
 * mesh's JWKS and the passport against the certified key (sdk/passport.ts).
 *
 * Only an isolate's first passport waits for the certificate (2 s at most); it is renewed in the
 * background at half its lifetime. By default one passport per caller and backend Service is
 * reused until a minute before it expires, so signing costs nearly nothing per request; a
 * Service with `passport.mode: PerRequest` gets one per try, valid a minute, bound to its
 * method, path and request id.
 */
import { calculateJwkThumbprint, exportJWK, SignJWT } from "jose";
import { ALGORITHM, PASSPORT_TYPE, routerId } from "../../../core/identity/names.ts";
import { withDeadline } from "../../../core/timeout.ts";

/** How long a Shared passport is valid. */
export const PASSPORT_LIFETIME_MS = 5 * 60_000;
/** How long a PerRequest passport is valid: it is used at once, by one try. */
export const PER_REQUEST_LIFETIME_MS = 60_000;
/** How long a call may wait for the identity Worker to certify the isolate's key. */
const CERTIFY_TIMEOUT_MS = 2_000;
/** A shared passport is replaced when less than this is left of it. */
const RENEW_BEFORE_MS = 60_000;
/** Least time between two attempts to get a certificate when the identity Worker fails. */
const CERTIFY_RETRY_MS = 10_000;
/** Shared passports kept per isolate. */
const MAX_SHARED = 10_000;

/** The identity Worker's RPC method that certifies a router key. */
export interface RouterKeyCertifier {
  certifyRouterKey(publicJwk: JsonWebKey): Promise<{ certificate: string; expiresAt: string }>;
}

/** What a passport says. */
export interface PassportClaims {
  /** The caller's SPIFFE ID. */
  readonly subject: string;
  /** SPIFFE IDs of the destination and of the backend Service that receives the call. */
  readonly audience: readonly string[];
  /** Per-request passports: bound to this call. */
  readonly request?: { method: string; path: string; requestId: string };
}

interface RouterKey {
  readonly privateKey: CryptoKey;
  readonly kid: string;
  certificate: string | undefined;
  certifiedUntil: number;
  renewAt: number;
}

export interface PassportView {
  certificateExpiresAt: string | null;
  certificates: number;
  signed: number;
  sharedCached: number;
  lastError: { at: string; message: string } | null;
}

export class PassportSigner {
  private key: RouterKey | undefined;
  private certifying: Promise<void> | undefined;
  private lastAttempt = -Infinity;
  private lastError: { at: number; message: string } | undefined;
  private readonly shared = new Map<string, { token: string; expiresAt: number }>();
  private certificates = 0;
  private signed = 0;

  private readonly certifier: () => RouterKeyCertifier | undefined;
  private readonly options: { trustDomain: string; now: () => number };

  constructor(
    certifier: () => RouterKeyCertifier | undefined,
    options: { trustDomain: string; now: () => number },
  ) {
    this.certifier = certifier;
    this.options = options;
  }

  /** A shared passport for this caller, destination and backend that is still fresh (no I/O). */
  cachedShared(cacheKey: string, now: number): string | undefined {
    const passport = this.shared.get(cacheKey);
    if (passport && now < passport.expiresAt - RENEW_BEFORE_MS) return passport.token;
    return undefined;
  }

  /**
   * A passport, signed now; undefined when the router has no certified key (the identity Worker
   * unreachable: the call goes on without one, and `/.mesh/status` says why).
   */
  async sign(
    claims: PassportClaims,
    cacheKey: string | undefined,
    waitUntil: (promise: Promise<unknown>) => void,
  ): Promise<string | undefined> {
    const key = await this.certifiedKey(waitUntil);
    if (!key) return undefined;
    const now = this.options.now();
    const lifetime = claims.request ? PER_REQUEST_LIFETIME_MS : PASSPORT_LIFETIME_MS;
    const expiresAt = Math.min(now + lifetime, key.certifiedUntil);
    const payload: Record<string, unknown> = claims.request
      ? { htm: claims.request.method, path: claims.request.path, rid: claims.request.requestId }
      : {};
    const token = await new SignJWT(payload)
      .setProtectedHeader({
        alg: ALGORITHM,
        typ: PASSPORT_TYPE,
        kid: key.kid,
        mesh_router_cert: key.certificate,
      })
      .setIssuer(routerId(this.options.trustDomain))
      .setSubject(claims.subject)
      .setAudience([...claims.audience])
      .setIssuedAt(Math.floor(now / 1000))
      .setExpirationTime(Math.floor(expiresAt / 1000))
      .setJti(randomId())
      .sign(key.privateKey);
    this.signed++;
    if (cacheKey !== undefined) {
      if (this.shared.size >= MAX_SHARED) {
        this.shared.delete(this.shared.keys().next().value as string);
      }
      this.shared.set(cacheKey, { token, expiresAt });
    }
    return token;
  }

  /** The isolate's key with a valid certificate: awaited only when it has none. */
  private async certifiedKey(
    waitUntil: (promise: Promise<unknown>) => void,
  ): Promise<RouterKey | undefined> {
    const now = this.options.now();
    const key = this.key;
    if (key?.certificate !== undefined && now < key.certifiedUntil) {
      if (now >= key.renewAt) this.renew(waitUntil);
      return key;
    }
    if (!this.certifying && now - this.lastAttempt < CERTIFY_RETRY_MS) return undefined;
    await this.certify();
    const fresh = this.key;
    return fresh?.certificate !== undefined && this.options.now() < fresh.certifiedUntil
      ? fresh
      : undefined;
  }

  private renew(waitUntil: (promise: Promise<unknown>) => void): void {
    if (this.certifying || this.options.now() - this.lastAttempt < CERTIFY_RETRY_MS) return;
    waitUntil(this.certify());
  }

  /** Makes a new key pair and has it certified (one attempt at a time). */
  private certify(): Promise<void> {
    this.certifying ??= this.doCertify().finally(() => (this.certifying = undefined));
    return this.certifying;
  }

  private async doCertify(): Promise<void> {
    this.lastAttempt = this.options.now();
    try {
      const certifier = this.certifier();
      if (!certifier) throw new Error("the router has no IDENTITY binding");
      const pair = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, [
        "sign",
        "verify",
      ])) as CryptoKeyPair;
      const jwk = await exportJWK(pair.publicKey);
      const publicJwk = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y } as JsonWebKey;
      const { certificate, expiresAt } = await withDeadline(
        CERTIFY_TIMEOUT_MS,
        () => certifier.certifyRouterKey(publicJwk),
        () => new Error(`no answer within ${CERTIFY_TIMEOUT_MS} ms`),
      );
      const until = Date.parse(expiresAt);
      if (typeof certificate !== "string" || !Number.isFinite(until)) {
        throw new Error("the identity Worker answered no certificate");
      }
      const now = this.options.now();
      this.key = {
        privateKey: pair.privateKey,
        kid: await calculateJwkThumbprint(jwk),
        certificate,
        certifiedUntil: until,
        renewAt: now + (until - now) / 2,
      };
      this.certificates++;
      this.lastError = undefined;
      // Passports signed with the old key stay valid until they expire; new ones use the new key.
      this.shared.clear();
    } catch (error) {
      this.lastError = {
        at: this.options.now(),
        message: `certifying the router's passport key failed: ${error instanceof Error ? error.message : String(error)}`,
      };
    }
  }

  view(): PassportView {
    return {
      certificateExpiresAt: this.key ? new Date(this.key.certifiedUntil).toISOString() : null,
      certificates: this.certificates,
      signed: this.signed,
      sharedCached: this.shared.size,
      lastError: this.lastError
        ? { at: new Date(this.lastError.at).toISOString(), message: this.lastError.message }
        : null,
    };
  }
}

function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}
