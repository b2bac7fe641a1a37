/**
 * The names every part of the mesh's identity system agrees on: SPIFFE IDs, the issuer and
 * audiences of the tokens the identity Worker signs, and the token types that keep one kind of
 * token from being accepted as another (a passport is never an SVID, a router key certificate
 * never a passport).
 */

/** The SPIFFE ID of a service: `spiffe://<trust domain>/<service>`. */
export function spiffeId(trustDomain: string, service: string): string {
  return `spiffe://${trustDomain}/${service}`;
}

/**
 * The service a SPIFFE ID names inside `trustDomain` (its path, without the leading `/`), or
 * undefined when the ID is of another trust domain or not a SPIFFE ID.
 */
export function serviceOf(id: string, trustDomain: string): string | undefined {
  const prefix = `spiffe://${trustDomain}/`;
  if (!id.startsWith(prefix)) return undefined;
  const service = id.slice(prefix.length);
  return service === "" ? undefined : service;
}

/** The identity Worker's service name. */
export const IDENTITY_SERVICE = "meshwork-identity";
/** The router's service name. */
export const ROUTER_SERVICE = "meshwork-router";
/** The policy (control-plane) Worker's service name. */
export const POLICY_SERVICE = "meshwork-policy";

/**
 * The services the mesh itself runs as. No workload may be one: the identity Worker issues them
 * no JWT-SVID, and no WorkloadCredential may name one. A token whose subject is the identity
 * Worker's ID reads as the issuer's own, one that is the router's as a router's, and the
 * policy Worker's as the control plane's — none of which a workload's token may ever pass for.
 */
export const RESERVED_SERVICES: readonly string[] = [
  ROUTER_SERVICE,
  IDENTITY_SERVICE,
  POLICY_SERVICE,
];

/** True for one of the mesh's own services (RESERVED_SERVICES). */
export function isReservedService(service: string): boolean {
  return RESERVED_SERVICES.includes(service);
}

/** `iss` of every token the identity Worker signs. */
export function identityIssuer(trustDomain: string): string {
  return spiffeId(trustDomain, IDENTITY_SERVICE);
}

/** The router's own identity: `aud` of SVIDs presented to it, `iss` of the passports it signs. */
export function routerId(trustDomain: string): string {
  return spiffeId(trustDomain, ROUTER_SERVICE);
}

/** JOSE `typ` of a JWT-SVID. */
export const SVID_TYPE = "JWT";
/** JOSE `typ` of a passport (signed by a router, for a destination). */
export const PASSPORT_TYPE = "mesh-passport+jwt";
/** JOSE `typ` of a router key certificate (signed by the identity Worker, for a router's key). */
export const ROUTER_KEY_TYPE = "mesh-router-key+jwt";

/**
 * The JWT-SVID claim naming its subject's control-plane roles (`["admin"]`, `["viewer"]`): the
 * identity Worker sets it for a workload whose WorkloadCredential grants roles, and the policy
 * Worker's admin API takes it. A private claim, namespaced so it collides with no other.
 */
export const ROLES_CLAIM = "meshwork.dev/roles";
/** Control-plane roles: `admin` reads and changes the config through the admin API; `viewer` reads it. */
export const ADMIN_ROLES = ["admin", "viewer"] as const;
export type AdminRole = (typeof ADMIN_ROLES)[number];

/** The one signature algorithm of the mesh. */
export const ALGORITHM = "ES256";

/** Largest token the mesh accepts, in characters (an SVID is about 600; passports about 1,300). */
export const MAX_TOKEN_LENGTH = 4096;
