/**
 * Who is calling: the caller a service binding attests through its props, or the one a verified
 * JWT-SVID names. A verified token is kept in isolate memory until it expires or its key leaves
 * the mesh's JWKS, so a warm caller costs a map lookup, not a signature check; what can change
 * while it is cached — revocations, and the client certificate of the connection it arrives on —
 * is checked on every request.
 *
 * A client certificate exists only on the HTTP entry: there `request.cf` is Cloudflare's. Through
 * a service binding (the `Mesh` entrypoint, with or without props) the calling Worker builds
 * `request.cf` itself, so a certificate it names proves nothing and is never read.
 */
import { thumbprintFromHex, verifySvid, type VerifiedSvid } from "../../../core/identity/svid.ts";
import type { Revocations } from "../../../core/config/snapshot.ts";
import type { JwksCache } from "./jwks.ts";

/** Clock skew tolerated on a token's times, in seconds. */
export const CLOCK_SKEW_SECONDS = 30;
/** Verified tokens kept per isolate; the oldest go first. */
const MAX_CACHED = 10_000;

/** Revocations, compiled from the snapshot index for lookups per request. */
export class RevocationList {
  static readonly EMPTY = new RevocationList(undefined);
  private readonly tokens: ReadonlySet<string>;
  /** Subject → tokens issued before this time (ms) are refused; Infinity: every token. */
  private readonly subjects: ReadonlyMap<string, number>;
  readonly size: number;

  constructor(revocations: Revocations | undefined) {
    this.tokens = new Set(revocations?.tokens.map((t) => t.jti));
    const subjects = new Map<string, number>();
    for (const { subject, issuedBefore } of revocations?.subjects ?? []) {
      const before = issuedBefore === undefined ? Infinity : Date.parse(issuedBefore);
      subjects.set(subject, Math.max(subjects.get(subject) ?? -Infinity, before));
    }
    this.subjects = subjects;
    this.size = this.tokens.size + subjects.size;
  }

  /**
   * Why a caller with no token (a Worker attested by its binding's props) is revoked: only an
   * outright subject revocation applies (there is no issue time to compare).
   */
  checkSubject(subject: string): string | undefined {
    if (this.subjects.get(subject) === Infinity) return `'${subject}' is revoked`;
    return undefined;
  }

  /** Why `svid` is revoked, or undefined when it is not. */
  check(svid: VerifiedSvid): string | undefined {
    if (this.size === 0) return undefined;
    if (this.tokens.has(svid.jti)) return `jti '${svid.jti}' is revoked`;
    const before = this.subjects.get(svid.subject);
    if (before !== undefined && svid.issuedAt < before) {
      return `tokens of '${svid.subject}'${before === Infinity ? "" : ` issued before ${new Date(before).toISOString()}`} are revoked`;
    }
    return undefined;
  }
}

/** What Cloudflare says of the connection's client certificate, when it verified one. */
export interface ClientCertificate {
  /** SHA-256 of the certificate, lower-case hex (as XFCC's Hash). */
  readonly hash: string;
  /** RFC 8705's thumbprint of it (base64url of the SHA-256), as `cnf["x5t#S256"]`. */
  readonly thumbprint: string;
  /** Its subject DN, or "". */
  readonly subject: string;
}

type TlsClientAuth = Record<string, unknown>;

function tlsClientAuth(request: Request): TlsClientAuth | undefined {
  return (request as Request & { cf?: { tlsClientAuth?: TlsClientAuth } }).cf?.tlsClientAuth;
}

/**
 * The client certificate Cloudflare verified on this request's connection: only for a request
 * that arrived on the HTTP entry (`overHttp`: decided by the entrypoint, never by props), only
 * when presented, verified and not revoked, and with a usable SHA-256 fingerprint.
 */
export function clientCertificate(
  request: Request,
  overHttp: boolean,
): ClientCertificate | undefined {
  if (!overHttp) return undefined;
  const auth = tlsClientAuth(request);
  if (!auth || auth.certPresented !== "1" || auth.certVerified !== "SUCCESS") return undefined;
  if (auth.certRevoked === "1") return undefined;
  const fingerprint = auth.certFingerprintSHA256;
  const thumbprint = typeof fingerprint === "string" ? thumbprintFromHex(fingerprint) : undefined;
  if (thumbprint === undefined) return undefined;
  return {
    hash: (fingerprint as string).toLowerCase(),
    thumbprint,
    subject: typeof auth.certSubjectDN === "string" ? auth.certSubjectDN : "",
  };
}

/** Why `clientCertificate` found none (for the log of a refusal; off the hot path). */
export function noCertificateReason(request: Request, overHttp: boolean): string {
  if (!overHttp) {
    return "the call came through a service binding, where no client certificate is verified (its request.cf is the calling Worker's)";
  }
  const auth = tlsClientAuth(request);
  if (!auth || auth.certPresented !== "1") return "no client certificate was presented";
  if (auth.certVerified !== "SUCCESS") {
    return `the client certificate failed verification (${String(auth.certVerified)})`;
  }
  if (auth.certRevoked === "1") return "the client certificate is revoked";
  return "the client certificate's SHA-256 fingerprint is not 64 hex digits";
}

