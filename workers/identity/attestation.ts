/**
 * How a workload outside Workers proves which service it is, over HTTP: by a client certificate
 * that Cloudflare verified at the TLS handshake (mTLS), or by a bootstrap secret. Each proof is
 * checked against the WorkloadCredentials of the published config.
 *
 * A refusal never tells the caller what was wrong (unknown certificate, wrong secret, disabled or
 * expired credential all read the same), so the endpoint cannot be used to probe which secrets or
 * certificates are registered; the reason travels as the error's cause, for the log.
 */
import type { WorkloadCredentialResource } from "../../core/config/identity-schema.ts";
import { MeshError } from "../../core/errors.ts";
import { thumbprintFromHex } from "../../core/identity/svid.ts";

/** Who the caller proved to be. */
export interface Attestation {
  readonly service: string;
  /** The WorkloadCredential that proved it. */
  readonly credential: string;
  /**
   * RFC 8705 `x5t#S256` (base64url SHA-256 of the certificate) when the proof was a client
   * certificate: the token is bound to it.
   */
  readonly certificateThumbprint: string | undefined;
}

/** A client certificate Cloudflare verified, as `request.cf.tlsClientAuth` describes it. */
export interface VerifiedCertificate {
  /** SHA-256 of the DER certificate, lower-case hex. */
  readonly fingerprintSHA256: string;
  readonly subjectDN: string;
}

/** The longest bootstrap secret looked at (a generated one is 32 to 64 characters). */
const MAX_SECRET_LENGTH = 1024;
const BEARER = /^Bearer +([\x21-\x7e]+)$/i;

const REFUSED =
  "no valid workload credential: present a client certificate or a bootstrap secret (Authorization: Bearer) that a WorkloadCredential registers";

function refuse(reason: string): MeshError {
  return new MeshError("unauthenticated", REFUSED, { cause: reason });
}

/** A credential proves something only while it is enabled and unexpired. */
function usable(credential: WorkloadCredentialResource, now: number): boolean {
  const { disabled, expires } = credential.spec;
  return !disabled && (expires === undefined || Date.parse(expires) > now);
}

/**
 * The client certificate of the request, when one was presented, verified against the zone's
 * mTLS CA and is not revoked; undefined otherwise (no certificate, or one that proves nothing).
 */
export function verifiedCertificate(cf: unknown): VerifiedCertificate | undefined {
  const auth = (cf as { tlsClientAuth?: Record<string, unknown> } | undefined)?.tlsClientAuth;
  if (!auth || auth.certPresented !== "1" || auth.certVerified !== "SUCCESS") return undefined;
  if (auth.certRevoked === "1") return undefined;
  const fingerprint = auth.certFingerprintSHA256;
  const subject = auth.certSubjectDN;
  if (typeof fingerprint !== "string" || typeof subject !== "string") return undefined;
  return { fingerprintSHA256: fingerprint.toLowerCase(), subjectDN: subject };
}

/**
 * The credential a certificate matches: every field a credential sets must match, and a
 * credential naming the certificate's fingerprint wins over one naming only its subject (the
 * fingerprint names one certificate; a subject may be reissued to anyone the CA trusts).
 */
function matchCertificate(
  certificate: VerifiedCertificate,
  credentials: readonly WorkloadCredentialResource[],
  now: number,
): WorkloadCredentialResource {
  const byFingerprint: WorkloadCredentialResource[] = [];
  const bySubject: WorkloadCredentialResource[] = [];
  for (const credential of credentials) {
    const wanted = credential.spec.certificate;
    if (!wanted) continue;
    const fingerprint = wanted.fingerprintSHA256;
    if (fingerprint !== undefined && fingerprint !== certificate.fingerprintSHA256) continue;
    if (wanted.subjectDN !== undefined && wanted.subjectDN !== certificate.subjectDN) continue;
    (fingerprint !== undefined ? byFingerprint : bySubject).push(credential);
  }
  const candidates = byFingerprint.length > 0 ? byFingerprint : bySubject;
  if (candidates.length === 0) throw refuse("no WorkloadCredential matches the certificate");
  const services = new Set(candidates.map((c) => c.spec.service));
  if (services.size > 1) {
    throw refuse(
      `the certificate matches WorkloadCredentials of several services (${[...services].join(", ")}): an ambiguous config proves nothing`,
    );
  }
  // A credential that is disabled or expired proves nothing, even if another matches.
  const credential = candidates.find((c) => usable(c, now));
  if (!credential) {
    throw refuse(
      `the certificate matches only disabled or expired WorkloadCredentials (${candidates.map((c) => c.metadata.name).join(", ")})`,
    );
  }
  return credential;
}

function bytesOfHex(hex: string): Uint8Array {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

/**
 * The credential whose bootstrap secret is `secret`. Its SHA-256 is compared with every
 * credential's in constant time, and all are compared, so the time taken says nothing about
 * which (or whether any) stored hash shares a prefix with it.
 */
async function matchSecret(
  secret: string,
  credentials: readonly WorkloadCredentialResource[],
  now: number,
): Promise<WorkloadCredentialResource> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(secret)),
  );
  let match: WorkloadCredentialResource | undefined;
  for (const credential of credentials) {
    const stored = credential.spec.bootstrap?.secretSha256;
    if (stored === undefined) continue;
    if (crypto.subtle.timingSafeEqual(digest, bytesOfHex(stored)) && !match) match = credential;
  }
  if (!match) throw refuse("the bootstrap secret matches no WorkloadCredential");
  if (!usable(match, now)) {
    throw refuse(`WorkloadCredential '${match.metadata.name}' is disabled or expired`);
  }
  return match;
}

/**
 * Who the request's caller is: a verified client certificate registered by a WorkloadCredential
 * (the token is then bound to it), else a registered bootstrap secret. Throws `unauthenticated`.
 */
export async function attestRequest(
  request: Request,
  credentials: readonly WorkloadCredentialResource[],
  now: number,
): Promise<Attestation> {
  const certificate = verifiedCertificate(request.cf);
  const authorization = request.headers.get("authorization");
  let certificateRefusal: MeshError | undefined;
  if (certificate) {
    try {
      const credential = matchCertificate(certificate, credentials, now);
      const thumbprint = thumbprintFromHex(certificate.fingerprintSHA256);
      if (thumbprint === undefined) {
        throw refuse("the certificate's SHA-256 fingerprint is not 64 hex digits: cannot bind");
      }
      return {
        service: credential.spec.service,
        credential: credential.metadata.name,
        certificateThumbprint: thumbprint,
      };
    } catch (error) {
      // A workload may hold both proofs; the secret is still worth checking.
      if (authorization === null) throw error;
      certificateRefusal = error as MeshError;
    }
  }
  if (authorization === null) {
    throw refuse("no verified client certificate and no Authorization header");
  }
  const secret = BEARER.exec(authorization)?.[1];
  if (secret === undefined || secret.length > MAX_SECRET_LENGTH) {
    throw refuse("the Authorization header is not 'Bearer <bootstrap secret>'");
  }
  try {
    const credential = await matchSecret(secret, credentials, now);
    return {
      service: credential.spec.service,
      credential: credential.metadata.name,
      certificateThumbprint: undefined,
    };
  } catch (error) {
    if (certificateRefusal) {
      throw refuse(`${String(certificateRefusal.cause)}; ${String((error as MeshError).cause)}`);
    }
    throw error;
  }
}
