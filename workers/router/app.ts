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
import {
  destinationFromHost,
  isReservedPath,
  normalizeUrlPath,
  parseRequestUrl,
} from "../../core/request-target.ts";
import { continueRequestId } from "../../core/trace-context.ts";
import type { MeshCall, MeshProps } from "./call.ts";
import { ConfigCache } from "./config-cache.ts";
import { runPipeline } from "./pipeline.ts";
import { errorResponse, rescue } from "./rescue.ts";
import { BackendSync } from "./backend-sync.ts";
import { recordOutcome, type CallOutcome } from "./outcome.ts";
import { ServiceStates, type ServiceView } from "./service-state.ts";
import { readSettings, type RouterSettings } from "./settings.ts";

// Placeholder until requestContext builds the call's outgoing headers (its first act).
const EMPTY_HEADERS = new Headers();

/** What an isolate keeps per router environment: its settings and its config cache. */
export interface RouterState {
  readonly settings: RouterSettings;
  readonly config: ConfigCache;
  /** What the isolate knows of each Service (breakers, budgets, latency, limits). */
  readonly services: ServiceStates;
  readonly sync: BackendSync;
}

// One state per KV namespace binding and isolate: it outlives requests, which is the point.
const states = new WeakMap<object, RouterState>();

/** The isolate's router state for this environment. */
export function routerFor(env: Env): RouterState {
  let state = states.get(env.MESH_CONFIG);
  if (!state) {
    const settings = readSettings(env);
    const config = new ConfigCache(env.MESH_CONFIG, {
      refreshMs: settings.refreshMs,
      now: Date.now,
      hasBinding: (name) =>
        typeof (env as unknown as Record<string, { fetch?: unknown } | undefined>)[name]?.fetch ===
        "function",
    });
    state = {
      settings,
      config,
      services: new ServiceStates(),
      sync: new BackendSync(),
    };
    states.set(env.MESH_CONFIG, state);
  }
  return state;
}

/** The isolate's config cache for this environment. */
export function configFor(env: Env): ConfigCache {
  return routerFor(env).config;
}

function propsOf(ctx: ExecutionContext): MeshProps {
  const props = (ctx as ExecutionContext & { props?: unknown }).props;
  return props && typeof props === "object" ? (props as MeshProps) : {};
}

/** What a caller of `handleMeshCall` may substitute (tests fix the random source). */
export interface CallOptions {
  random?: RandomSource;
  /** The request URL, parsed and with its path normalised (routerFetch does both). */
  url?: URL;
  /** Receives each call's outcome (tests; analytics will). */
  onOutcome?: (outcome: CallOutcome) => void;
}

/** Runs one call through the pipeline, turning any failure into the contract's error response. */
export async function handleMeshCall(
  request: Request,
  env: Env,
  ctx: ExecutionContext,
  options: CallOptions = {},
): Promise<Response> {
  const props = propsOf(ctx);
  const state = routerFor(env);
  const call: MeshCall = {
    request,
    env,
    ctx,
    config: state.config,
    services: state.services,
    sync: state.sync,
    random: options.random ?? systemRandom,
    now: Date.now,
    startedAt: Date.now(),
    entry: props.caller || props.target ? "binding" : "http",
    caller: props.caller,
    destination: "",
    requestId: "",
    trace: undefined,
    // The fetch API cannot send a GET or HEAD body (a client may still send one, even empty).
    body: request.method === "GET" || request.method === "HEAD" ? null : request.body,
    url: EMPTY_URL,
    headers: EMPTY_HEADERS,
    responseCookies: [],
    table: undefined,
    match: undefined,
    rule: undefined,
    backend: undefined,
    backendState: undefined,
    breakerBypass: false,
    deadline: undefined,
    attempts: [],
    retryStopped: undefined,
    faults: [],
    ejected: [],
    failedOverFrom: undefined,
    limitedBy: undefined,
    transitions: [],
  };
  let response: Response;
  try {
    call.url = options.url ?? requestUrl(request, env);
    call.destination =
      props.target ?? destinationFromHost(request.headers.get("host") ?? call.url.host);
    response = await runPipeline(call);
  } catch (error) {
    const failure = rescue(error, {
      requestId: call.requestId || undefined,
      destination: call.destination,
      route: call.rule?.id,
    });
    response = errorResponse(failure, call.requestId || requestIdOf(request));
  }
  // The last stage: one outcome per call, whatever answered.
  recordOutcome(call, response, options.onOutcome);
  return response;
}

const EMPTY_URL = new URL("http://mesh.invalid/");

/** The request id for an answer given before the pipeline assigned one. */
function requestIdOf(request: Request): string {
  return continueRequestId(request.headers.get("x-request-id"), systemRandom);
}

/** The request's URL, parsed, with its path normalised; throws `bad_request`. */
function requestUrl(request: Request, env: Env): URL {
  return normalizeUrlPath(parseRequestUrl(request.url), routerFor(env).settings.escapedSlashes);
}

/** The mesh's own endpoints under the reserved `/.mesh/` prefix (on every host). */
export const meshEndpoints = new Hono<{ Bindings: Env }>();

meshEndpoints.get("/.mesh/status", async (c) => {
  const { config, settings, services, sync } = routerFor(c.env);
  // `?refresh` checks KV now; an isolate that has not loaded any config yet does so too, so
  // status never shows "no version" just because no call has come in.
  if (c.req.query("refresh") !== undefined || !config.loaded) await config.refreshNow();
  const status = config.status();
  return c.json({
    router: "meshwork-router",
    ...status,
    ...serviceViews(services, Date.now()),
    backendSync: sync.view(),
    settings: {
      trustDomain: settings.trustDomain,
      pathEscapedSlashes: settings.escapedSlashes,
      problems: settings.problems,
    },
  });
});
/** The status page's per-Service sections: breakers, budgets, latency, rate limits. */
function serviceViews(services: ServiceStates, now: number) {
  const views = Object.entries(services.view(now));
  const pick = <K extends keyof ServiceView>(key: K) =>
    Object.fromEntries(views.flatMap(([name, v]) => (v[key] === null ? [] : [[name, v[key]]])));
  return {
    breakers: pick("breaker"),
    retryBudgets: pick("retryBudget"),
    latency: pick("latency"),
    rateLimits: pick("rateLimits"),
  };
}

meshEndpoints.all("*", (c) =>
  errorResponse(
    new MeshError("no_route", "unknown mesh endpoint (try /.mesh/status)"),
    requestIdOf(c.req.raw),
  ),
);
meshEndpoints.onError((error, c) => {
  const requestId = requestIdOf(c.req.raw);
  return errorResponse(
    rescue(error, { requestId, destination: undefined, route: c.req.path }),
    requestId,
  );
});

/**
 * Both entries' fetch: `/.mesh/` to the mesh's endpoints, every other path into the mesh. The
 * path is normalised first, so no spelling of `/.mesh/` (`/%2Emesh/`, `//.mesh/`) reaches a
 * backend, and routes match the path the backend will receive.
 */
export async function routerFetch(
  request: Request,
  env: Env,
  ctx: ExecutionContext,
): Promise<Response> {
  let url: URL;
  try {
    url = requestUrl(request, env);
  } catch (error) {
    const failure = rescue(error, {
      requestId: undefined,
      destination: undefined,
      route: undefined,
    });
    return errorResponse(failure, requestIdOf(request));
  }
  if (isReservedPath(url.pathname)) {
    const normalized = url.href === request.url ? request : new Request(url, request);
    return meshEndpoints.fetch(normalized, env, ctx);
  }
  return handleMeshCall(request, env, ctx, { url });
}