export interface AuthenticatorOptions {
  readonly trustDomain: string;
  readonly now: () => number;
}

/** Verifies callers' JWT-SVIDs and keeps the verified ones (see the module's header). */
export class Authenticator {
  private readonly verified = new Map<string, VerifiedSvid>();
  private verifications = 0;
  private failures = 0;

  private readonly jwks: JwksCache;
  private readonly options: AuthenticatorOptions;

  constructor(jwks: JwksCache, options: AuthenticatorOptions) {
    this.jwks = jwks;
    this.options = options;
    // A key withdrawn from the JWKS takes its tokens with it as soon as a refresh sees it go.
    jwks.onWithdrawn((kids) => this.forgetTokensOf(kids));
  }

  /**
   * The token's verified claims when this isolate has verified it, it has not expired, and the
   * key that signed it is still the mesh's. A hit also keeps the JWKS fresh: once its max-age
   * has passed, a refresh starts in the background (`waitUntil`; never awaited here), so a
   * withdrawn key's tokens stop working although every caller is warm.
   */
  cached(token: string, waitUntil: (promise: Promise<unknown>) => void): VerifiedSvid | undefined {
    const svid = this.verified.get(token);
    if (svid === undefined) return undefined;
    const now = this.options.now();
    // The kid check covers a token verified while a refresh withdrew its key.
    if (now < svid.expiresAt + CLOCK_SKEW_SECONDS * 1000 && this.jwks.get(svid.kid)) {
      this.jwks.refreshIfStale(now, waitUntil);
      return svid;
    }
    this.verified.delete(token);
    return undefined;
  }

  /** Drops the cached tokens signed by any of `kids` (keys the JWKS no longer publishes). */
  private forgetTokensOf(kids: ReadonlySet<string>): void {
    for (const [token, svid] of this.verified) {
      if (kids.has(svid.kid)) this.verified.delete(token);
    }
  }

  /** Verifies `token` (signature and claims) and caches it; throws SvidError. */
  async verify(
    token: string,
    waitUntil: (promise: Promise<unknown>) => void,
  ): Promise<VerifiedSvid> {
    this.verifications++;
    try {
      const svid = await verifySvid(token, {
        trustDomain: this.options.trustDomain,
        key: (kid) => this.jwks.resolve(kid, waitUntil),
        now: this.options.now(),
        skewSeconds: CLOCK_SKEW_SECONDS,
      });
      if (this.verified.size >= MAX_CACHED) {
        this.verified.delete(this.verified.keys().next().value as string);
      }
      this.verified.set(token, svid);
      return svid;
    } catch (error) {
      this.failures++;
      throw error;
    }
  }

  /**
   * For `/.mesh/status`: tokens cached, signature checks made (a warm caller adds none) and
   * tokens refused by them.
   */
  view(): { cachedTokens: number; verifications: number; failures: number } {
    return {
      cachedTokens: this.verified.size,
      verifications: this.verifications,
      failures: this.failures,
    };
  }
}

/**
 * What a verified token still needs on this request: not revoked, and — when bound to a
 * certificate — arriving on a connection with that verified certificate (`certificate`, as
 * `clientCertificate` found it: never through a service binding). A reason, or undefined;
 * `explainMissing` adds why there was no certificate, for the log.
 */
export function refusal(
  svid: VerifiedSvid,
  certificate: ClientCertificate | undefined,
  revocations: RevocationList,
  explainMissing?: () => string,
): string | undefined {
  const revoked = revocations.check(svid);
  if (revoked) return revoked;
  if (svid.certificateThumbprint !== undefined) {
    const presented = certificate?.thumbprint;
    if (presented === undefined) {
      const why = explainMissing ? `: ${explainMissing()}` : "";
      return `the token is bound to a client certificate, and none was verified${why}`;
    }
    if (!constantTimeEqual(presented, svid.certificateThumbprint)) {
      return "the token is bound to another client certificate";
    }
  }
  return undefined;
}

/** Compares two strings without an early exit (thumbprints; both of a fixed length). */
export function constantTimeEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

/**
 * Compares a presented secret with the expected one in time that depends on neither — not
 * even the secret's length: both are hashed first (SHA-256) and the digests compared.
 */
export async function sameSecret(presented: string, expected: string): Promise<boolean> {
  const encode = (text: string) => new TextEncoder().encode(text);
  const [a, b] = await Promise.all([
    crypto.subtle.digest("SHA-256", encode(presented)),
    crypto.subtle.digest("SHA-256", encode(expected)),
  ]);
  const x = new Uint8Array(a);
  const y = new Uint8Array(b);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i]! ^ y[i]!;
  return diff === 0;
}
