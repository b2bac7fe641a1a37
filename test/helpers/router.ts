/**
 * A router isolate of its own, for tests of the state an isolate keeps (breakers, budgets,
 * latency, rate limits): its own KV binding (so its own router state), serving `resources`,
 * reporting to the real BackendState namespace unless told otherwise. Give its Services names
 * no other test uses, and their Durable Objects start fresh too.
 */
import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { handleMeshCall, routerFetch } from "../../workers/router/app.ts";
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
  /** The echo backend's answer, when it answered. */
  echo: Echoed | undefined;
  /** The call's outcome record. */
  outcome: CallOutcome;
}

export interface IsolatedRouter {
  readonly env: Env;
  /** Calls `http://<host><path>`; `caller` sets the Mesh entry's props, as a binding would. */
  call(host: string, path?: string, init?: RequestInit, caller?: string): Promise<Answer>;
  /** The router's `/.mesh/status`. */
  status(): Promise<RouterStatus>;
}

export interface RouterStatus {
  breakers: Record<string, { state: string; trips: number }>;
  retryBudgets: Record<string, { requests: number; retries: number }>;
  latency: Record<string, { samples: number; meshSamples: number | null; p99Ms: number | null }>;
  rateLimits: Record<string, Record<string, { share: number }>>;
  backendSync: { location: string | null; reports: number; lastError: { message: string } | null };
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
  /** Publish `resources` as they are, without opening the mesh (helpers/open-mesh.ts). */
  zeroTrust?: boolean;
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
    MESH_CONFIG: kv as unknown as KVNamespace,
    BACKEND_STATE: ("backendState" in options
      ? options.backendState
      : env.BACKEND_STATE) as Env["BACKEND_STATE"],
  } as Env;
  return {
    env: routerEnv,
    async call(host, path = "/", init = {}, caller) {
      const ctx = createExecutionContext();
      if (caller !== undefined) Object.assign(ctx, { props: { caller, target: host } });
      let outcome: CallOutcome | undefined;
      // Not waiting for the context: its waitUntil holds the reports to the Durable Objects,
      // which wait up to a second to batch (they run on in the background, as in production).
      const response = await handleMeshCall(
        new Request(`http://${host}${path}`, init),
        routerEnv,
        ctx,
        {
          onOutcome: (o) => (outcome = o),
        },
      );
      const text = await response.text();
      const error = response.headers.get("x-mesh-error");
      return {
        status: response.status,
        error,
        headers: response.headers,
        echo: error === null && text.startsWith("{") ? (JSON.parse(text) as Echoed) : undefined,
        outcome: outcome!,
      };
    },
    async status() {
      const response = await routerFetch(
        new Request("http://router/.mesh/status", { headers: ADMIN_HEADERS }),
        routerEnv,
        createExecutionContext(),
      );
      return (await response.json()) as RouterStatus;
    },
  };
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
