/**
 * Bench micro (workerd): runs one of the router's hot-path pieces `n` times per request, so
 * bench/run.mjs can read what it costs on workerd itself (workerd's CPU time from /proc, over
 * many calls) rather than only in Node. The route tables are compiled from the same snapshot the
 * router serves (the SNAPSHOT JSON binding), as the router compiles them.
 *
 * The `rs-*` and `retry-layer-*` cases time what the mesh-resilient lane adds to a call, with the
 * router's own code and the policies compiled from the echo-rs route and BackendPolicies: the
 * circuit breaker's bookkeeping per try (the circuitBreaker layer's admit and the outcome stage's
 * record of a success, short of scheduling the report), the outlier-ejection check of the split,
 * the retry layer's setup for a retried rule, the rate limits (per caller and in total), the
 * `auto` per-try timeout (reading the estimate and feeding it one latency), and the whole retry
 * layer with and without a retry spec. The `pipeline-*` cases run whole calls through the
 * router's own entry (`handleMeshCall`: every layer and the outcome stage) over the same
 * snapshot, with backends that answer at once, so their difference is what the resilience
 * policy adds to the router's CPU per call, end to end, without the network's noise.
 *
 * The `id-*` cases time what identity and authorization add to a warm call: the cached SVID's
 * lookup and per-request checks (revocation, certificate binding), the authorization decision on
 * the echo destination's several-rule policy, and the identity headers with a shared passport.
 * `pipeline-mesh` calls echo as the mesh lane does — the bench caller by its binding's props and
 * a JWT-SVID, both checked — and `pipeline-open` calls echo-open with neither: their difference
 * is identity and authorization end to end. The identity Worker is a stand-in here (a key made
 * in this isolate, serving the JWKS and certifying the router's passport key).
 *
 * The `pipeline-telemetry-*` cases make the `pipeline-mesh` call with the router's telemetry on
 * or off (issue 9): `-on` with the Analytics Engine binding (MESH_ANALYTICS, workerd's, whose
 * data points go to the bench's sink Worker), the sink's RouterReports as POLICY (the metrics
 * flushes), METRICS_FLUSH "on" and ACCESS_LOG_SAMPLE 0.01, as wrangler.toml ships them; `-stub`
 * the same with a JavaScript stand-in for the dataset that keeps the point, so workerd's local
 * delivery of each point (one HTTP request to the sink) is left out and what remains is the
 * router's own work; `-off` with no dataset, METRICS_FLUSH "off" and ACCESS_LOG_SAMPLE 0. POLICY
 * is bound in all three, so the version report's check runs alike.
 *
 *   GET /?case=<name>&n=<calls>   → the number of calls that returned true
 */
import { parseEntry } from "../../core/config/snapshot.ts";
import { normalizePath } from "../../core/path-normalization.ts";
import { systemRandom } from "../../core/random.ts";
import { PLAIN_SUCCESS, type BreakerPolicy } from "../../core/resilience/breaker.ts";
import { isRetryableRequest, type RetrySpec } from "../../core/resilience/retry.ts";
import type { CallPolicy } from "../../core/routing/call-policy.ts";
import {
  compileRouteTable,
  matchRoute,
  type CompiledRule,
  type RouteTable,
} from "../../core/routing/route-table.ts";
import type { MeshCall } from "../../workers/router/call.ts";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { authorize } from "../../core/authz/authorization.ts";
import { identityIssuer, ROUTER_KEY_TYPE, routerId } from "../../core/identity/names.ts";
import { handleMeshCall, routerFor } from "../../workers/router/app.ts";
import { receiverOf } from "../../workers/router/outcome.ts";
import { IsolateLocation } from "../../workers/router/location.ts";
import { VersionReporter } from "../../workers/router/version-report.ts";
import {
  Authenticator,
  refusal,
  RevocationList,
} from "../../workers/router/identity/authenticator.ts";
import { JwksCache } from "../../workers/router/identity/jwks.ts";
import { PassportSigner } from "../../workers/router/identity/passports.ts";
import { retry } from "../../workers/router/layers/retry.ts";
import { ServiceStates } from "../../workers/router/service-state.ts";
import type { AnalyticsDataPoint, AnalyticsDataset } from "../../core/observability/data-point.ts";

