/**
 * Test helpers for whole-router tests in workerd: publish a config to KV the way the control
 * plane does, make the router pick it up, and call through either entry.
 */
import { env, exports } from "cloudflare:workers";
import { buildSnapshot } from "../../core/config/snapshot.ts";
import { validateResources } from "../../core/config/validate.ts";
import { configFor } from "../../workers/router/app.ts";
import { ADMIN_HEADERS, withOpenMesh } from "./open-mesh.ts";

let nextVersion = 1;

// The examples' generated types also declare a main module, so `exports` is typed loosely
// across the repo; the router's Mesh entrypoint is named here explicitly.
const meshEntrypoint = (
  exports as unknown as {
    Mesh(options: { props: { caller?: string; target?: string } }): Fetcher;
  }
).Mesh;

/**
 * Validates and publishes `resources` to the router's KV; returns the version. Unless they decide
 * it themselves, the mesh is open (PERMISSIVE, ALLOW by default: helpers/open-mesh.ts).
 */
export async function publish(resources: unknown[]): Promise<number> {
  const result = validateResources(withOpenMesh(resources));
  if (!result.ok) throw new Error(`test config is invalid: ${JSON.stringify(result.issues)}`);
  const version = nextVersion++;
  const build = buildSnapshot(result.value, version, new Date());
  if (!build.ok) throw new Error(`test config is too large: ${JSON.stringify(build.issues)}`);
  for (const write of build.writes) await env.MESH_CONFIG.put(write.key, write.value);
  await refresh();
  return version;
}

/**
 * Makes the router re-read KV now and returns its status. Tests publish many times a second,
 * more than `?refresh` takes (one a second per isolate: 429 beyond), so this asks the isolate's
 * config cache directly — the same state the router's entries use — then reads the status.
 */
export async function refresh(): Promise<Record<string, unknown>> {
  await configFor(env).refreshNow();
  const response = await exports.default.fetch(
    new Request("http://router/.mesh/status", { headers: ADMIN_HEADERS }),
  );
  return (await response.json()) as Record<string, unknown>;
}

/** A call over the HTTP entry: `Host` names the destination. */
export function callHttp(host: string, path: string, init: RequestInit = {}): Promise<Response> {
  return exports.default.fetch(new Request(`http://${host}${path}`, init));
}

/** A call through the Mesh entrypoint, as a caller's service binding makes it. */
export function callAs(
  caller: string,
  target: string,
  path: string,
  init: RequestInit = {},
): Promise<Response> {
  return meshEntrypoint({ props: { caller, target } }).fetch(
    new Request(`https://${target}${path}`, init),
  );
}

/** The echo service's answer. */
export interface Echoed {
  service: string;
  version: string;
  method: string;
  path: string;
  host: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  body: string;
  /** Requests with this X-Echo-Key the echo instance has seen (0 without a key). */
  seen: number;
}

export function service(name: string, ...bindings: string[]) {
  return {
    apiVersion: "meshwork.dev/v1",
    kind: "Service",
    metadata: { name },
    spec: { endpoints: bindings.map((binding) => ({ binding })) },
  };
}

export function httpRoute(name: string, parent: string, rules: unknown[], metadata: object = {}) {
  return {
    apiVersion: "gateway.networking.k8s.io/v1",
    kind: "HTTPRoute",
    metadata: { name, ...metadata },
    spec: { parentRefs: [{ name: parent }], rules },
  };
}
