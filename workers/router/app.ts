/**
 * The router's HTTP surface: the reserved `/.mesh/` endpoints (a small Hono app), and everything
 * else straight into the mesh pipeline. Both entries — the HTTP entry (destination from `Host`)
 * and the `Mesh` entrypoint (destination from binding props) — come through `routerFetch`, each
 * saying which it is: the entrypoint decides what a call may be trusted with, never its props (a
 * `Mesh` binding may have none, and its Worker builds `request.cf` itself).
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
import type { EntryKind, MeshCall, MeshProps } from "./call.ts";
import { ConfigCache } from "./config-cache.ts";
import { runPipeline } from "./pipeline.ts";
import { errorResponse, rescue } from "./rescue.ts";
import { BackendSync } from "./backend-sync.ts";
import { IsolateLocation } from "./location.ts";
import { recordOutcome, type CallOutcome } from "./outcome.ts";
import { ServiceStates, type ServiceView } from "./service-state.ts";
import { readSettings, type RouterSettings } from "./settings.ts";
import { createRouterIdentity, type RouterIdentity } from "./identity/router-identity.ts";
import { clientCertificate, refusal, sameSecret } from "./identity/authenticator.ts";
import { SVID_HEADER } from "./layers/authenticate.ts";
import { VersionReporter, type RouterReports } from "./version-report.ts";
import { Telemetry } from "./telemetry.ts";
import { receiverOf } from "./outcome.ts";

/** The router's binding to the policy Worker's RouterReports entrypoint, when it has one. */
function policyBinding(env: Env): RouterReports | undefined {
  const binding = (env as unknown as { POLICY?: Partial<RouterReports> }).POLICY;
  return typeof binding?.report === "function" ? (binding as RouterReports) : undefined;
}

// Placeholder until requestContext builds the call's outgoing headers (its first act).
const EMPTY_HEADERS = new Headers();

/** What an isolate keeps per router environment: its settings and its config cache. */
export interface RouterState {
  readonly settings: RouterSettings;
  readonly config: ConfigCache;
  /** Where the isolate runs (its colo, once a request carried one). */
  readonly location: IsolateLocation;
  /** What the isolate knows of each Service (breakers, budgets, latency, limits). */
  readonly services: ServiceStates;
  readonly sync: BackendSync;
  readonly telemetry: Telemetry;
  readonly identity: RouterIdentity;
  /** Tells the policy Worker which config version this isolate applied. */
  readonly reporter: VersionReporter;
  /** The clock of the identity state and of `?refresh`'s limit (Date.now; tests set theirs). */
  readonly now: () => number;
  /** When `/.mesh/status?refresh` last read KV (at most one per REFRESH_INTERVAL_MS). */
  lastRefreshAt: number;
}

/**
 * `/.mesh/status?refresh` reads KV now; an isolate takes at most one such refresh per this
 * interval, and answers any other in it `429 rate_limited` with `Retry-After` — a flood of
 * refreshes costs KV one read a second per isolate, and nothing waits.
 */
const REFRESH_INTERVAL_MS = 1000;

// One state per KV namespace binding and isolate: it outlives requests, which is the point.
const states = new WeakMap<object, RouterState>();

/** What a new router state may be given (tests); an existing state keeps its own. */
export interface RouterStateOptions {
  /** The clock of the identity state (JWKS freshness, token expiry) and `?refresh`'s limit. */
  readonly now?: () => number;
}