interface MicroEnv {
  SNAPSHOT: Record<string, string>;
  /** workerd's Analytics Engine binding, delivering to the bench's telemetry sink. */
  MESH_ANALYTICS: AnalyticsDataset;
  /** The telemetry sink's RouterReports entrypoint (version reports and metrics flushes). */
  POLICY: unknown;
}

const tables = new Map<string, RouteTable>();

function table(env: MicroEnv, destination: string): RouteTable {
  let compiled = tables.get(destination);
  if (!compiled) {
    const index = JSON.parse(env.SNAPSHOT["mesh/index"]!) as {
      destinations: Record<string, string>;
    };
    const key = index.destinations[destination]!;
    const entry = parseEntry(JSON.parse(env.SNAPSHOT[key]!), key);
    if (!entry.ok) throw new Error(JSON.stringify(entry.issues));
    compiled = compileRouteTable(entry.value, { hasBinding: () => true });
    tables.set(destination, compiled);
  }
  return compiled;
}

/** The destination, split rule and backends of the mesh-resilient lane. */
const RESILIENT = "echo-rs";
const OPEN = "echo-open";
const RESILIENT_RULE = "echo-rs/split";
/** The mesh lane's split rule (no retry, no BackendPolicy on its backends). */
const ROUTING_RULE = "echo-canary/split";

function rule(env: MicroEnv, destination: string, id: string): CompiledRule {
  const found = table(env, destination).matches.find((m) => m.rule.id === id)?.rule;
  if (!found) throw new Error(`no rule ${id} in ${destination}'s table`);
  return found;
}

/** The echo-rs split's backends with the breaker policy their BackendPolicy compiled to. */
function breakerBackends(env: MicroEnv): { name: string; policy: BreakerPolicy }[] {
  return rule(env, RESILIENT, RESILIENT_RULE).backends.items.map((b) => {
    const policy = b.service?.policy.breaker;
    if (!b.service || !policy) throw new Error(`backend ${b.name} of echo-rs has no breaker`);
    return { name: b.service.name, policy };
  });
}

/** The call policy of the echo-rs split's first backend (the one most calls go to). */
function callPolicy(env: MicroEnv): CallPolicy {
  return rule(env, RESILIENT, RESILIENT_RULE).backends.items[0]!.policy;
}

function retrySpec(env: MicroEnv): RetrySpec {
  const spec = callPolicy(env).retry;
  if (!spec) throw new Error(`${RESILIENT_RULE} has no retry spec`);
  return spec;
}

// The isolate's resilience state, as the router keeps it (one per isolate). The cases keep
// their own, apart from the router's: this Worker shares nothing with it.
const services = new ServiceStates();

/** Around a try that succeeds: the circuitBreaker layer's admit, the outcome stage's record. */
function breakerBookkeeping(service: string, policy: BreakerPolicy): boolean {
  const state = services.get(service);
  if (state.admit(policy, Date.now()) === "refuse") return false;
  state.recordOutcome(policy, PLAIN_SUCCESS, Date.now(), systemRandom);
  return true;
}

/** A MeshCall with what the retry layer reads and writes; a fresh one per call. */
function retryCall(request: Request, callRule: CompiledRule): MeshCall {
  const backend = callRule.backends.items[0]!;
  return {
    request,
    rule: callRule,
    backend,
    backendState: services.get(backend.service!.name),
    headers: new Headers(),
    body: null,
    attempts: [],
    now: Date.now,
    destination: RESILIENT,
    random: systemRandom,
    deadline: undefined,
    retryStopped: undefined,
  } as unknown as MeshCall;
}

