/**
 * The router's HTTP surface: the reserved `/.mesh/` endpoints (a small Hono app), and everything
 * else straight into the mesh pipeline. Both entries — the HTTP entry (destination from `Host`)
 * and the `Mesh` entrypoint (destination from binding props) — come through `routerFetch`.
 *
 * Mesh calls bypass Hono on purpose: in `npm run bench` on workerd, taking Hono's routing and
 * context off the mesh path cut the router's CPU per call by roughly 100 µs (noisy machine; see
 * BENCHMARKS.md), and the pipeline needs none of it. Hono serves the mesh's own endpoints.
 */
import { Hono } from "hono";
import { MeshError } from "../../core/errors.ts";
import { systemRandom, type RandomSource } from "../../core/random.ts";
import type { MeshCall, MeshProps } from "./call.ts";
import { ConfigCache } from "./config-cache.ts";
import { runPipeline } from "./pipeline.ts";
import { asMeshError, errorResponse } from "./rescue.ts";

const DEFAULT_REFRESH_SECONDS = 5;
// Placeholder until requestContext builds the call's outgoing headers (its first act).
const EMPTY_HEADERS = new Headers();

// One cache per KV namespace binding and isolate: it outlives requests, which is the point.
const caches = new WeakMap<object, ConfigCache>();

/** The isolate's config cache for this environment. */
export function configFor(env: Env): ConfigCache {
  let cache = caches.get(env.MESH_CONFIG);
  if (!cache) {
    const seconds = Number(env.CONFIG_REFRESH_SECONDS);
    cache = new ConfigCache(env.MESH_CONFIG, {
      refreshMs:
        (Number.isFinite(seconds) && seconds >= 0 ? seconds : DEFAULT_REFRESH_SECONDS) * 1000,
      now: Date.now,
      hasBinding: (name) =>
        typeof (env as unknown as Record<string, { fetch?: unknown } | undefined>)[name]?.fetch ===
        "function",
    });
    caches.set(env.MESH_CONFIG, cache);
  }
  return cache;
}

/** The destination service named by a Host header: its first label (`payments.mesh` → payments). */
export function destinationFromHost(host: string | null): string {
  if (!host) return "";
  const name = host.replace(/:\d+$/, "").split(".")[0] ?? "";
  return /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name.toLowerCase()) ? name.toLowerCase() : "";
}

function propsOf(ctx: ExecutionContext): MeshProps {
  const props = (ctx as ExecutionContext & { props?: unknown }).props;
  return props && typeof props === "object" ? (props as MeshProps) : {};
}

/** What a caller of `handleMeshCall` may substitute (tests fix the random source). */
export interface CallOptions {
  random?: RandomSource;
  /** The request URL, when the caller has parsed it already. */
  url?: URL;
}

/** Runs one call through the pipeline, turning any failure into the contract's error response. */
export async function handleMeshCall(
  request: Request,
  env: Env,
  ctx: ExecutionContext,
  options: CallOptions = {},
): Promise<Response> {
  const props = propsOf(ctx);
  const url = options.url ?? new URL(request.url);
  const call: MeshCall = {
    request,
    env,
    ctx,
    config: configFor(env),
    random: options.random ?? systemRandom,
    now: Date.now,
    startedAt: Date.now(),
    entry: props.caller || props.target ? "binding" : "http",
    caller: props.caller,
    destination: props.target ?? destinationFromHost(request.headers.get("host") ?? url.host),
    requestId: "",
    trace: undefined,
    body: request.body,
    url,
    headers: EMPTY_HEADERS,
    responseCookies: [],
    table: undefined,
    match: undefined,
    rule: undefined,
    backend: undefined,
    endpoint: undefined,
    deadline: undefined,
    attemptSignal: undefined,
    attempts: 0,
  };
  try {
    return await runPipeline(call);
  } catch (error) {
    return errorResponse(asMeshError(error), call.requestId || undefined);
  }
}

/** The mesh's own endpoints under the reserved `/.mesh/` prefix (on every host). */
export const meshEndpoints = new Hono<{ Bindings: Env }>();

meshEndpoints.get("/.mesh/status", async (c) => {
  const config = configFor(c.env);
  // `?refresh` checks KV now; an isolate that has not loaded any config yet does so too, so
  // status never shows "no version" just because no call has come in.
  if (c.req.query("refresh") !== undefined || !config.loaded) await config.refreshNow();
  const status = config.status();
  return c.json({ router: "meshwork-router", ...status });
});
meshEndpoints.all("*", () =>
  errorResponse(new MeshError("no_route", "unknown mesh endpoint (try /.mesh/status)")),
);

const RESERVED_PREFIX = "/.mesh/";

/** Both entries' fetch: `/.mesh/` to the mesh's endpoints, every other path into the mesh. */
export function routerFetch(
  request: Request,
  env: Env,
  ctx: ExecutionContext,
): Response | Promise<Response> {
  const url = new URL(request.url);
  if (url.pathname.startsWith(RESERVED_PREFIX)) return meshEndpoints.fetch(request, env, ctx);
  return handleMeshCall(request, env, ctx, { url });
}
