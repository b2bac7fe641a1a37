/**
 * Bench micro (workerd): runs one of the router's hot-path pieces `n` times per request, so
 * bench/run.mjs can read what it costs on workerd itself (workerd's CPU time from /proc, over
 * many calls) rather than only in Node. The route tables are compiled from the same snapshot the
 * router serves (the SNAPSHOT JSON binding), as the router compiles them.
 *
 * The `rs-*` and `retry-layer-*` cases time what the mesh-resilient lane adds to a call, with the
 * router's own code and the policies compiled from the echo-rs route and BackendPolicy: the
 * circuit breaker's bookkeeping per try (what the circuitBreaker layer does around a try that
 * succeeds, short of scheduling the report), the outlier-ejection check of the split, the retry
 * layer's setup for a retried rule, and the whole retry layer with and without a retry spec.
 *
 *   GET /?case=<name>&n=<calls>   → the number of calls that returned true
 */
import { parseEntry } from "../../core/config/snapshot.ts";
import { normalizePath } from "../../core/path-normalization.ts";
import { systemRandom } from "../../core/random.ts";
import { SUCCESS, type BreakerPolicy } from "../../core/resilience/breaker.ts";
import { isRetryableRequest, type RetrySpec } from "../../core/resilience/retry.ts";
import {
  compileRouteTable,
  matchRoute,
  type CompiledRule,
  type RouteTable,
} from "../../core/routing/route-table.ts";
import { BackendSync } from "../../workers/router/backend-sync.ts";
import { Breakers } from "../../workers/router/breakers.ts";
import type { MeshCall } from "../../workers/router/call.ts";
import { retry } from "../../workers/router/layers/retry.ts";
import { RetryBudgets } from "../../workers/router/retry-budgets.ts";

interface MicroEnv {
  SNAPSHOT: Record<string, string>;
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
    const policy = b.service?.breaker;
    if (!b.service || !policy) throw new Error(`backend ${b.name} of echo-rs has no breaker`);
    return { name: b.service.name, policy };
  });
}

function retrySpec(env: MicroEnv): RetrySpec {
  const spec = rule(env, RESILIENT, RESILIENT_RULE).retry;
  if (!spec) throw new Error(`${RESILIENT_RULE} has no retry spec`);
  return spec;
}

// The isolate's resilience state, as the router keeps it (one of each per isolate). The cases
// keep their own, apart from the router's: this Worker shares nothing with it.
const breakers = new Breakers();
const sync = new BackendSync();
const budgets = new RetryBudgets();

/** The circuitBreaker layer around a try that succeeds, short of `sync.schedule`. */
function breakerBookkeeping(service: string, policy: BreakerPolicy): boolean {
  if (!breakers.admit(service, policy, Date.now())) return false;
  breakers.record(service, policy, SUCCESS, Date.now(), systemRandom);
  sync.note(service, policy, SUCCESS);
  return true;
}

/** A MeshCall with what the retry layer reads and writes; a fresh one per call. */
function retryCall(request: Request, callRule: CompiledRule): MeshCall {
  return {
    request,
    rule: callRule,
    headers: new Headers(),
    body: null,
    attempts: [],
    now: Date.now,
    budgets,
    destination: RESILIENT,
    random: systemRandom,
    deadline: undefined,
    retryStopped: undefined,
  } as unknown as MeshCall;
}

export default {
  async fetch(request: Request, env: MicroEnv): Promise<Response> {
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
        // Per call, in trafficSplit: is any weighted backend's breaker open? (Breakers.state of
        // each backend that has a breaker; both have, and both are closed.)
        const backends = breakerBackends(env);
        for (const { name, policy } of backends) breakerBookkeeping(name, policy);
        run = () => {
          const now = Date.now();
          return !backends.some((b) => breakers.state(b.name, now).kind === "open");
        };
        break;
      }
      case "rs-retry-setup": {
        // Per call, in the retry layer with a retry spec: the request may be retried, the
        // destination's budget takes the deposit, and the first try's 200 is not a retried code.
        const spec = retrySpec(env);
        const headers = request.headers;
        run = () => {
          if (!isRetryableRequest("GET", headers)) return false;
          const budget = budgets.for(RESILIENT, Date.now());
          budget.deposit(Date.now());
          return !spec.codes.has(200);
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
        if (
          (callRule.retry !== undefined) !==
          (url.searchParams.get("case") === "retry-layer-spec")
        ) {
          throw new Error(
            `${callRule.id}: unexpected retry spec ${JSON.stringify(callRule.retry)}`,
          );
        }
        const ok = new Response("ok");
        const layer = retry(() => Promise.resolve(ok));
        const next = () => Promise.reject(new Error("the retry layer is terminal here"));
        const probe = retryCall(request, callRule);
        await layer(probe, next);
        const marked = probe.headers.get("x-mesh-attempt") !== null;
        if (marked !== (callRule.retry !== undefined)) {
          throw new Error(`${callRule.id}: the retry layer did not take the expected path`);
        }
        runAsync = async () => (await layer(retryCall(request, callRule), next)).status === 200;
        break;
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