/** A backend that answers at once: the router's work is all that is timed. */
const instantBackend = {
  fetch: async (request: Request) => {
    await request.body?.cancel();
    return new Response("ok", { headers: { "content-type": "text/plain" } });
  },
};

/** The identity Worker's stand-in: one mesh key, its JWKS, router keys certified with it. */
interface MicroIdentity {
  binding: {
    fetch(input: RequestInfo | URL): Promise<Response>;
    certifyRouterKey(jwk: JsonWebKey): Promise<{ certificate: string; expiresAt: string }>;
  };
  /** The bench caller's JWT-SVID (an hour). */
  token: string;
}

let microIdentity: Promise<MicroIdentity> | undefined;
function identity(): Promise<MicroIdentity> {
  microIdentity ??= (async () => {
    const { privateKey, publicKey } = await generateKeyPair("ES256");
    const jwk = { ...(await exportJWK(publicKey)), kid: "micro-1", alg: "ES256", use: "sig" };
    const now = Math.floor(Date.now() / 1000);
    const sign = (claims: Record<string, unknown>, typ: string) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: "ES256", kid: "micro-1", typ })
        .setIssuer(identityIssuer("meshwork.local"))
        .setIssuedAt(now)
        .setExpirationTime(now + 3600)
        .setJti(crypto.randomUUID())
        .sign(privateKey);
    return {
      binding: {
        fetch: async () => Response.json({ keys: [jwk] }),
        certifyRouterKey: async (key: JsonWebKey) => ({
          certificate: await sign(
            { sub: routerId("meshwork.local"), cnf: { jwk: key } },
            ROUTER_KEY_TYPE,
          ),
          expiresAt: new Date((now + 3600) * 1000).toISOString(),
        }),
      },
      token: await sign(
        { sub: "spiffe://meshwork.local/bench", aud: routerId("meshwork.local") },
        "JWT",
      ),
    };
  })();
  return microIdentity;
}

/** The router's environment over the SNAPSHOT, with instant backends (one per MicroEnv). */
const routerEnvs = new WeakMap<object, Env>();
function routerEnv(env: MicroEnv, id: MicroIdentity): Env {
  let routed = routerEnvs.get(env);
  if (!routed) {
    const kv = {
      get: async (key: string) => env.SNAPSHOT[key] ?? null,
    };
    // Reports are answered at once, as a near object would; they go through waitUntil anyway.
    const backendState = {
      getByName: () => ({ report: async () => ({ breaker: undefined, at: Date.now() }) }),
    };
    routed = {
      MESH_CONFIG: kv,
      ECHO_V1: instantBackend,
      ECHO_V2: instantBackend,
      BACKEND_STATE: backendState,
      IDENTITY: id.binding,
      TRUST_DOMAIN: "meshwork.local",
    } as unknown as Env;
    routerEnvs.set(env, routed);
  }
  return routed;
}

/** How a `pipeline-telemetry-*` case runs the router's telemetry. */
type TelemetryMode = "on" | "stub" | "off";

/** Keeps the last data point: the dataset of the `-stub` case. */
const stubDataset = {
  last: undefined as AnalyticsDataPoint | undefined,
  writeDataPoint(point: AnalyticsDataPoint) {
    this.last = point;
  },
};

/**
 * The router's environment of a `pipeline-telemetry-*` case: routerEnv's, with its own
 * MESH_CONFIG object (so its own router state: settings, telemetry, caches) and the case's
 * telemetry bindings and vars.
 */
const telemetryEnvs = new Map<TelemetryMode, Env>();
function telemetryEnv(env: MicroEnv, id: MicroIdentity, mode: TelemetryMode): Env {
  let routed = telemetryEnvs.get(mode);
  if (!routed) {
    const base = routerEnv(env, id) as unknown as Record<string, unknown>;
    const kv = { get: async (key: string) => env.SNAPSHOT[key] ?? null };
    routed = {
      ...base,
      MESH_CONFIG: kv,
      POLICY: env.POLICY,
      ...(mode === "off"
        ? {}
        : { MESH_ANALYTICS: mode === "on" ? env.MESH_ANALYTICS : stubDataset }),
      METRICS_FLUSH: mode === "off" ? "off" : "on",
      ACCESS_LOG_SAMPLE: mode === "off" ? "0" : "0.01",
    } as unknown as Env;
    telemetryEnvs.set(mode, routed);
  }
  return routed;
}

