/**
 * The router's HTTP surface (Hono): the reserved `/.mesh/` endpoints, and everything else into
 * the mesh pipeline. Both entries — the HTTP entry (destination from `Host`) and the `Mesh`
 * entrypoint (destination from binding props) — come through here.
 */
import { Hono } from "hono";
import { MeshError } from "../../core/errors.ts";
import { systemRandom, type RandomSource } from "../../core/random.ts";
import type { MeshCall, MeshProps } from "./call.ts";
import { ConfigCache } from "./config-cache.ts";
import { runPipeline } from "./pipeline.ts";
import { asMeshError, errorResponse } from "./rescue.ts";

const DEFAULT_REFRESH_SECONDS = 5;

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
}

/** Runs one call through the pipeline, turning any failure into the contract's error response. */
export async function handleMeshCall(
  request: Request,
  env: Env,
  ctx: ExecutionContext,
  options: CallOptions = {},
): Promise<Response> {
  const props = propsOf(ctx);
  const url = new URL(request.url);
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
    headers: new Headers(request.headers),
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

export const app = new Hono<{ Bindings: Env }>();

// `/.mesh/` is reserved on every host: the mesh's own endpoints, never forwarded.
app.get("/.mesh/status", async (c) => {
  const config = configFor(c.env);
  if (c.req.query("refresh") !== undefined) await config.refreshNow();
  const status = config.status();
  return c.json({ router: "meshwork-router", ...status });
});
app.all("/.mesh/*", () =>
  errorResponse(new MeshError("no_route", "unknown mesh endpoint (try /.mesh/status)")),
);
// Hono types its context loosely; at runtime this is the Workers ExecutionContext (with props).
app.all("*", (c) =>
  handleMeshCall(c.req.raw, c.env, c.executionCtx as unknown as ExecutionContext),
);
