/**
 * Helpers for the policy Worker's tests in workerd: calls to its admin API (as an admin, a
 * viewer, or nobody), resources to send, SVIDs from the real identity Worker beside it, and the
 * PolicyStore's clock and alarm under the test's control.
 */
import { env, exports } from "cloudflare:workers";
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { POLICY_STORE_NAME, type PolicyStore } from "../../durable-objects/policy-store.ts";
import type { IssuedSvid } from "../../workers/identity/issuer.ts";
import {
  ADMIN_SERVICE,
  POLICY_ADMIN_TOKEN,
  STRANGER_SERVICE,
  VIEWER_SERVICE,
} from "./constants.ts";

export const TRUST_DOMAIN = "meshwork.local";
export const ADMIN = { authorization: `Bearer ${POLICY_ADMIN_TOKEN}` } as const;

const worker = exports as unknown as {
  default: { fetch(request: Request): Promise<Response> };
  RouterReports: {
    report(report: unknown): Promise<unknown>;
    metrics(report: unknown): Promise<unknown>;
  };
};

/** The router's view of the policy Worker: its RouterReports entrypoint. */
export function routerReports() {
  return {
    report: async (report: unknown) => await worker.RouterReports.report(report),
    metrics: async (report: unknown) => await worker.RouterReports.metrics(report),
  };
}

/** The PolicyStore. */
export const store = () => env.POLICY_STORE.getByName(POLICY_STORE_NAME);

export interface CallOptions {
  /** JSON-encoded unless a string; YAML when `yaml`. */
  body?: unknown;
  yaml?: boolean;
  /** Credentials and other headers; default: the admin token. */
  headers?: Record<string, string>;
}

/** A request to the policy Worker's HTTP entry. */
export function call(method: string, path: string, options: CallOptions = {}) {
  const headers = new Headers(options.headers ?? ADMIN);
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
    headers.set("content-type", options.yaml ? "application/yaml" : "application/json");
  }
  return worker.default.fetch(
    new Request(`https://policy.example${path}`, { method, headers, body }),
  );
}

/** The JSON body of a call that must answer `status`. */
export async function expectJson<T = Record<string, unknown>>(
  response: Promise<Response> | Response,
  status = 200,
): Promise<T> {
  const answer = await response;
  const text = await answer.text();
  if (answer.status !== status) {
    throw new Error(`expected ${status}, got ${answer.status}: ${text.slice(0, 2000)}`);
  }
  return JSON.parse(text) as T;
}

/** The current version, as GET /v1/config says. */
export async function currentVersion(): Promise<number> {
  return (await expectJson<{ version: number }>(call("GET", "/v1/config"))).version;
}

/** A Service with one binding endpoint. */
export function service(name: string, binding = "ECHO_V1", weight?: number) {
  return {
    apiVersion: "meshwork.dev/v1",
    kind: "Service",
    metadata: { name },
    spec: { endpoints: [{ binding, ...(weight === undefined ? {} : { weight }) }] },
  };
}

/** An HTTPRoute attached to `parent`, sending everything to `backends`. */
export function route(name: string, parent: string, backends: string[]) {
  return {
    apiVersion: "gateway.networking.k8s.io/v1",
    kind: "HTTPRoute",
    metadata: { name },
    spec: {
      parentRefs: [{ name: parent }],
      rules: [{ backendRefs: backends.map((backend) => ({ name: backend })) }],
    },
  };
}

/** POST /v1/apply as the admin; returns the answer's body (must be 200). */
export function apply(resources: unknown[], query = "", headers: Record<string, string> = {}) {
  return expectJson<WriteAnswer>(
    call("POST", `/v1/apply${query}`, { body: { resources }, headers: { ...ADMIN, ...headers } }),
  );
}

export interface WriteAnswer {
  version: number;
  warnings: { path: string; message: string }[];
  diff: { added: string[]; changed: string[]; removed: string[] };
  dryRun?: boolean;
}

export interface ErrorAnswer {
  error: {
    code: string;
    message: string;
    issues?: { path: string; message: string }[];
    version?: number;
  };
}

type IdentityStub = { svid(options?: object): Promise<IssuedSvid> };
const identities = env as unknown as Record<string, IdentityStub>;

/** A JWT-SVID for `service` from the identity Worker (through a binding with those props). */
export async function svidFor(
  service: typeof ADMIN_SERVICE | typeof VIEWER_SERVICE | typeof STRANGER_SERVICE,
): Promise<string> {
  const binding = identities[`IDENTITY_AS_${service.toUpperCase()}`]!;
  return (await binding.svid()).token;
}

/** The last audit entries, newest first. */
export async function auditEntries(limit = 20) {
  return (
    await expectJson<{
      entries: {
        id: number;
        actor: string;
        action: string;
        outcome: string;
        version: number | null;
        detail: string;
      }[];
    }>(call("GET", `/v1/audit?limit=${limit}`))
  ).entries;
}

/**
 * Gives the store a clock the test moves, an hour ahead of real time, so the alarms it sets are
 * all in the real future and none fires on its own: the test runs them (`runAlarm`). Runs an
 * alarm already pending first, so the test starts with nothing left to publish.
 */
export async function controlStoreClock() {
  const clock = { now: Math.ceil(Date.now() / 1000) * 1000 + 3_600_000 };
  await runInDurableObject(store(), (instance: PolicyStore) => {
    instance.now = () => clock.now;
  });
  await runDurableObjectAlarm(store());
  return clock;
}

/** Runs the store's alarm if one is set; true when it ran. */
export const runAlarm = () => runDurableObjectAlarm(store());

/** When the store's alarm is set (ms), or null. */
export function alarmAt(): Promise<number | null> {
  return runInDurableObject(store(), (_instance, state) => state.storage.getAlarm());
}