export default {
  async fetch(request: Request, env: MicroEnv, ctx: ExecutionContext): Promise<Response> {
    const url = new URL(request.url);
    const n = Number(url.searchParams.get("n") ?? "1");
    const facts = {
      method: "GET",
      path: "/bench/orders",
      headers: request.headers,
      query: url.searchParams,
    };
    let run: (() => boolean) | undefined;
    let runAsync: (() => Promise<boolean>) | undefined;
    switch (url.searchParams.get("case")) {
      case "baseline":
        run = () => facts.path.length > 0;
        break;
      case "normalize-plain":
        run = () => normalizePath("/bench/orders", "reject").ok;
        break;
      case "normalize-messy":
        run = () => normalizePath("/bench//%6Frders/./x", "reject").ok;
        break;
      case "match-mesh": {
        const t = table(env, "echo");
        run = () => matchRoute(t, facts) !== undefined;
        break;
      }
      case "match-mesh-regex": {
        const t = table(env, "echo-re");
        run = () => matchRoute(t, facts) !== undefined;
        break;
      }
      case "rs-breaker": {
        // Per try: Breakers.admit, Breakers.record(SUCCESS), BackendSync.note — on echo-rs-v1,
        // the backend 90% of the lane's calls go to.
        const { name, policy } = breakerBackends(env)[0]!;
        run = () => breakerBookkeeping(name, policy);
        break;
      }
      case "rs-ejection": {
        // Per call, in trafficSplit: would any weighted backend's breaker refuse a try? (The
        // state of each backend that has a breaker; both have, and both are closed.)
        const backends = breakerBackends(env);
        for (const { name, policy } of backends) breakerBookkeeping(name, policy);
        run = () => {
          const now = Date.now();
          return !backends.some((b) => services.get(b.name).refuses(b.policy, now));
        };
        break;
      }
      case "rs-retry-setup": {
        // Per call, in the retry layer with a retry spec: the request may be retried, the
        // backend's budget takes the deposit, and the first try's 200 is not a retried code.
        const spec = retrySpec(env);
        const headers = request.headers;
        const backend = rule(env, RESILIENT, RESILIENT_RULE).backends.items[0]!.service!;
        run = () => {
          if (!isRetryableRequest("GET", headers)) return false;
          services.get(backend.name).deposit(backend.policy.budget, Date.now());
          return !spec.codes.has(200);
        };
        break;
      }
      case "rs-rate-limit": {
        // Per call, the rateLimit layer: the caller's limit, then the total, on echo-rs.
        const limits = table(env, RESILIENT).service.policy.rateLimit;
        if (!limits?.perCaller || !limits.total) throw new Error("echo-rs has no rate limits");
        const state = services.get(RESILIENT);
        // The lane's limits with a burst no timing loop empties: workerd's clock stands still
        // while a request computes, so the buckets never refill inside one (the work per call
        // is the same whatever the numbers).
        const perCaller = { ...limits.perCaller, burst: 1e12 };
        const total = { ...limits.total, burst: 1e12 };
        run = () => {
          const now = Date.now();
          return (
            state.limit("caller:bench", perCaller, now).tryTake(now) &&
            state.limit("total", total, now).tryTake(now)
          );
        };
        break;
      }
      case "rs-auto-timeout": {
        // Per try: the perTryTimeout layer reads the learned timeout, the outcome stage feeds
        // the try's latency back.
        const auto = callPolicy(env).autoTimeout;
        if (!auto) throw new Error(`${RESILIENT_RULE} has no auto timeout`);
        const state = services.get(rule(env, RESILIENT, RESILIENT_RULE).backends.items[0]!.name);
        run = () => {
          const now = Date.now();
          const ms = state.autoTimeoutMs(auto, now);
          state.observeLatency(3, now);
          return ms > 0;
        };
        break;
      }
      case "retry-layer-none":
      case "retry-layer-spec": {
        // The real retry layer, around a try that answers 200 at once: with the mesh lane's rule
        // (no retry: one try) or echo-rs's (retry spec: the retry loop's first try succeeds).
        const callRule =
          url.searchParams.get("case") === "retry-layer-spec"
            ? rule(env, RESILIENT, RESILIENT_RULE)
            : rule(env, "echo", ROUTING_RULE);
        const spec = callRule.backends.items[0]!.policy.retry;
        if ((spec !== undefined) !== (url.searchParams.get("case") === "retry-layer-spec")) {
          throw new Error(`${callRule.id}: unexpected retry spec ${JSON.stringify(spec)}`);
        }
        const ok = new Response("ok");
        const layer = retry(() => Promise.resolve(ok));
        const next = () => Promise.reject(new Error("the retry layer is terminal here"));
        const probe = retryCall(request, callRule);
        await layer(probe, next);
        const marked = probe.headers.get("x-mesh-attempt") !== null;
        if (marked !== (spec !== undefined)) {
          throw new Error(`${callRule.id}: the retry layer did not take the expected path`);
        }
        runAsync = async () => (await layer(retryCall(request, callRule), next)).status === 200;
        break;
      }
      case "id-verify-warm": {
        // A token this isolate has verified: the cache lookup and the per-request checks.
        const id = await identity();
        const jwks = new JwksCache(() => id.binding.fetch("https://identity/"), {
          now: Date.now,
          minRefreshMs: 30_000,
          defaultMaxAgeMs: 300_000,
        });
        const authenticator = new Authenticator(jwks, {
          trustDomain: "meshwork.local",
          now: Date.now,
        });
        await authenticator.verify(id.token, (p) => ctx.waitUntil(p));
        const revocations = new RevocationList({ tokens: [{ jti: "revoked" }], subjects: [] });
        const waitUntil = (p: Promise<unknown>) => ctx.waitUntil(p);
        run = () => {
          const svid = authenticator.cached(id.token, waitUntil);
          return svid !== undefined && refusal(svid, undefined, revocations) === undefined;
        };
        break;
      }
      case "id-authorize": {
        // The echo destination's policies (DENY, DENY, ALLOW with a condition, AUDIT).
        const authorization = table(env, "echo").security.authorization;
        const call = {
          principal: "spiffe://meshwork.local/bench",
          method: "GET",
          path: "/bench/orders",
          headers: request.headers,
        };
        run = () => authorize(authorization, call).allowed;
        break;
      }
      case "id-forward": {
        // What the destination is told: X-Mesh-Caller, XFCC, and the shared passport (cached).
        const id = await identity();
        const passports = new PassportSigner(() => id.binding, {
          trustDomain: "meshwork.local",
          now: Date.now,
        });
        const key = "spiffe://meshwork.local/bench\necho\necho-v1";
        const audience = ["spiffe://meshwork.local/echo", "spiffe://meshwork.local/echo-v1"];
        await passports.sign({ subject: "spiffe://meshwork.local/bench", audience }, key, (p) =>
          ctx.waitUntil(p),
        );
        const headers = new Headers(request.headers);
        run = () => {
          const passport = passports.cachedShared(key, Date.now());
          headers.set("x-mesh-caller", "spiffe://meshwork.local/bench");
          headers.set(
            "x-forwarded-client-cert",
            `By=spiffe://meshwork.local/echo;URI=spiffe://meshwork.local/bench`,
          );
          if (passport !== undefined) headers.set("x-mesh-passport", passport);
          return passport !== undefined;
        };
        break;
      }
      case "version-report": {
        // What every call adds for propagation status (a warm isolate whose version is already
        // reported): noting the call's colo, and the check that there is nothing to report.
        const routed = routerEnv(env, await identity());
        const location = new IsolateLocation();
        const reporter = new VersionReporter(Date.now, location);
        const config = routerFor(routed).config;
        await config.refreshNow();
        const policy = { report: async () => ({ ok: true }) };
        reporter.maybeReport(policy, config, (p) => ctx.waitUntil(p));
        await new Promise((resolve) => setTimeout(resolve, 10));
        run = () => {
          location.seen(request);
          reporter.maybeReport(policy, config, (p) => ctx.waitUntil(p));
          return true;
        };
        break;
      }
      case "pipeline-open":
      case "pipeline-mesh":
      case "pipeline-resilient": {
        // A whole call through the router's entry, as the Mesh entrypoint makes it, each
        // answered by an instant backend: to echo (the mesh lane: caller by props and token,
        // authorization, passport), echo-rs (the same, and the resilience policy) or echo-open
        // (no caller, no token, PERMISSIVE, allow-all).
        const which = url.searchParams.get("case");
        const target =
          which === "pipeline-mesh" ? "echo" : which === "pipeline-open" ? OPEN : RESILIENT;
        const id = await identity();
        const props = which === "pipeline-open" ? { target } : { caller: "bench", target };
        const callCtx = {
          props,
          waitUntil: (promise: Promise<unknown>) => ctx.waitUntil(promise),
          passThroughOnException: () => ctx.passThroughOnException(),
        } as unknown as ExecutionContext;
        const routed = routerEnv(env, id);
        const headers: Record<string, string> = { "x-tenant": "tenant-42" };
        if (which !== "pipeline-open") headers["x-mesh-svid"] = id.token;
        runAsync = async () => {
          const response = await handleMeshCall(
            new Request(`https://${target}/bench/orders?id=42`, { headers }),
            routed,
            callCtx,
            { entry: "binding" },
          );
          await response.body?.cancel();
          return response.status === 200;
        };
        break;
      }
      case "pipeline-telemetry-on":
      case "pipeline-telemetry-stub":
      case "pipeline-telemetry-off": {
        // pipeline-mesh's call (echo, the bench caller by props and token), telemetry on — with
        // workerd's dataset or a stand-in — or off.
        const mode = url.searchParams.get("case")!.slice("pipeline-telemetry-".length);
        const id = await identity();
        const routed = telemetryEnv(env, id, mode as TelemetryMode);
        const callCtx = {
          props: { caller: "bench", target: "echo" },
          waitUntil: (promise: Promise<unknown>) => ctx.waitUntil(promise),
          passThroughOnException: () => ctx.passThroughOnException(),
        } as unknown as ExecutionContext;
        const headers = { "x-tenant": "tenant-42", "x-mesh-svid": id.token };
        runAsync = async () => {
          const response = await handleMeshCall(
            new Request("https://echo/bench/orders?id=42", { headers }),
            routed,
            callCtx,
            { entry: "binding" },
          );
          await response.body?.cancel();
          return response.status === 200;
        };
        break;
      }
      case "telemetry-state": {
        // What the telemetry cases' router states saw (GET ?case=telemetry-state): the
        // bench checks that `-on` wrote data points and flushed, and `-off` did neither.
        const id = await identity();
        const view = Object.fromEntries(
          (["on", "stub", "off"] as const).map((mode) => [
            mode,
            routerFor(telemetryEnv(env, id, mode)).telemetry.view(
              receiverOf(telemetryEnv(env, id, mode)) !== undefined,
            ),
          ]),
        );
        return Response.json({ ...view, stubPoint: stubDataset.last ?? null });
      }
      default:
        return new Response("unknown case", { status: 400 });
    }
    let hits = 0;
    if (run) {
      for (let i = 0; i < n; i++) if (run()) hits++;
    } else if (runAsync) {
      for (let i = 0; i < n; i++) if (await runAsync()) hits++;
    }
    return new Response(String(hits));
  },
} satisfies ExportedHandler<MicroEnv>;
