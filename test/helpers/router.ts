/**
 * A router isolate of its own, for tests of the state an isolate keeps (breakers, budgets,
 * latency, rate limits): its own KV binding (so its own router state), serving `resources`,
 * reporting to the real BackendState namespace unless told otherwise. Give its Services names
 * no other test uses, and their Durable Objects start fresh too.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { handleMeshCall, routerFetch, routerFor } from "../../workers/router/app.ts";
import type { EntryKind, MeshProps } from "../../workers/router/call.ts";
import type { CallOutcome } from "../../workers/router/outcome.ts";
import type { Echoed } from "./mesh.ts";
import { MemoryKV } from "./memory-kv.ts";
import { ADMIN_HEADERS, TEST_ADMIN_TOKEN } from "./open-mesh.ts";

let counter = 0;

/**
 * A name no other test's Service has — nor its Durable Object, which other test files share:
 * `<prefix>-<n>-<random>`.
 */
export function uniqueName(prefix: string): string {
  return `${prefix}-${++counter}-${crypto.randomUUID().slice(0, 8)}`;
}

/** One call's answer, read whole. */
export interface Answer {
  status: number;
  /** `X-Mesh-Error`, when the mesh answered. */
  error: string | null;
  headers: Headers;
  /** The mesh's error body (`{ error: { code, message } }`, parsed), when the mesh answered. */
  errorBody: unknown;
  /** The echo backend's answer, when it answered. */
  echo: Echoed | undefined;
  /** The call's outcome record. */
  outcome: CallOutcome;
  /** Waits for what the call handed to `waitUntil` (background refreshes, reports). */
  background(): Promise<void>;
}

export interface IsolatedRouter {
  readonly env: Env;
  /** The router's KV: publish another version to it with `kv.publish(resources, v, …)`. */
  readonly kv: MemoryKV;
  /**
   * Calls `http://<host><path>` over the HTTP entry; with `caller`, through the Mesh entrypoint
   * with props `{ caller, target: host }`, as a caller's binding would.
   */
  call(host: string, path?: string, init?: RequestInit, caller?: string): Promise<Answer>;
  /** Calls `http://<host><path>` through the Mesh entrypoint, with `props` (none: `{}`). */
  callThroughBinding(
    props: MeshProps,
    host: string,
    path?: string,
    init?: RequestInit,
  ): Promise<Answer>;
  /** The router's `/.mesh/status`, as an admin. */
  status(): Promise<RouterStatus>;
  /** GET `path` (a `/.mesh/` endpoint) over the HTTP entry, with `headers` (default: an admin's). */
  get(path: string, headers?: Record<string, string>): Promise<Response>;
  /** `request` through the router's fetch, as the entry `entry` hands it over. */
  fetch(request: Request, entry: EntryKind): Promise<Response>;
}

export interface RouterStatus {
  breakers: Record<string, { state: string; trips: number }>;
  retryBudgets: Record<string, { requests: number; retries: number }>;
  latency: Record<string, { samples: number; meshSamples: number | null; p99Ms: number | null }>;
  rateLimits: Record<string, Record<string, { share: number }>>;
  backendSync: { location: string | null; reports: number; lastError: { message: string } | null };
  identity: {
    jwks: { keys: string[]; awaitedFetches: number; backgroundFetches: number };
    tokens: { cachedTokens: number; verifications: number; failures: number };
    revocations: number;
  };
  version: number;
}

export interface IsolatedRouterOptions {
  /** The BACKEND_STATE binding (default: the real namespace). */
  backendState?: unknown;
  /** The IDENTITY binding (default: the test environment's, if any). */
  identity?: unknown;
  /** The POLICY binding (default: the test environment's, if any). */
  policy?: unknown;
  /** Vars set on the router (ADMIN_SERVICES …). */
  vars?: Record<string, string>;
  /** Other bindings set on the router (a fake MESH_ANALYTICS dataset …). */
  bindings?: Record<string, unknown>;
  /** Publish `resources` as they are, without opening the mesh (helpers/open-mesh.ts). */
  zeroTrust?: boolean;
  /** The router state's clock (identity and `?refresh`'s limit); default Date.now. */
  now?: () => number;
}

export function isolatedRouter(
  resources: unknown[],
  options: IsolatedRouterOptions = {},
): IsolatedRouter {
  const kv = new MemoryKV();
  kv.publish(resources, 1, { open: !options.zeroTrust });
  const routerEnv = {
    ...env,
    ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    ...("identity" in options ? { IDENTITY: options.identity } : {}),
    ...("policy" in options ? { POLICY: options.policy } : {}),
    ...options.vars,
    ...options.bindings,
    MESH_CONFIG: kv as unknown as KVNamespace,
    BACKEND_STATE: ("backendState" in options
      ? options.backendState
      : env.BACKEND_STATE) as Env["BACKEND_STATE"],
  } as Env;
  if (options.now) routerFor(routerEnv, { now: options.now });
  async function answer(
    request: Request,
    ctx: ExecutionContext,
    entry: EntryKind,
  ): Promise<Answer> {
    let outcome: CallOutcome | undefined;
    // Not waiting for the context: its waitUntil holds the reports to the Durable Objects,
    // which wait up to a second to batch (they run on in the background, as in production).
    const response = await handleMeshCall(request, routerEnv, ctx, {
      entry,
      onOutcome: (o) => (outcome = o),
    });
    const text = await response.text();
    const error = response.headers.get("x-mesh-error");
    const json = text.startsWith("{") ? (JSON.parse(text) as unknown) : undefined;
    return {
      status: response.status,
      error,
      headers: response.headers,
      errorBody: error === null ? undefined : json,
      echo: error === null ? (json as Echoed | undefined) : undefined,
      outcome: outcome!,
      background: () => waitOnExecutionContext(ctx),
    };
  }
  const fetch = (request: Request, entry: EntryKind) =>
    routerFetch(request, routerEnv, createExecutionContext(), entry);
  const get = (path: string, headers: Record<string, string> = ADMIN_HEADERS) =>
    fetch(new Request(`http://router${path}`, { headers }), "http");
  const router: IsolatedRouter = {
    env: routerEnv,
    kv,
    call(host, path = "/", init = {}, caller) {
      if (caller !== undefined) {
        return router.callThroughBinding({ caller, target: host }, host, path, init);
      }
      return answer(new Request(`http://${host}${path}`, init), createExecutionContext(), "http");
    },
    callThroughBinding(props, host, path = "/", init = {}) {
      const ctx = createExecutionContext();
      Object.assign(ctx, { props });
      return answer(new Request(`http://${host}${path}`, init), ctx, "binding");
    },
    async status() {
      return (await (await get("/.mesh/status")).json()) as RouterStatus;
    },
    get,
    fetch,
  };
  return router;
}

/** Reads `read` until `ok` holds (up to about `ms`), and returns the last value. */
export async function eventually<T>(
  read: () => Promise<T>,
  ok: (value: T) => boolean,
  ms = 4000,
): Promise<T> {
  let value = await read();
  for (let waited = 0; waited < ms && !ok(value); waited += 50) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    value = await read();
  }
  return value;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A BackendPolicy named `name` on the Services `targets`. */
export function backendPolicy(name: string, targets: string[], spec: object) {
  return {
    apiVersion: "meshwork.dev/v1",
    kind: "BackendPolicy",
    metadata: { name },
    spec: { targetRefs: targets.map((t) => ({ kind: "Service", name: t })), ...spec },
  };
}
