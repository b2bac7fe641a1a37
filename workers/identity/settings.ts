/**
 * The identity Worker's settings, from its `[vars]`: read once per isolate and checked, so a
 * typo in a var is reported in `GET /health` (and the default used) instead of silently issuing
 * tokens with a lifetime nobody meant. The SigningKeys Durable Object reads the same vars, so
 * its key ring is planned for the longest token the Worker can sign.
 */
import {
  ISSUER_CLOCK_SKEW_MS,
  leadTimeMs,
  VERIFIER_CLOCK_SKEW_MS,
  type RotationSettings,
} from "../../core/identity/key-ring.ts";

export interface IdentitySettings {
  /** SPIFFE trust domain of every identity the Worker issues. */
  readonly trustDomain: string;
  /** Lifetime of a JWT-SVID a workload asks for without naming one, in seconds. */
  readonly svidTtlSeconds: number;
  /** Longest JWT-SVID lifetime a workload may ask for, in seconds (longer requests are capped). */
  readonly svidMaxTtlSeconds: number;
  /** Lifetime of a router key certificate, in seconds. */
  readonly routerKeyTtlSeconds: number;
  /** How long a signing key signs before its successor takes over, in seconds. */
  readonly keyRotationSeconds: number;
  /** `Cache-Control: max-age` of the JWKS, in seconds. */
  readonly jwksMaxAgeSeconds: number;
  /** Vars that were invalid, and what was used instead. */
  readonly problems: readonly string[];
}

/** The vars the settings come from (the Worker's and the Durable Object's Env). */
export interface IdentityVars {
  TRUST_DOMAIN?: string;
  SVID_TTL_SECONDS?: string;
  SVID_MAX_TTL_SECONDS?: string;
  ROUTER_KEY_TTL_SECONDS?: string;
  KEY_ROTATION_SECONDS?: string;
  JWKS_MAX_AGE_SECONDS?: string;
}

export const DEFAULT_TRUST_DOMAIN = "meshwork.local";
const DAY = 86_400;

// A trust domain as SPIFFE IDs in the mesh's resources spell it (core/config/identity-schema.ts).
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;

/** One var as a whole number of seconds in [min, max], or its default and a problem. */
function seconds(
  problems: string[],
  name: keyof IdentityVars,
  raw: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (Number.isInteger(value) && value >= min && value <= max) return value;
  problems.push(
    `${name}=${JSON.stringify(raw)} is not a whole number of seconds from ${min} to ${max}; using ${fallback}`,
  );
  return fallback;
}

/** Reads and checks the identity Worker's vars. */
export function readSettings(env: IdentityVars): IdentitySettings {
  const problems: string[] = [];
  let trustDomain = DEFAULT_TRUST_DOMAIN;
  if (env.TRUST_DOMAIN !== undefined && env.TRUST_DOMAIN !== "") {
    if (TRUST_DOMAIN.test(env.TRUST_DOMAIN)) trustDomain = env.TRUST_DOMAIN;
    else {
      problems.push(
        `TRUST_DOMAIN=${JSON.stringify(env.TRUST_DOMAIN)} is not a trust domain (lower-case letters, digits, '.', '_' and '-'); using "${DEFAULT_TRUST_DOMAIN}"`,
      );
    }
  }
  // JWT-SVIDs are meant to be short-lived: a day is already generous.
  const svidMaxTtlSeconds = seconds(
    problems,
    "SVID_MAX_TTL_SECONDS",
    env.SVID_MAX_TTL_SECONDS,
    3600,
    1,
    DAY,
  );
  let svidTtlSeconds = seconds(problems, "SVID_TTL_SECONDS", env.SVID_TTL_SECONDS, 300, 1, DAY);
  if (svidTtlSeconds > svidMaxTtlSeconds) {
    problems.push(
      `SVID_TTL_SECONDS=${svidTtlSeconds} is more than SVID_MAX_TTL_SECONDS=${svidMaxTtlSeconds}; using ${svidMaxTtlSeconds}`,
    );
    svidTtlSeconds = svidMaxTtlSeconds;
  }
  const routerKeyTtlSeconds = seconds(
    problems,
    "ROUTER_KEY_TTL_SECONDS",
    env.ROUTER_KEY_TTL_SECONDS,
    3600,
    60,
    DAY,
  );
  const keyRotationSeconds = seconds(
    problems,
    "KEY_ROTATION_SECONDS",
    env.KEY_ROTATION_SECONDS,
    DAY,
    60,
    365 * DAY,
  );
  const jwksMaxAgeSeconds = seconds(
    problems,
    "JWKS_MAX_AGE_SECONDS",
    env.JWKS_MAX_AGE_SECONDS,
    300,
    0,
    DAY,
  );
  const settings = {
    trustDomain,
    svidTtlSeconds,
    svidMaxTtlSeconds,
    routerKeyTtlSeconds,
    keyRotationSeconds,
    jwksMaxAgeSeconds,
    problems,
  };
  const leadSeconds = leadTimeMs(rotationSettings(settings)) / 1000;
  if (keyRotationSeconds < leadSeconds) {
    // Not an error: the key ring stretches the period. Said here so nobody expects otherwise.
    problems.push(
      `KEY_ROTATION_SECONDS=${keyRotationSeconds} is shorter than the time a key must be published before it signs (${leadSeconds} s: the longest token or JWKS max-age, plus clock skew); keys rotate every ${leadSeconds} s`,
    );
  }
  return settings;
}

/** The key ring's view of the settings. */
export function rotationSettings(settings: IdentitySettings): RotationSettings {
  return {
    rotationPeriodMs: settings.keyRotationSeconds * 1000,
    // Anything the keys sign: SVIDs and router key certificates.
    maxTokenLifetimeMs: Math.max(settings.svidMaxTtlSeconds, settings.routerKeyTtlSeconds) * 1000,
    jwksMaxAgeMs: settings.jwksMaxAgeSeconds * 1000,
    verifierSkewMs: VERIFIER_CLOCK_SKEW_MS,
    issuerSkewMs: ISSUER_CLOCK_SKEW_MS,
  };
}
