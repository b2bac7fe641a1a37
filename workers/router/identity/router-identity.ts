/**
 * The isolate's identity state: the mesh's verification keys, the verified-token cache and the
 * passport signer — one per router environment, outliving requests like the config cache.
 */
import type { RouterSettings } from "../settings.ts";
import { Authenticator } from "./authenticator.ts";
import { JwksCache } from "./jwks.ts";
import { PassportSigner, type RouterKeyCertifier } from "./passports.ts";

/** Least time between two JWKS fetches a request waits for (unknown kids). */
const JWKS_MIN_REFRESH_MS = 30_000;
/** How long keys are fresh when the JWKS answer carries no max-age. */
const JWKS_DEFAULT_MAX_AGE_MS = 300_000;

export interface RouterIdentity {
  readonly trustDomain: string;
  readonly jwks: JwksCache;
  readonly authenticator: Authenticator;
  readonly passports: PassportSigner;
}

/** The router's binding to the identity Worker's `Identity` entrypoint. */
type IdentityBinding = Fetcher & RouterKeyCertifier;

/** The isolate's identity state for `env`, on the clock `now` (the router's; tests set theirs). */
export function createRouterIdentity(
  env: Env,
  settings: RouterSettings,
  now: () => number,
): RouterIdentity {
  const binding = () => (env as unknown as { IDENTITY?: IdentityBinding }).IDENTITY;
  const jwks = new JwksCache(
    () => {
      const identity = binding();
      if (!identity) return Promise.reject(new Error("the router has no IDENTITY binding"));
      return identity.fetch("https://identity.mesh/.well-known/jwks.json");
    },
    { now, minRefreshMs: JWKS_MIN_REFRESH_MS, defaultMaxAgeMs: JWKS_DEFAULT_MAX_AGE_MS },
  );
  return {
    trustDomain: settings.trustDomain,
    jwks,
    authenticator: new Authenticator(jwks, { trustDomain: settings.trustDomain, now }),
    passports: new PassportSigner(binding, { trustDomain: settings.trustDomain, now }),
  };
}