/** The isolate's router state for this environment. */
export function routerFor(env: Env, options: RouterStateOptions = {}): RouterState {
  let state = states.get(env.MESH_CONFIG);
  if (!state) {
    const now = options.now ?? Date.now;
    const settings = readSettings(env);
    const config = new ConfigCache(env.MESH_CONFIG, {
      refreshMs: settings.refreshMs,
      now: Date.now,
      // IDENTITY and POLICY are the router's own ways to the identity and policy Workers, never
      // destinations.
      hasBinding: (name) =>
        name !== "IDENTITY" &&
        name !== "POLICY" &&
        typeof (env as unknown as Record<string, { fetch?: unknown } | undefined>)[name]?.fetch ===
          "function",
    });
    const location = new IsolateLocation();
    state = {
      settings,
      config,
      location,
      services: new ServiceStates(),
      sync: new BackendSync(location),
      telemetry: new Telemetry(settings.telemetry, location),
      identity: createRouterIdentity(env, settings, now),
      reporter: new VersionReporter(Date.now, location),
      now,
      lastRefreshAt: -Infinity,
    };
    states.set(env.MESH_CONFIG, state);
  }
  return state;
}

/** The isolate's config cache for this environment. */
export function configFor(env: Env): ConfigCache {
  return routerFor(env).config;
}

const NO_PROPS: MeshProps = {};

/** The binding's props of a call through the `Mesh` entrypoint; none on the HTTP entry. */
function propsOf(ctx: ExecutionContext, entry: EntryKind): MeshProps {
  if (entry !== "binding") return NO_PROPS;
  const props = (ctx as ExecutionContext & { props?: unknown }).props;
  return props && typeof props === "object" ? (props as MeshProps) : NO_PROPS;
}

