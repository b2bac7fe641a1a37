/**
 * Helpers for the identity Worker's tests in workerd: publish credentials and revocations to KV
 * the way the control plane does, reach the Worker through its HTTP entry and its Identity
 * entrypoint, and verify what it signs against the JWKS it serves.
 */
import { env, exports } from "cloudflare:workers";
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JWTVerifyOptions } from "jose";
import { buildSnapshot } from "../../core/config/snapshot.ts";
import { validateResources } from "../../core/config/validate.ts";
import type { RouterKeyCertificate, IssuedSvid } from "../../workers/identity/issuer.ts";
import type { IdentityProps, SvidRequest } from "../../workers/identity/index.ts";

export const TRUST_DOMAIN = "meshwork.local";

/** The Identity entrypoint as a binding with these props reaches it. */
interface IdentityStub {
  svid(options?: SvidRequest): Promise<IssuedSvid>;
  certifyRouterKey(publicJwk: unknown): Promise<RouterKeyCertificate>;
  fetch(request: Request): Promise<Response>;
}

// Every Worker's generated types declare a main module, so `exports` is typed loosely across
// the repo; the identity Worker's entrypoint is named here explicitly.
const loopback = exports as unknown as {
  Identity(options: { props: IdentityProps }): IdentityStub;
  default: { fetch(request: Request): Promise<Response> };
};

/**
 * The Identity entrypoint, bound with `props`. Each call's result is awaited into a plain
 * promise: an RPC promise is a proxy on which every property a matcher inspects is another
 * (pipelined) call, and each of those would reject unhandled when the call fails.
 */
export function identityAs(props: IdentityProps): IdentityStub {
  const stub = loopback.Identity({ props });
  return {
    svid: async (options) => await stub.svid(options),
    certifyRouterKey: async (publicJwk) => await stub.certifyRouterKey(publicJwk),
    fetch: async (request) => await stub.fetch(request),
  };
}

/**
 * A request to the identity Worker's HTTP entry (its default export). A `cf` in `init` arrives
 * as `request.cf`, standing for what Cloudflare's edge sets on a request from the internet (a
 * client certificate it verified, say); through the Identity entrypoint, it would be a caller's.
 */
export function callHttp(path: string, init: RequestInit = {}): Promise<Response> {
  return loopback.default.fetch(new Request(`https://identity.example${path}`, init));
}

/** A meshwork.dev/v1 resource. */
export function resource(kind: string, name: string, spec: object) {
  return { apiVersion: "meshwork.dev/v1", kind, metadata: { name }, spec };
}

/** SHA-256 of `text`, lower-case hex (how a WorkloadCredential stores a bootstrap secret). */
export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Validates and publishes `resources` to the identity Worker's KV, as a config version. */
export async function publish(resources: unknown[], version = 1): Promise<void> {
  const result = validateResources(resources);
  if (!result.ok) throw new Error(`test config is invalid: ${JSON.stringify(result.issues)}`);
  const build = buildSnapshot(result.value, version, new Date());
  if (!build.ok) throw new Error(`test config is too large: ${JSON.stringify(build.issues)}`);
  for (const write of build.writes) await env.MESH_CONFIG.put(write.key, write.value);
}

/** The JWKS the Worker serves now. */
export async function fetchJwks(): Promise<{ keys: Record<string, unknown>[] }> {
  const response = await callHttp("/.well-known/jwks.json");
  if (!response.ok) throw new Error(`the JWKS answered ${response.status}`);
  return response.json();
}

/** Verifies `token` against the JWKS served now; returns its header and claims. */
export async function verifyWithJwks(token: string, options: JWTVerifyOptions = {}) {
  const jwks = createLocalJWKSet((await fetchJwks()) as Parameters<typeof createLocalJWKSet>[0]);
  const { payload } = await jwtVerify(token, jwks, { algorithms: ["ES256"], ...options });
  return { header: decodeProtectedHeader(token), payload };
}

/** The base64url encoding of the bytes a hex string spells. */
export function base64urlOfHex(hex: string): string {
  const bytes = hex.match(/../g)!.map((pair) => parseInt(pair, 16));
  return btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}