/** What a caller of `handleMeshCall` may substitute (tests fix the random source). */
export interface CallOptions {
  /**
   * The entrypoint the call came through (default `http`): `binding` for the `Mesh` entrypoint,
   * whose props name the caller and destination, and where `request.cf` is never trusted.
   */
  entry?: EntryKind;
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
  const entry = options.entry ?? "http";
  const props = propsOf(ctx, entry);
  const state = routerFor(env);
  state.location.seen(request);
  const call: MeshCall = {
    request,
    env,
    ctx,
    config: state.config,
    services: state.services,
    sync: state.sync,
    telemetry: state.telemetry,
    identity: state.identity,
    random: options.random ?? systemRandom,
    now: Date.now,
    startedAt: Date.now(),
    entry,
    caller: props.caller || undefined,
    principal: undefined,
    authenticatedBy: undefined,
    svid: undefined,
    authorization: undefined,
    refusal: undefined,
    authorizedPath: undefined,
    deferredRefusal: undefined,
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
  state.reporter.maybeReport(policyBinding(env), state.config, (p) => ctx.waitUntil(p));
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

type MeshEndpoints = Hono<{ Bindings: Env; Variables: { entry: EntryKind } }>;

/**
 * The mesh's own endpoints under the reserved `/.mesh/` prefix (on every host), on both entries:
 * `c.get("entry")` says which one a request came through (MESH_ENDPOINTS below).
 */
export const meshEndpoints: MeshEndpoints = new Hono();

/** Open to anyone: only whether the router is up, and nothing about the mesh. */
meshEndpoints.get("/.mesh/health", (c) => c.json({ ok: true }));

/**
 * The whole topology, so only for an admin: `Authorization: Bearer <ADMIN_TOKEN>` (compared in
 * constant time), or a JWT-SVID of one of the ADMIN_SERVICES in X-Mesh-SVID.
 */
meshEndpoints.get("/.mesh/status", async (c) => {
  const state = routerFor(c.env);
  const { config, settings, services, sync, identity } = state;
  // Revocations come with the config: an isolate that has none loaded loads it first.
  const coldLoad = !config.loaded;
  if (coldLoad) await config.refreshNow();
  // The admin endpoints answer on both entries; a client certificate counts only on the HTTP
  // entry (through any Mesh binding, props or none, the calling Worker builds `cf` itself).
  const overHttp = c.get("entry") === "http";
  const admin = await adminOf(c.req.raw, state, (p) => c.executionCtx.waitUntil(p), overHttp);
  if (admin === undefined) {
    return errorResponse(
      new MeshError(
        "unauthenticated",
        "/.mesh/status answers an admin only: send Authorization: Bearer <ADMIN_TOKEN>, or an admin service's JWT-SVID in X-Mesh-SVID",
      ),
      requestIdOf(c.req.raw),
    );
  }
  // `?refresh` checks KV now: one per REFRESH_INTERVAL_MS per isolate, and only for an admin (no
  // one else can spend it). An isolate that had not loaded any config has done so above (that
  // was the read), so status never shows "no version" just because no call came in.
  if (c.req.query("refresh") !== undefined) {
    const now = state.now();
    const waitMs = state.lastRefreshAt + REFRESH_INTERVAL_MS - now;
    if (waitMs > 0) {
      const seconds = Math.ceil(waitMs / 1000);
      return errorResponse(
        new MeshError(
          "rate_limited",
          `?refresh reads KV, and this router isolate takes at most one a second: try again in ${seconds} s (without ?refresh, status answers from memory at any time)`,
          { retryAfterSeconds: seconds },
        ),
        requestIdOf(c.req.raw),
      );
    }
    state.lastRefreshAt = now;
    if (!coldLoad) await config.refreshNow();
  }
  const status = config.status();
  return c.json({
    router: "meshwork-router",
    ...status,
    ...serviceViews(services, Date.now()),
    backendSync: sync.view(),
    telemetry: state.telemetry.view(receiverOf(c.env) !== undefined),
    versionReports: state.reporter.view(policyBinding(c.env) !== undefined),
    identity: {
      jwks: identity.jwks.view(),
      tokens: identity.authenticator.view(),
      passports: identity.passports.view(),
      revocations: config.revocations.size,
    },
    settings: {
      trustDomain: settings.trustDomain,
      pathEscapedSlashes: settings.escapedSlashes,
      adminToken: settings.adminToken !== undefined,
      adminServices: settings.adminServices,
      problems: settings.problems,
    },
  });
});

/** Who the admin is (`token` or the admin service's name), or undefined when not an admin. */
async function adminOf(
  request: Request,
  state: RouterState,
  waitUntil: (promise: Promise<unknown>) => void,
  overHttp: boolean,
): Promise<string | undefined> {
  const { settings, identity, config } = state;
  const authorization = request.headers.get("authorization");
  if (authorization !== null && settings.adminToken !== undefined) {
    const match = /^Bearer ([^\s]+)$/.exec(authorization);
    if (match && (await sameSecret(match[1]!, settings.adminToken))) return "token";
  }
  const token = request.headers.get(SVID_HEADER);
  if (token === null || settings.adminServices.length === 0) return undefined;
  try {
    const svid =
      identity.authenticator.cached(token, waitUntil) ??
      (await identity.authenticator.verify(token, waitUntil));
    if (refusal(svid, clientCertificate(request, overHttp), config.revocations) !== undefined) {
      return undefined;
    }
    return settings.adminServices.includes(svid.service) ? svid.service : undefined;
  } catch {
    return undefined;
  }
}
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

/** `meshEndpoints` as `entry` serves them: the same routes, told which entry they are on. */
function endpointsOn(entry: EntryKind): MeshEndpoints {
  const app: MeshEndpoints = new Hono();
  app.use(async (c, next) => {
    c.set("entry", entry);
    await next();
  });
  return app.route("/", meshEndpoints);
}

const MESH_ENDPOINTS: Readonly<Record<EntryKind, MeshEndpoints>> = {
  http: endpointsOn("http"),
  binding: endpointsOn("binding"),
};

/**
 * Both entries' fetch: `/.mesh/` to the mesh's endpoints, every other path into the mesh. The
 * path is normalised first, so no spelling of `/.mesh/` (`/%2Emesh/`, `//.mesh/`) reaches a
 * backend, and routes match the path the backend will receive. `entry` is the entrypoint the
 * request came through (index.ts says which): `http` for the Worker's own fetch, `binding` for
 * the `Mesh` entrypoint, with props or without.
 */
export async function routerFetch(
  request: Request,
  env: Env,
  ctx: ExecutionContext,
  entry: EntryKind,
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
    return MESH_ENDPOINTS[entry].fetch(normalized, env, ctx);
  }
  return handleMeshCall(request, env, ctx, { url, entry });
}
