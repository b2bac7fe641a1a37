// `npm run bench`: the mesh's overhead, measured on the real Workers.
//
//  1. Builds the router, echo-v1, echo-v2 and the bench-only Workers (bench/workers/) with
//     `wrangler deploy --dry-run`, exactly as they would be deployed.
//  2. Builds a config snapshot from a realistic policy with the repo's own core (validate, then
//     buildSnapshot) and serves it to the router's MESH_CONFIG through workerd's real
//     kvNamespace binding (test/fixtures/snapshot-kv.ts answers the KV protocol).
//  3. Micro: times, in this Node process (V8, the engine family workerd uses), what the router's
//     hot path does per request and the lanes below can only show through noise: path
//     normalisation (plain and messy paths), one compiled RE2 test against native RegExp for the
//     bench's patterns, and the route matcher on the mesh and mesh-regex lanes' tables; and the
//     worst case the README bounds, RE2 on `(a+)+$` against 'a'×4095 + '!'. Once workerd runs,
//     the same pieces are timed on workerd itself (bench/workers/micro.ts, workerd CPU time from
//     /proc), before any load, with what the mesh-resilient lane adds per call: the circuit
//     breaker's bookkeeping, the outlier-ejection check, the rate limits, the `auto` per-try
//     timeout and the retry layer (its setup, and the whole layer with and without a retry
//     spec), with the router's own code.
//  4. Runs everything in one `workerd serve` (scripts/workerd.mjs, capnp config in bench/.run/)
//     — workerd directly, not `wrangler dev`, whose proxy caps throughput — with one loopback
//     socket per lane. The same client Worker calls `env.ECHO.fetch(request)` in each:
//       direct      client → echo-v1                       (a plain service binding)
//       hop         client → empty hop Worker → echo-v1    (the floor for any extra Worker hop)
//       mesh        client → router (entrypoint Mesh, props {caller, target: echo}) → echo-v1|v2;
//                   echo's route matches by PathPrefix
//       mesh-regex  as mesh, target echo-re: a route of RE2 rules (three it misses, tried first,
//                   then path + header RegularExpression), same filters, split and timeouts
//       mesh-path   as mesh, but the request path needs normalising (`/bench//%6Frders/./`)
//       mesh-resilient  as mesh, target echo-rs: the same route with the resilience policy on —
//                   a Gateway API retry on its split rule, rate limits (per caller and in total,
//                   set high enough never to refuse) on echo-rs, and on each backend
//                   (echo-rs-v1/v2, Services of their own on echo-v1/v2, so the mesh lane stays
//                   routing-only) a circuit breaker and an `auto` per-try timeout; the router
//                   reports to its BackendState Durable Objects (bound in workerd, on disk) via
//                   waitUntil
//     Every lane sends the same request headers (x-tenant), so mesh-regex − mesh is the regex
//     work, mesh-path − mesh the path normalisation's slow path and mesh-resilient − mesh what
//     the resilience policy adds (budget: 20 µs of router CPU per request). The micro section on
//     workerd also times that last one's pieces, since 20 µs is below the lanes' noise.
//     Every mesh lane runs with the router's telemetry on (issue 9), as wrangler.toml ships it:
//     MESH_ANALYTICS is workerd's Analytics Engine binding (`workerd serve --experimental`),
//     delivering each data point to the bench's sink Worker (bench/workers/telemetry-sink.ts),
//     POLICY that sink's RouterReports entrypoint, which takes the metrics flushes; its vars
//     METRICS_FLUSH and ACCESS_LOG_SAMPLE are read from wrangler.toml. Before the load, data
//     points and a flush must have arrived, or the bench stops. The micro section on workerd
//     times what telemetry adds per call (budget: 15 µs of router CPU per request): the mesh
//     lane's whole call with telemetry on, on with a stand-in dataset, and off.
//  5. Drives load from a separate process (bench/load.mjs, autocannon): a warm-up, then a
//     throughput phase per lane (several connections, workerd saturated; its CPU time is read
//     from /proc before and after), then a latency phase per lane with one connection, where the
//     latency is the hop's own cost rather than queueing behind other requests.
//  6. Prints tables, writes bench/results.json, and stops workerd.
//
// Options (`npm run bench -- --seconds 20`): --seconds N (throughput phase per lane, default
// 10), --latency-seconds N (default 4), --rounds N (each phase split into N rounds of
// alternating lane order, default 2), --warmup N (default 3), --connections N (default 16),
// --port-base N (default 19081), --micro-only (only the micro section: no build, no workerd, no
// results.json).
//
// Ports, on 127.0.0.1, from --port-base N: N direct, N+1 hop, N+2 mesh, N+3 the router's HTTP
// entry (/.mesh/status), N+4 the KV service's read counter, N+5 mesh-regex, N+6 mesh-path, N+7
// the micro Worker, N+8 mesh-resilient, N+9 the identity Worker, N+10 mesh-open, N+11 the
// telemetry sink's counts (19081–19092 by default).
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request as httpRequest } from "node:http";
import os from "node:os";
import { dirname, join, relative } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { URLSearchParams, fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parse as parseToml } from "smol-toml";
import { buildSnapshot, parseEntry } from "../core/config/snapshot.ts";
import { validateResources } from "../core/config/validate.ts";
import { normalizePath } from "../core/path-normalization.ts";
import { compileRegex } from "../core/routing/regex.ts";
import { compileRouteTable, matchRoute } from "../core/routing/route-table.ts";
import { FLUSH_INTERVAL_MS } from "../workers/router/backend-sync.ts";
import {
  COMPATIBILITY_DATE,
  WORKERD,
  binding,
  echoService,
  identityService,
  listening,
  LOCAL_ADMIN_TOKEN,
  modulesOf,
  routerService,
  startWorkerd,
  tail,
  writeWorkerdConfig,
} from "../scripts/workerd.mjs";
import { ROUTER_CONFIG, worker } from "../scripts/workers.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const BUILD = join(ROOT, "bench", ".build");
const RUN = join(ROOT, "bench", ".run");
const LOAD = join(ROOT, "bench", "load.mjs");
const RESULTS = join(ROOT, "bench", "results.json");

const { values: options } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    "latency-seconds": { type: "string", default: "4" },
    rounds: { type: "string", default: "2" },
    warmup: { type: "string", default: "3" },
    connections: { type: "string", default: "16" },
    "port-base": { type: "string", default: "19081" },
    "micro-only": { type: "boolean", default: false },
  },
});
const SECONDS = Number(options.seconds);
const LATENCY_SECONDS = Number(options["latency-seconds"]);
const WARMUP_SECONDS = Number(options.warmup);
const ROUNDS = Math.max(1, Math.round(Number(options.rounds)));
const CONNECTIONS = Number(options.connections);
const PORT_BASE = Number(options["port-base"]);

const PORTS = {
  direct: PORT_BASE,
  hop: PORT_BASE + 1,
  mesh: PORT_BASE + 2,
  router: PORT_BASE + 3,
  kv: PORT_BASE + 4,
  "mesh-regex": PORT_BASE + 5,
  "mesh-path": PORT_BASE + 6,
  micro: PORT_BASE + 7,
  "mesh-resilient": PORT_BASE + 8,
  identity: PORT_BASE + 9,
  "mesh-open": PORT_BASE + 10,
  telemetry: PORT_BASE + 11,
};
const REQUEST_PATH = "/bench/orders?id=42";
/** The mesh-path lane's request target: a double slash, an encoded `o` and a dot segment. */
const MESSY_REQUEST_PATH = "/bench//%6Frders/./?id=42";
/** What echo must receive for MESSY_REQUEST_PATH once the router has normalised it. */
const MESSY_NORMALISED = "/bench/orders/";
/** Sent by every lane: the mesh-regex lane's route matches on it, the others ignore it. */
const LOAD_HEADERS = { "x-tenant": "tenant-42" };
const CALLER = "bench";
const TARGET = "echo";
const REGEX_TARGET = "echo-re";
const RESILIENT_TARGET = "echo-rs";
/** The identity-off lane's destination: no caller, PERMISSIVE, one allow-all policy. */
const OPEN_TARGET = "echo-open";
/** The bench caller's bootstrap secret (a WorkloadCredential below; bench only). */
const BENCH_SECRET = "meshwork-bench-bootstrap-secret";
/** The issue's budget for what identity adds: router CPU for verification (warm) + authorization. */
const IDENTITY_BUDGET_US = 30;
/** The issue's budget for what the resilience policy adds: router CPU per request over mesh. */
const RESILIENCE_BUDGET_US = 20;
/** Issue 9's budget for what telemetry adds: router CPU per request (analytics, log, metrics). */
const TELEMETRY_BUDGET_US = 15;
/**
 * The router's telemetry vars as wrangler.toml ships them (the mesh lanes run with these). The
 * bench exists to measure telemetry on: a wrangler.toml with the metrics off is an error here.
 */
const TELEMETRY_VARS = (() => {
  const vars = parseToml(readFileSync(ROUTER_CONFIG, "utf8")).vars ?? {};
  const picked = { ACCESS_LOG_SAMPLE: vars.ACCESS_LOG_SAMPLE, METRICS_FLUSH: vars.METRICS_FLUSH };
  if (picked.METRICS_FLUSH !== "on" || typeof picked.ACCESS_LOG_SAMPLE !== "string") {
    throw new Error(
      `wrangler.toml's [vars] METRICS_FLUSH / ACCESS_LOG_SAMPLE are ${JSON.stringify(picked)}: the bench runs the mesh lanes with the shipped telemetry, METRICS_FLUSH = "on"`,
    );
  }
  return picked;
})();
/** The bench's telemetry sink (bench/workers/telemetry-sink.ts): MESH_ANALYTICS and POLICY. */
const TELEMETRY_SINK = "bench-telemetry";
/** Lanes, in the order of odd rounds (even rounds reverse it). */
const SCENARIOS = [
  { name: "direct", path: "client → echo-v1 (service binding)", requestPath: REQUEST_PATH },
  { name: "hop", path: "client → hop Worker → echo-v1", requestPath: REQUEST_PATH },
  {
    name: "mesh",
    path: "client → router (Mesh, target echo: PathPrefix route) → echo-v1/v2",
    requestPath: REQUEST_PATH,
    mesh: true,
  },
  // Next to mesh, in both round orders: mesh − mesh-open is what identity adds (a budget).
  {
    name: "mesh-open",
    path: "as mesh, target echo-open: no caller, no token, PERMISSIVE, allow-all → echo-v1/v2",
    requestPath: REQUEST_PATH,
    mesh: true,
    open: true,
  },
  // Next to mesh, in both round orders: its difference to mesh is the one with a budget.
  {
    name: "mesh-resilient",
    path: "as mesh, target echo-rs: + retry policy and circuit breakers → echo-v1/v2",
    requestPath: REQUEST_PATH,
    mesh: true,
    resilient: true,
  },
  {
    name: "mesh-regex",
    path: "client → router (Mesh, target echo-re: RE2 route) → echo-v1/v2",
    requestPath: REQUEST_PATH,
    mesh: true,
  },
  {
    name: "mesh-path",
    path: "as mesh, with a path to normalise → echo-v1/v2",
    requestPath: MESSY_REQUEST_PATH,
    mesh: true,
  },
];
/**
 * After a phase of a lane that reports to Durable Objects, wait this long before reading the
 * router's counters: its last report is due within a flush interval of its last call, so it is
 * counted in its own lane, and its CPU falls in no other lane's phase.
 */
const REPORT_SETTLE_MS = FLUSH_INTERVAL_MS + 200;
/** Other processes' CPU (in cores) during a phase above which the run is flagged as noisy. */
const NOISY_CPU = 0.15;

const childEnv = { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" };
delete childEnv.FORCE_COLOR;
/** The running workerd (scripts/workerd.mjs's handle), once started. */
let workerd;
let loadChild;

// ---------------------------------------------------------------------------------------------
// The policy: what a team running echo with a canary would configure, and the same destination
// routed the way a real table with regular expressions would be.

const TIMEOUTS = { request: "10s", backendRequest: "5s" };
const split = (v1, v2) => [
  { name: v1, weight: 90 },
  { name: v2, weight: 10 },
];
const SPLIT = split("echo-v1", "echo-v2");
/** The mesh-resilient lane's retry (Gateway API, on its split rule) and circuit breakers. */
const RETRY = { codes: [502, 503, 504], attempts: 2, backoff: "25ms" };
const CIRCUIT_BREAKER = { consecutiveFailures: 5, failureRate: 0.5, minimumRequests: 20 };
/** Its rate limits: checked on every call, never reached by the load. */
const RATE_LIMIT = {
  total: { requestsPerSecond: 1_000_000 },
  perCaller: { requestsPerSecond: 1_000_000 },
};
/** The mesh-resilient lane's own backend Services (on echo-v1/v2), so mesh has no breakers. */
const RESILIENT_BACKENDS = ["echo-rs-v1", "echo-rs-v2"];
/** The Services the mesh-resilient lane's router reports on: its backends, and echo-rs itself. */
const REPORTING_SERVICES = ["echo-rs", ...RESILIENT_BACKENDS];
const headerEdits = (route) => ({
  type: "RequestHeaderModifier",
  requestHeaderModifier: {
    set: [{ name: "x-mesh-route", value: `${route}/split` }],
    add: [{ name: "x-tenant", value: "bench" }],
    remove: ["x-debug"],
  },
});

/** The RE2 patterns of the echo-re route (also timed on their own in the micro section). */
const PATTERNS = {
  users: "/api/v[0-9]+/users/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
  items: "/items/[0-9]+/(reviews|questions|photos)/[0-9]+",
  bench: "/bench/(orders|payments|invoices)",
  tenant: "tenant-[0-9]+",
  canary: "always|yes",
};

/**
 * A canary route on `parent`: x-canary: always → `v2`; everything else split 90/10 between `v1`
 * and `v2`, with header edits naming the route; `splitExtra` adds to the split rule.
 */
function canaryRoute(name, parent, [v1, v2], splitExtra = {}) {
  return {
    apiVersion: "gateway.networking.k8s.io/v1",
    kind: "HTTPRoute",
    metadata: { name },
    spec: {
      parentRefs: [{ name: parent }],
      rules: [
        {
          name: "canary-testers",
          matches: [{ headers: [{ name: "x-canary", value: "always" }] }],
          backendRefs: [{ name: v2 }],
          timeouts: TIMEOUTS,
        },
        {
          name: "split",
          matches: [{ path: { type: "PathPrefix", value: "/" } }],
          filters: [headerEdits(name)],
          backendRefs: split(v1, v2),
          timeouts: TIMEOUTS,
          ...splitExtra,
        },
      ],
    },
  };
}

/** The destinations the mesh lanes call with identity on: zero trust, several rules. */
const GUARDED = ["echo", "echo-re", "echo-rs"];
const guarded = GUARDED.map((name) => ({ kind: "Service", name }));
const meshResource = (kind, name, spec) => ({
  apiVersion: "meshwork.dev/v1",
  kind,
  metadata: { name },
  spec,
});
const IDENTITY_POLICY = [
  // Zero trust (the default, written out): a call needs an ALLOW; STRICT peers by default.
  meshResource("MeshSettings", "mesh", { authorization: { defaultAction: "DENY" } }),
  // The bench caller's identity outside Workers: a token from the identity Worker.
  meshResource("WorkloadCredential", "bench", {
    service: CALLER,
    bootstrap: { secretSha256: createHash("sha256").update(BENCH_SECRET).digest("hex") },
  }),
  meshResource("AuthorizationPolicy", "bench-no-admin", {
    targetRefs: guarded,
    action: "DENY",
    rules: [{ to: [{ operation: { paths: ["/admin", "/admin/*", "*.env"] } }] }],
  }),
  meshResource("AuthorizationPolicy", "bench-batch-no-deletes", {
    targetRefs: guarded,
    action: "DENY",
    rules: [
      {
        from: [{ source: { principals: ["spiffe://meshwork.local/batch-*"] } }],
        to: [{ operation: { methods: ["DELETE"] } }],
      },
    ],
  }),
  meshResource("AuthorizationPolicy", "bench-callers", {
    targetRefs: guarded,
    action: "ALLOW",
    rules: [
      {
        from: [{ source: { principals: ["spiffe://meshwork.local/admin-tools"] } }],
      },
      {
        from: [
          {
            source: {
              principals: [`spiffe://meshwork.local/${CALLER}`, "spiffe://meshwork.local/orders"],
            },
          },
        ],
        to: [{ operation: { methods: ["GET", "POST"], paths: ["/bench/*", "/api/*"] } }],
        when: [{ key: "request.headers[x-tenant]", values: ["tenant-*"] }],
      },
    ],
  }),
  meshResource("AuthorizationPolicy", "bench-audit-writes", {
    targetRefs: guarded,
    action: "AUDIT",
    rules: [{ to: [{ operation: { methods: ["POST", "PUT", "DELETE"] } }] }],
  }),
  // The identity-off lane: its destination takes calls with no caller, and allows them all.
  service(OPEN_TARGET, "ECHO_V1"),
  canaryRoute("echo-open", OPEN_TARGET, ["echo-v1", "echo-v2"]),
  meshResource("PeerAuthentication", "echo-open", {
    targetRefs: [{ kind: "Service", name: OPEN_TARGET }],
    mode: "PERMISSIVE",
  }),
  meshResource("AuthorizationPolicy", "echo-open", {
    targetRefs: [{ kind: "Service", name: OPEN_TARGET }],
    rules: [{}],
  }),
];

const POLICY = [
  ...IDENTITY_POLICY,
  service("echo-v1", "ECHO_V1"),
  service("echo-v2", "ECHO_V2"),
  // `echo`, `echo-re` and `echo-rs` front the versions; their own endpoint is used only with no
  // route.
  service("echo", "ECHO_V1"),
  service("echo-re", "ECHO_V1"),
  canaryRoute("echo-canary", "echo", ["echo-v1", "echo-v2"]),
  // The same destination, routed by RE2 regular expressions. Precedence puts regex paths before
  // prefixes and, among them, longer values first, then more header matches, then rule order:
  // so a request for /bench/orders tries users-by-id, item-questions and canary-testers (all
  // miss) before it matches split — the three misses are what a real table makes a call pay.
  {
    apiVersion: "gateway.networking.k8s.io/v1",
    kind: "HTTPRoute",
    metadata: { name: "echo-re" },
    spec: {
      parentRefs: [{ name: "echo-re" }],
      rules: [
        {
          name: "users-by-id",
          matches: [{ path: { type: "RegularExpression", value: PATTERNS.users } }],
          backendRefs: [{ name: "echo-v1" }],
          timeouts: TIMEOUTS,
        },
        {
          name: "item-questions",
          matches: [{ path: { type: "RegularExpression", value: PATTERNS.items } }],
          backendRefs: [{ name: "echo-v1" }],
          timeouts: TIMEOUTS,
        },
        {
          // The load sends no x-canary: the path regex runs and matches, the header is absent.
          name: "canary-testers",
          matches: [
            {
              path: { type: "RegularExpression", value: PATTERNS.bench },
              headers: [{ type: "RegularExpression", name: "x-canary", value: PATTERNS.canary }],
            },
          ],
          backendRefs: [{ name: "echo-v2" }],
          timeouts: TIMEOUTS,
        },
        {
          name: "split",
          matches: [
            {
              path: { type: "RegularExpression", value: PATTERNS.bench },
              headers: [{ type: "RegularExpression", name: "x-tenant", value: PATTERNS.tenant }],
            },
          ],
          filters: [headerEdits("echo-re")],
          backendRefs: SPLIT,
          timeouts: TIMEOUTS,
        },
      ],
    },
  },
  // The same route as echo-canary with the resilience policy on: a retry on its split rule, and
  // a circuit breaker on each backend. A BackendPolicy governs every call to the Services it
  // targets, so the lane has backend Services of its own (the same Workers as echo-v1/v2): the
  // mesh lane's calls to echo-v1/v2 stay routing-only.
  service("echo-rs", "ECHO_V1"),
  service(RESILIENT_BACKENDS[0], "ECHO_V1"),
  service(RESILIENT_BACKENDS[1], "ECHO_V2"),
  // The split rule leaves the per-try timeout to the backends' policy (`auto`).
  canaryRoute(RESILIENT_TARGET, RESILIENT_TARGET, RESILIENT_BACKENDS, {
    retry: RETRY,
    timeouts: { request: TIMEOUTS.request },
  }),
  {
    apiVersion: "meshwork.dev/v1",
    kind: "BackendPolicy",
    metadata: { name: "echo-rs-backends" },
    spec: {
      targetRefs: RESILIENT_BACKENDS.map((name) => ({ kind: "Service", name })),
      circuitBreaker: CIRCUIT_BREAKER,
      timeouts: { backendRequest: "auto" },
    },
  },
  {
    apiVersion: "meshwork.dev/v1",
    kind: "BackendPolicy",
    metadata: { name: "echo-rs-limits" },
    spec: {
      targetRefs: [{ kind: "Service", name: RESILIENT_TARGET }],
      rateLimit: RATE_LIMIT,
    },
  },
];

function service(name, bindingName) {
  return {
    apiVersion: "meshwork.dev/v1",
    kind: "Service",
    metadata: { name },
    spec: { endpoints: [{ binding: bindingName }] },
  };
}

function buildSnapshotWrites() {
  const validated = validateResources(POLICY);
  if (!validated.ok) {
    throw new Error(`the bench policy does not validate: ${JSON.stringify(validated.issues)}`);
  }
  const snapshot = buildSnapshot(validated.value, 1, new Date());
  if (!snapshot.ok) {
    throw new Error(`the bench policy does not snapshot: ${JSON.stringify(snapshot.issues)}`);
  }
  const { index, writes } = snapshot;
  return { index, kv: Object.fromEntries(writes.map((w) => [w.key, w.value])) };
}

// ---------------------------------------------------------------------------------------------
// Micro: the hot path's pieces, timed in this process.

/**
 * A timing loop of its own per case (compiled separately, so no call site is shared between
 * cases and each stays monomorphic). Returns how many calls returned true, so nothing is dead.
 */
function makeLoop() {
  return new Function(
    "fn",
    "subject",
    "n",
    "let hits = 0; for (let i = 0; i < n; i++) if (fn(subject)) hits++; return hits;",
  );
}

const MICRO_BATCHES = 7;
const MICRO_MAX_CALLS = 200_000;
const MICRO_MIN_CALLS = 10_000;
/** A batch aims at about this long, so a slow case (RE2, the matcher) does not take seconds. */
const MICRO_BATCH_NS = 40e6;

/** Nanoseconds per call of `fn(subject)`: the median of MICRO_BATCHES timed batches. */
function timeCalls(fn, subject) {
  const loop = makeLoop();
  // Warm-up (lets V8 optimise fn and the loop), then a probe to size the batches.
  loop(fn, subject, 20_000);
  const t0 = process.hrtime.bigint();
  loop(fn, subject, MICRO_MIN_CALLS);
  const probe = Number(process.hrtime.bigint() - t0) / MICRO_MIN_CALLS;
  const calls = Math.round(
    Math.min(MICRO_MAX_CALLS, Math.max(MICRO_MIN_CALLS, MICRO_BATCH_NS / Math.max(probe, 1))),
  );
  loop(fn, subject, calls);
  const perCall = [];
  let hits = 0;
  for (let b = 0; b < MICRO_BATCHES; b++) {
    const start = process.hrtime.bigint();
    hits = loop(fn, subject, calls);
    perCall.push(Number(process.hrtime.bigint() - start) / calls);
  }
  perCall.sort((a, b) => a - b);
  return {
    callsPerBatch: calls,
    batches: MICRO_BATCHES,
    nsPerCall: perCall[Math.floor(perCall.length / 2)],
    minNs: perCall[0],
    maxNs: perCall.at(-1),
    result: hits === calls ? true : hits === 0 ? false : "mixed",
  };
}

/** The compiled route table of `destination` from the bench policy, as the router builds it. */
function compiledTable(destination) {
  const validated = validateResources(POLICY);
  if (!validated.ok) throw new Error(JSON.stringify(validated.issues));
  const snapshot = buildSnapshot(validated.value, 1, new Date());
  if (!snapshot.ok) throw new Error(JSON.stringify(snapshot.issues));
  const key = snapshot.index.destinations[destination];
  const value = snapshot.writes.find((w) => w.key === key).value;
  const entry = parseEntry(JSON.parse(value), key);
  if (!entry.ok) throw new Error(JSON.stringify(entry.issues));
  return compileRouteTable(entry.value, { hasBinding: () => true });
}

function runMicro() {
  const cases = [];
  const add = (group, name, fn, subject, expect, extra = {}) => {
    const timing = timeCalls(fn, subject);
    if (timing.result !== expect) {
      throw new Error(`micro ${group} ${name}: expected ${expect}, got ${timing.result}`);
    }
    cases.push({ group, name, ...extra, ...timing });
  };

  // Loop and call overhead, for reading the cheapest cases.
  add("baseline", "empty call (loop + call overhead)", (s) => s.length > 0, "/bench/orders", true);

  // Path normalisation: every request takes the plain path's fast scan.
  const normalize = (s) => normalizePath(s, "reject").ok;
  add("normalizePath", "plain /bench/orders (fast path)", normalize, "/bench/orders", true);
  add("normalizePath", "messy /bench//%6Frders/./x", normalize, "/bench//%6Frders/./x", true);
  const messy = normalizePath("/bench//%6Frders/./x", "reject");
  if (!messy.ok || messy.path !== "/bench/orders/x") {
    throw new Error(`normalizePath('/bench//%6Frders/./x') gave ${JSON.stringify(messy)}`);
  }

  // RE2 (compileRegex: anchored, length-bounded) against the same pattern as native RegExp.
  const subjects = [
    ["bench", "/bench/orders", true],
    ["bench", "/bench/refunds", false],
    ["users", "/api/v2/users/0b7e5c2a-3f4d-4e8b-9a1c-2d3e4f5a6b7c", true],
    ["users", "/bench/orders", false],
    ["items", "/items/42/reviews/7", true],
    ["items", "/bench/orders", false],
    ["tenant", "tenant-42", true],
    ["tenant", "guest", false],
  ];
  for (const [pattern, subject, expect] of subjects) {
    const re2 = compileRegex(PATTERNS[pattern]);
    const native = new RegExp(`^(?:${PATTERNS[pattern]})$`);
    const label = `${pattern} ← ${subject}`;
    const extra = { pattern: PATTERNS[pattern], subject };
    add("RE2", label, re2, subject, expect, extra);
    add("RegExp", label, (s) => native.test(s), subject, expect, extra);
  }

  // The matcher, for the request the load sends, on the two lanes' tables.
  const facts = {
    method: "GET",
    path: "/bench/orders",
    headers: new globalThis.Headers({
      host: "127.0.0.1",
      connection: "keep-alive",
      ...LOAD_HEADERS,
    }),
    query: { get: (name) => new URLSearchParams("id=42").get(name) },
  };
  const tables = [
    ["mesh", compiledTable(TARGET), "echo-canary/split"],
    ["mesh-regex", compiledTable(REGEX_TARGET), "echo-re/split"],
  ];
  for (const [lane, table, expected] of tables) {
    const match = matchRoute(table, facts);
    if (match?.rule.id !== expected) {
      throw new Error(`micro: ${lane}'s table matched ${match?.rule.id}, expected ${expected}`);
    }
    const tried = table.matches.indexOf(match) + 1;
    add(
      "matchRoute",
      `${lane} table (${expected}: entry ${tried} of ${table.matches.length})`,
      (f) => matchRoute(table, f) !== undefined,
      facts,
      true,
    );
  }

  // The README's bound: linear time on the classic catastrophic pattern (one call).
  const worstPattern = "(a+)+$";
  const worstSubject = `${"a".repeat(4095)}!`;
  const worst = compileRegex(worstPattern);
  const t0 = process.hrtime.bigint();
  const worstMatched = worst(worstSubject);
  const worstMs = Number(process.hrtime.bigint() - t0) / 1e6;

  const ns = (group, prefix) =>
    cases.find((c) => c.group === group && c.name.startsWith(prefix)).nsPerCall;
  return {
    method:
      `in the bench process (Node ${process.version}, V8 ${process.versions.v8}); per case a ` +
      `warm-up, then the median of ${MICRO_BATCHES} timed batches of up to ` +
      `${MICRO_MAX_CALLS} calls (fewer for slow cases, ~${MICRO_BATCH_NS / 1e6} ms a batch); ` +
      "ns per call include the loop and call overhead (the baseline case)",
    cases,
    summary: {
      normalizePathPlainNs: ns("normalizePath", "plain"),
      normalizePathMessyNs: ns("normalizePath", "messy"),
      matchRouteMeshNs: ns("matchRoute", "mesh table"),
      matchRouteMeshRegexNs: ns("matchRoute", "mesh-regex table"),
      matchRouteRegexOverheadNs:
        ns("matchRoute", "mesh-regex table") - ns("matchRoute", "mesh table"),
    },
    worstCase: {
      pattern: worstPattern,
      subject: "'a' × 4095 + '!'",
      engine: "RE2 (compileRegex), one call after compiling",
      matched: worstMatched,
      ms: worstMs,
    },
  };
}

function printMicro(micro) {
  console.log(`Micro: ns per call, ${micro.method}`);
  printRows(
    [
      ["case", "", "calls/batch", "ns/call", "(min – max)", "result"],
      ...micro.cases.map((c) => [
        c.group,
        c.name,
        String(c.callsPerBatch),
        fixed(c.nsPerCall, 1),
        `${fixed(c.minNs, 1)} – ${fixed(c.maxNs, 1)}`,
        String(c.result),
      ]),
    ],
    2,
  );
  console.log(
    `patterns (RE2: compileRegex; RegExp: native, anchored as ^(?:…)$): ${Object.entries(PATTERNS)
      .filter(([name]) => micro.cases.some((c) => c.name.startsWith(`${name} ←`)))
      .map(([name, pattern]) => `${name} = ${pattern}`)
      .join(", ")}`,
  );
  const s = micro.summary;
  console.log(
    `matchRoute: mesh-regex table − mesh table = ${fixed(s.matchRouteRegexOverheadNs / 1000, 2)} µs per request (V8 in Node)`,
  );
  console.log(
    `normalizePath: messy − plain = ${fixed((s.normalizePathMessyNs - s.normalizePathPlainNs) / 1000, 2)} µs per request`,
  );
  const w = micro.worstCase;
  console.log(
    `worst case: RE2 ${w.pattern} on ${w.subject}: ${fixed(w.ms, 3)} ms, one call (matched: ${w.matched})`,
  );
}

/**
 * The same pieces timed on workerd itself (bench/workers/micro.ts runs each `n` times per
 * request): workerd's CPU time from /proc over WORKERD_MICRO_REQUESTS requests, per call. Run
 * before any load, on an otherwise idle workerd; the clock ticks every 10 ms, so each case runs
 * for about a second.
 */
const WORKERD_MICRO_CASES = [
  ["baseline", "empty call (loop + call overhead)", 400_000],
  ["normalize-plain", "normalizePath plain /bench/orders (fast path)", 400_000],
  ["normalize-messy", "normalizePath messy /bench//%6Frders/./x", 50_000],
  ["match-mesh", "matchRoute mesh table (echo-canary/split)", 200_000],
  ["match-mesh-regex", "matchRoute mesh-regex table (echo-re/split)", 40_000],
  // What mesh-resilient adds per call, with the router's code and echo-rs's compiled policies.
  ["rs-breaker", "breaker per try: admit + the outcome's record (a success)", 100_000],
  ["rs-ejection", "outlier-ejection check: would the split's 2 breakers refuse", 250_000],
  ["rs-retry-setup", "retry setup: isRetryableRequest + the backend budget's deposit", 150_000],
  ["rs-rate-limit", "rate limits: the caller's, then the total (two buckets)", 150_000],
  ["rs-auto-timeout", "auto per-try timeout: read the estimate, feed one latency", 150_000],
  ["retry-layer-none", "retry layer, 1 try → 200, mesh rule (no retry; async)", 150_000],
  ["retry-layer-spec", "retry layer, 1 try → 200, echo-rs rule (retry spec; async)", 150_000],
  // What the mesh lane's identity and authorization add per warm call.
  ["id-verify-warm", "SVID: cached verification + revocation and certificate checks", 200_000],
  ["id-authorize", "authorization: echo's 4 policies (DENY, DENY, ALLOW + when, AUDIT)", 200_000],
  ["id-forward", "X-Mesh-Caller, XFCC and the shared passport (cached)", 100_000],
  // What every call adds for propagation status, once its version is reported.
  ["version-report", "version report: note the colo, nothing due", 400_000],
  // Whole calls through the router's entry, backends answering at once: the A/Bs of identity
  // (mesh − open) and of the resilience policy (resilient − mesh).
  ["pipeline-open", "whole call, identity off: echo-open (handleMeshCall; async)", 10_000],
  ["pipeline-mesh", "whole call, identity + authorization: echo (handleMeshCall; async)", 10_000],
  [
    "pipeline-resilient",
    "whole call, + resilience policy: echo-rs (handleMeshCall; async)",
    10_000,
  ],
  // Issue 9: pipeline-mesh's call with the router's telemetry off, on with a stand-in dataset
  // (the router's own work) and on with workerd's Analytics Engine binding (and its delivery
  // of each point to the sink Worker, which a case waits for before its CPU is read).
  [
    "pipeline-telemetry-off",
    "whole call as pipeline-mesh, telemetry off (no dataset, no flushes, no log; async)",
    10_000,
  ],
  [
    "pipeline-telemetry-stub",
    "  … telemetry on, stand-in dataset (data point, 1% log, edge counts, flushes; async)",
    10_000,
  ],
  [
    "pipeline-telemetry-on",
    "  … telemetry on, workerd's Analytics Engine binding + its delivery (async)",
    10_000,
  ],
];
/** The telemetry A/B's cases: off, on with a stand-in dataset, on with workerd's binding. */
const TELEMETRY_MICRO_CASES = [
  "pipeline-telemetry-off",
  "pipeline-telemetry-stub",
  "pipeline-telemetry-on",
];
/** The cases whose sum is what identity and authorization add to a warm call. */
const IDENTITY_MICRO_CASES = ["id-verify-warm", "id-authorize", "id-forward"];
/** The cases whose sum is the resilience bookkeeping per call. */
const RESILIENCE_MICRO_CASES = [
  "rs-breaker",
  "rs-ejection",
  "rs-retry-setup",
  "rs-rate-limit",
  "rs-auto-timeout",
];
const WORKERD_MICRO_REQUESTS = 8;

/**
 * Cases compared with each other (an A/B), timed in interleaved rounds — A, B, C, A, B, C … — so
 * that a drift of the machine during the section falls on each of them alike. Each of their
 * requests runs for about half a second, so the 10 ms clock tick is small against it.
 */
const WORKERD_MICRO_INTERLEAVED = [
  ["pipeline-open", "pipeline-mesh", "pipeline-resilient"],
  ["retry-layer-none", "retry-layer-spec"],
  TELEMETRY_MICRO_CASES,
];
/** What the telemetry sink has received (bench/workers/telemetry-sink.ts). */
const telemetryCounts = async () => (await get(PORTS.telemetry, "/.bench/counts")).json;

/**
 * Waits until the sink has received `expected` data points in all (workerd delivers them after
 * the calls that wrote them), so their delivery falls in the case that caused it.
 */
async function dataPointsDelivered(expected, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { dataPoints } = await telemetryCounts();
    if (dataPoints >= expected) return dataPoints;
    if (Date.now() > deadline) {
      throw new Error(
        `the telemetry sink received ${dataPoints} data points, expected ${expected}`,
      );
    }
    await sleep(20);
  }
}

async function runWorkerdMicro() {
  const target = (name, n) => `http://127.0.0.1:${PORTS.micro}/?case=${name}&n=${n}`;
  const delivered = { expected: 0 };
  const call = async (name, calls) => {
    // Each telemetry case reads the sink once (the one that writes data points until they have
    // all arrived), so the reading's cost falls on each of them alike.
    const telemetry = TELEMETRY_MICRO_CASES.includes(name);
    if (telemetry) delivered.expected = (await telemetryCounts()).dataPoints;
    const response = await fetch(target(name, calls), { headers: LOAD_HEADERS });
    const text = await response.text();
    if (response.status !== 200 || Number(text) !== calls) {
      throw new Error(`workerd micro ${name}: ${response.status} ${text}`);
    }
    if (telemetry) {
      const expected = delivered.expected + (name === "pipeline-telemetry-on" ? calls : 0);
      const got = await dataPointsDelivered(expected);
      if (name !== "pipeline-telemetry-on" && got !== expected) {
        throw new Error(`workerd micro ${name}: ${got - expected} data points reached the sink`);
      }
    }
  };
  const byName = new Map(WORKERD_MICRO_CASES.map((c) => [c[0], c]));
  const measured = new Map();
  for (const [name, , n] of WORKERD_MICRO_CASES) {
    if (measured.has(name)) continue;
    const group = WORKERD_MICRO_INTERLEAVED.find((g) => g.includes(name)) ?? [name];
    // warm-up: compile the tables, let V8 optimise
    for (const member of group) await call(member, Math.ceil(byName.get(member)[2] / 10));
    if (group.length === 1) {
      const cpu0 = workerdCpuSeconds();
      for (let r = 0; r < WORKERD_MICRO_REQUESTS; r++) await call(name, n);
      measured.set(name, workerdCpuSeconds() - cpu0);
      continue;
    }
    for (const member of group) measured.set(member, 0);
    for (let r = 0; r < WORKERD_MICRO_REQUESTS; r++) {
      // Alternate the order each round too, so no case always follows the same one.
      const order = r % 2 === 0 ? group : [...group].reverse();
      for (const member of order) {
        const cpu0 = workerdCpuSeconds();
        await call(member, byName.get(member)[2]);
        measured.set(member, measured.get(member) + workerdCpuSeconds() - cpu0);
      }
    }
  }
  const cases = WORKERD_MICRO_CASES.map(([name, label, n]) => {
    const calls = n * WORKERD_MICRO_REQUESTS;
    const cpuSeconds = measured.get(name);
    return { case: name, name: label, calls, cpuSeconds, nsPerCall: (cpuSeconds * 1e9) / calls };
  });
  const ns = (name) => cases.find((c) => c.case === name).nsPerCall;
  // What the telemetry cases' router states saw: on and stub wrote data points and flushed
  // their counts, off did neither (else the A/B compares the wrong things).
  const state = await (await fetch(target("telemetry-state", 1))).json();
  const telemetryProblems = [];
  for (const mode of ["on", "stub"]) {
    const v = state[mode];
    if (!v.analytics || v.analyticsErrors !== 0 || !v.metrics.enabled || !(v.metrics.flushes > 0)) {
      telemetryProblems.push(`micro telemetry ${mode}: ${JSON.stringify(v)}`);
    }
  }
  if (state.off.analytics || state.off.metrics.enabled || state.off.metrics.flushes !== 0) {
    telemetryProblems.push(`micro telemetry off: ${JSON.stringify(state.off)}`);
  }
  if (telemetryProblems.length > 0) {
    throw new Error(`the telemetry A/B did not run as set up:\n${telemetryProblems.join("\n")}`);
  }
  return {
    method:
      `on workerd (bench/workers/micro.ts, same build and snapshot as the router): workerd CPU ` +
      `time from /proc over ${WORKERD_MICRO_REQUESTS} requests per case, divided by the calls; ` +
      "includes the loop and call overhead (the baseline case) and any garbage collection; " +
      `the A/B cases (${WORKERD_MICRO_INTERLEAVED.map((g) => g.join(" / ")).join("; ")}) in interleaved rounds`,
    cases,
    summary: {
      normalizePathMessyOverPlainNs: ns("normalize-messy") - ns("normalize-plain"),
      matchRouteRegexOverheadNs: ns("match-mesh-regex") - ns("match-mesh"),
      // The mesh-resilient lane's additions per call, each case with its loop overhead.
      resilienceBookkeepingNs: RESILIENCE_MICRO_CASES.reduce((t, name) => t + ns(name), 0),
      resilienceBookkeepingCases: RESILIENCE_MICRO_CASES,
      // The whole retry layer, with echo-rs's retry spec over the mesh rule's none: also its
      // async frames, header sets and Attempt, which the setup case leaves out.
      retryLayerSpecOverNoneNs: ns("retry-layer-spec") - ns("retry-layer-none"),
      // The whole router, end to end in one isolate: what the resilience policy adds per call.
      pipelineResilientOverMeshNs: ns("pipeline-resilient") - ns("pipeline-mesh"),
      resilienceBudgetNs: RESILIENCE_BUDGET_US * 1000,
      // Identity and authorization on a warm call: the pieces, and the whole router's A/B.
      identityPiecesNs: IDENTITY_MICRO_CASES.reduce((t, name) => t + ns(name), 0),
      identityCases: IDENTITY_MICRO_CASES,
      pipelineMeshOverOpenNs: ns("pipeline-mesh") - ns("pipeline-open"),
      identityBudgetNs: IDENTITY_BUDGET_US * 1000,
      // Telemetry (issue 9), the mesh lane's call: on − off with workerd's dataset (its local
      // delivery of each point included), the stand-in's (the router's own work), and the
      // difference of the two (what workerd's binding and delivery cost per point).
      telemetryOnOverOffNs: ns("pipeline-telemetry-on") - ns("pipeline-telemetry-off"),
      telemetryStubOverOffNs: ns("pipeline-telemetry-stub") - ns("pipeline-telemetry-off"),
      telemetryOnOverStubNs: ns("pipeline-telemetry-on") - ns("pipeline-telemetry-stub"),
      telemetryBudgetNs: TELEMETRY_BUDGET_US * 1000,
      telemetryState: state,
    },
  };
}

function printWorkerdMicro(micro) {
  console.log(`Micro on workerd: ns per call, ${micro.method}`);
  printRows(
    [
      ["case", "calls", "CPU s", "ns/call"],
      ...micro.cases.map((c) => [
        c.name,
        String(c.calls),
        fixed(c.cpuSeconds, 2),
        fixed(c.nsPerCall, 1),
      ]),
    ],
    1,
  );
  console.log(
    `matchRoute on workerd: mesh-regex table − mesh table = ${fixed(micro.summary.matchRouteRegexOverheadNs / 1000, 2)} µs per request; normalizePath messy − plain = ${fixed(micro.summary.normalizePathMessyOverPlainNs / 1000, 2)} µs`,
  );
  const s = micro.summary;
  const us = (name) => fixed(micro.cases.find((c) => c.case === name).nsPerCall / 1000, 2);
  const verdict = (ns) => (ns <= s.resilienceBudgetNs ? "within" : "OVER");
  console.log(
    `resilience bookkeeping per call on workerd: ${fixed(s.resilienceBookkeepingNs / 1000, 2)} µs (breaker ${us("rs-breaker")} + ejection check ${us("rs-ejection")} + retry setup ${us("rs-retry-setup")} + rate limits ${us("rs-rate-limit")} + auto timeout ${us("rs-auto-timeout")}) against a budget of ${RESILIENCE_BUDGET_US} µs of router CPU per request: ${verdict(s.resilienceBookkeepingNs)}`,
  );
  const withLayer =
    s.resilienceBookkeepingNs -
    micro.cases.find((c) => c.case === "rs-retry-setup").nsPerCall +
    s.retryLayerSpecOverNoneNs;
  console.log(
    `whole retry layer, echo-rs spec − no retry: ${signed(s.retryLayerSpecOverNoneNs / 1000, 2)} µs per call; with it in place of the retry setup: ${fixed(withLayer / 1000, 2)} µs (${verdict(withLayer)} the budget)`,
  );
  console.log(
    `whole call through the router (instant backends), resilience policy − routing only: ${signed(s.pipelineResilientOverMeshNs / 1000, 2)} µs per call (${us("pipeline-resilient")} vs ${us("pipeline-mesh")}): ${verdict(s.pipelineResilientOverMeshNs)} the budget of ${RESILIENCE_BUDGET_US} µs`,
  );
  const idVerdict = (ns) => (ns <= s.identityBudgetNs ? "within" : "OVER");
  console.log(
    `identity + authorization per warm call on workerd: ${fixed(s.identityPiecesNs / 1000, 2)} µs (token ${us("id-verify-warm")} + authorization ${us("id-authorize")} + headers and passport ${us("id-forward")}); whole call, identity on − off: ${signed(s.pipelineMeshOverOpenNs / 1000, 2)} µs (${us("pipeline-mesh")} vs ${us("pipeline-open")}): ${idVerdict(s.pipelineMeshOverOpenNs)} the budget of ${IDENTITY_BUDGET_US} µs`,
  );
  console.log(
    `propagation status per call on workerd (the version report's check, nothing due): ${us("version-report")} µs`,
  );
  const telVerdict = (ns) => (ns <= s.telemetryBudgetNs ? "within" : "OVER");
  console.log(
    `telemetry per call on workerd (the mesh lane's whole call, on − off): router's own work (stand-in dataset) ${signed(s.telemetryStubOverOffNs / 1000, 2)} µs (${us("pipeline-telemetry-stub")} vs ${us("pipeline-telemetry-off")}): ${telVerdict(s.telemetryStubOverOffNs)} the budget of ${TELEMETRY_BUDGET_US} µs; with workerd's Analytics Engine binding and its local delivery ${signed(s.telemetryOnOverOffNs / 1000, 2)} µs (${us("pipeline-telemetry-on")}), of which the binding and delivery ${signed(s.telemetryOnOverStubNs / 1000, 2)} µs per data point`,
  );
}

// ---------------------------------------------------------------------------------------------
// Build

// `main`: the bundle wrangler writes, named after the config's entry module.
const WORKERS = [
  // The mesh's own Workers, from the repository's one list of them (scripts/workers.mjs) …
  { name: "router", config: worker("meshwork-router").config, main: "index.js" },
  { name: "echo-v1", config: worker("echo-v1").config, main: "index.js" },
  { name: "echo-v2", config: worker("echo-v2").config, main: "index.js" },
  { name: "identity", config: worker("meshwork-identity").config, main: "index.js" },
  // … and the bench's own.
  { name: "bench-client", config: "bench/workers/client.toml", main: "client.js" },
  { name: "bench-hop", config: "bench/workers/hop.toml", main: "hop.js" },
  { name: "bench-kv", config: "bench/workers/kv.toml", main: "snapshot-kv.js" },
  { name: "bench-micro", config: "bench/workers/micro.toml", main: "micro.js" },
  {
    name: TELEMETRY_SINK,
    config: "bench/workers/telemetry-sink.toml",
    main: "telemetry-sink.js",
  },
];

function run(command, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: ROOT,
      env: childEnv,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0) resolve(out);
      else {
        process.stderr.write(out);
        reject(new Error(`${command} ${args.join(" ")} exited with ${code}`));
      }
    });
  });
}

async function buildWorkers() {
  // Two at a time: the machine has two cores.
  const queue = [...WORKERS];
  const lanes = [0, 1].map(async () => {
    for (let worker = queue.shift(); worker; worker = queue.shift()) {
      const outdir = join(BUILD, worker.name);
      rmSync(outdir, { recursive: true, force: true });
      // An absolute --outdir: wrangler resolves a relative one against the config's folder.
      await run("npx", [
        "wrangler",
        "deploy",
        "--dry-run",
        "--outdir",
        outdir,
        "-c",
        worker.config,
      ]);
      if (!existsSync(join(outdir, worker.main))) {
        throw new Error(`wrangler wrote no ${join(outdir, worker.main)}`);
      }
    }
  });
  await Promise.all(lanes);
}

// ---------------------------------------------------------------------------------------------
// workerd config (written by scripts/workerd.mjs into bench/.run/workerd.capnp)

/** The modules of the Worker built as `build`, embedded relative to the capnp file. */
function modules(build) {
  return modulesOf(join(BUILD, build), WORKERS.find((w) => w.name === build).main, RUN);
}

const SOCKETS = [
  { name: "direct", port: PORTS.direct, service: "client-direct" },
  { name: "hop", port: PORTS.hop, service: "client-hop" },
  { name: "mesh", port: PORTS.mesh, service: "client-mesh" },
  { name: "router", port: PORTS.router, service: "router" },
  { name: "kv", port: PORTS.kv, service: "bench-kv" },
  { name: "mesh-regex", port: PORTS["mesh-regex"], service: "client-mesh-regex" },
  // The same client and binding as mesh: only the request path differs.
  { name: "mesh-path", port: PORTS["mesh-path"], service: "client-mesh" },
  { name: "micro", port: PORTS.micro, service: "bench-micro" },
  { name: "mesh-resilient", port: PORTS["mesh-resilient"], service: "client-mesh-resilient" },
  { name: "identity", port: PORTS.identity, service: "meshwork-identity" },
  { name: "mesh-open", port: PORTS["mesh-open"], service: "client-mesh-open" },
  { name: "telemetry", port: PORTS.telemetry, service: TELEMETRY_SINK },
];

function writeBenchConfig() {
  const echo = (v) => echoService(modules(`echo-v${v}`), v);
  const client = (name, echoBinding) => ({
    name,
    modules: modules("bench-client"),
    bindings: [echoBinding],
  });
  const meshBinding = (target) =>
    binding.service("ECHO", "router", "Mesh", { caller: CALLER, target });
  const services = [
    // Telemetry on, as wrangler.toml ships it: data points to the sink, flushes to its
    // RouterReports, the shipped METRICS_FLUSH and ACCESS_LOG_SAMPLE.
    routerService(modules("router"), {
      kv: "bench-kv",
      identity: "meshwork-identity",
      analytics: TELEMETRY_SINK,
      policy: TELEMETRY_SINK,
      vars: TELEMETRY_VARS,
    }),
    { name: TELEMETRY_SINK, modules: modules(TELEMETRY_SINK), bindings: [] },
    identityService(modules("identity"), { kv: "bench-kv" }),
    echo(1),
    echo(2),
    {
      name: "bench-hop",
      modules: modules("bench-hop"),
      bindings: [binding.service("ECHO", "echo-v1")],
    },
    {
      name: "bench-kv",
      modules: modules("bench-kv"),
      bindings: [binding.jsonFile("SNAPSHOT", "snapshot.json")],
    },
    {
      name: "bench-micro",
      modules: modules("bench-micro"),
      bindings: [
        binding.jsonFile("SNAPSHOT", "snapshot.json"),
        binding.analyticsEngine("MESH_ANALYTICS", TELEMETRY_SINK),
        binding.service("POLICY", TELEMETRY_SINK, "RouterReports"),
      ],
    },
    client("client-direct", binding.service("ECHO", "echo-v1")),
    client("client-hop", binding.service("ECHO", "bench-hop")),
    client("client-mesh", meshBinding(TARGET)),
    client("client-mesh-regex", meshBinding(REGEX_TARGET)),
    client("client-mesh-resilient", meshBinding(RESILIENT_TARGET)),
    // No caller in its props: the call is unauthenticated (echo-open takes it, PERMISSIVE).
    client("client-mesh-open", binding.service("ECHO", "router", "Mesh", { target: OPEN_TARGET })),
  ];
  return writeWorkerdConfig(RUN, services, SOCKETS);
}

// ---------------------------------------------------------------------------------------------
// workerd process

async function checkPortsFree() {
  for (const { name, port } of SOCKETS) {
    if (await listening(port)) {
      throw new Error(
        `port ${port} (${name}) is already in use; stop what listens there or pass --port-base`,
      );
    }
  }
}

/** Stops the load generator and workerd at once (for exits and signals: no waiting). */
function killChildren() {
  if (loadChild && loadChild.exitCode === null) loadChild.kill("SIGTERM");
  if (workerd && !workerd.exited()) {
    try {
      process.kill(workerd.pid, "SIGTERM");
    } catch {
      // already gone
    }
  }
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU seconds (user + system, all threads) the workerd process has used. */
function workerdCpuSeconds() {
  const stat = readFileSync(`/proc/${workerd.pid}/stat`, "utf8");
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** CPU seconds all processes on the machine have used (busy time from /proc/stat). */
function machineBusySeconds() {
  const [, ...ticks] = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq, steal] = ticks.map(Number);
  return (user + nice + system + irq + softirq + steal) / CLK_TCK;
}

// ---------------------------------------------------------------------------------------------
// Checks and load

const url = (port, path = REQUEST_PATH) => `http://127.0.0.1:${port}${path}`;
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

/**
 * GET with node:http, whose request target goes on the wire exactly as given (fetch would
 * resolve `/./` first), so the smoke test sends what the load sends.
 */
function get(port, path, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: "127.0.0.1", port, path, method: "GET", headers, agent },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (body += d));
        res.on("error", reject);
        res.on("end", () => {
          let json;
          try {
            json = JSON.parse(body);
          } catch {
            json = undefined;
          }
          const header = (name) => {
            const v = res.headers[name];
            return v === undefined ? null : Array.isArray(v) ? v.join(", ") : v;
          };
          resolve({ status: res.statusCode, header, body, json });
        });
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${path} on :${port} timed out`)));
    req.on("error", reject);
    req.end();
  });
}

const ADMIN = { authorization: `Bearer ${LOCAL_ADMIN_TOKEN}` };
const routerStatus = async () => (await get(PORTS.router, "/.mesh/status", ADMIN)).json;

/**
 * The bench caller's JWT-SVID, from the identity Worker (its bootstrap secret), for an hour:
 * every lane sends it but mesh-open's, and the router verifies it (once; then from its cache).
 */
async function benchSvid() {
  const response = await fetch(`http://127.0.0.1:${PORTS.identity}/v1/svid`, {
    method: "POST",
    headers: { authorization: `Bearer ${BENCH_SECRET}`, "content-type": "application/json" },
    body: JSON.stringify({ ttlSeconds: 3600 }),
  });
  const body = await response.json().catch(() => ({}));
  if (response.status !== 200 || typeof body.token !== "string") {
    throw new Error(`the identity Worker gave no SVID: ${response.status} ${JSON.stringify(body)}`);
  }
  return body.token;
}

/** The headers a lane's load sends: the same on every lane, but no token on mesh-open. */
function headersFor(scenario) {
  if (!scenario.open) return LOAD_HEADERS;
  const { "x-mesh-svid": _token, ...rest } = LOAD_HEADERS;
  return rest;
}
const kvServed = async () => (await get(PORTS.kv, "/.bench/reads")).json.reads;

/** One request per lane before any load: each path must work, and the mesh must route. */
async function smokeTest() {
  const problems = [];
  const describe = (r) =>
    `${r.status}${r.header("x-mesh-error") ? ` (X-Mesh-Error: ${r.header("x-mesh-error")})` : ""}: ${r.body.slice(0, 500)}`;
  for (const name of ["direct", "hop"]) {
    const r = await get(PORTS[name], REQUEST_PATH, LOAD_HEADERS);
    if (r.status !== 200 || r.json?.service !== "echo-v1") {
      problems.push(`${name}: expected 200 from echo-v1, got ${describe(r)}`);
    }
  }
  /** Checks a mesh lane's answer: 200 from echo-v1/v2 with the identity and the route's edits. */
  const checkMesh = (lane, r, route, path) => {
    if (r.status !== 200 || !["echo-v1", "echo-v2"].includes(r.json?.service)) {
      problems.push(`${lane}: expected 200 from echo-v1/v2, got ${describe(r)}`);
      return;
    }
    const h = r.json.headers ?? {};
    const expect = {
      "x-mesh-caller": `spiffe://meshwork.local/${CALLER}`,
      "x-mesh-route": `${route}/split`,
      // The load's x-tenant, then the one the rule adds.
      "x-tenant": `${LOAD_HEADERS["x-tenant"]}, bench`,
    };
    for (const [name, value] of Object.entries(expect)) {
      if (h[name] !== value)
        problems.push(`${lane}: echo saw ${name}=${h[name]}, expected ${value}`);
    }
    for (const name of ["x-request-id", "traceparent"]) {
      if (!h[name]) problems.push(`${lane}: echo saw no ${name} header`);
    }
    if ("x-debug" in h) problems.push(`${lane}: RequestHeaderModifier did not remove x-debug`);
    // Identity: the verified caller, Envoy's XFCC and a passport; the caller's token goes no further.
    const xfcc = `By=spiffe://meshwork.local/${route === "echo-canary" ? TARGET : route};URI=spiffe://meshwork.local/${CALLER}`;
    if (h["x-forwarded-client-cert"] !== xfcc) {
      problems.push(`${lane}: echo saw XFCC ${h["x-forwarded-client-cert"]}, expected ${xfcc}`);
    }
    if (!h["x-mesh-passport"]?.startsWith("ey")) problems.push(`${lane}: echo saw no passport`);
    if ("x-mesh-svid" in h) problems.push(`${lane}: the caller's X-Mesh-SVID reached echo`);
    if (r.json.path !== path)
      problems.push(`${lane}: echo saw path ${r.json.path}, expected ${path}`);
    if (r.json.query?.id !== "42") {
      problems.push(`${lane}: echo saw query ${JSON.stringify(r.json.query)}, expected id=42`);
    }
  };
  const withDebug = { ...LOAD_HEADERS, "x-debug": "1" };

  const mesh = await get(PORTS.mesh, REQUEST_PATH, withDebug);
  checkMesh("mesh", mesh, "echo-canary", "/bench/orders");
  let sample;
  if (mesh.status === 200) {
    const canary = await get(PORTS.mesh, REQUEST_PATH, { ...LOAD_HEADERS, "x-canary": "always" });
    if (canary.json?.service !== "echo-v2") {
      problems.push(`mesh: x-canary: always should reach echo-v2, got ${describe(canary)}`);
    }
    // The weighted split, observed over a sequential sample.
    sample = { requests: 400, "echo-v1": 0, "echo-v2": 0, other: 0 };
    for (let i = 0; i < sample.requests; i++) {
      const r = await get(PORTS.mesh, REQUEST_PATH, LOAD_HEADERS);
      const key = r.status === 200 ? r.json?.service : undefined;
      if (key === "echo-v1" || key === "echo-v2") sample[key]++;
      else {
        sample.other++;
        if (sample.other === 1) problems.push(`mesh: a sampled call failed: ${describe(r)}`);
      }
    }
  }

  // mesh-regex must reach the regex split rule (its header edit names it), the regex canary rule
  // must take x-canary, and without the x-tenant the header regex needs, nothing matches.
  const regex = await get(PORTS["mesh-regex"], REQUEST_PATH, withDebug);
  checkMesh("mesh-regex", regex, "echo-re", "/bench/orders");
  const regexCanary = await get(PORTS["mesh-regex"], REQUEST_PATH, {
    ...LOAD_HEADERS,
    "x-canary": "yes",
  });
  if (regexCanary.json?.service !== "echo-v2") {
    problems.push(`mesh-regex: x-canary: yes should reach echo-v2, got ${describe(regexCanary)}`);
  }
  // A tenant the authorization policy lets through (tenant-*) but the route's regex does not
  // match (tenant-[0-9]+): nothing matches.
  const noTenant = await get(PORTS["mesh-regex"], REQUEST_PATH, {
    ...LOAD_HEADERS,
    "x-tenant": "tenant-x",
  });
  if (noTenant.status !== 404 || noTenant.header("x-mesh-error") !== "no_route") {
    problems.push(
      `mesh-regex: x-tenant: tenant-x expected 404 no_route, got ${describe(noTenant)}`,
    );
  }

  // Identity on the mesh lanes: a token that does not verify is refused, and without x-tenant
  // the ALLOW rule's condition fails; mesh-open's calls carry no caller and reach echo.
  const badToken = await get(PORTS.mesh, REQUEST_PATH, { ...LOAD_HEADERS, "x-mesh-svid": "x.y.z" });
  if (badToken.status !== 401) problems.push(`mesh: a bad token got ${describe(badToken)}`);
  const { "x-tenant": _tenant, ...noTenantHeaders } = LOAD_HEADERS;
  const untenanted = await get(PORTS.mesh, REQUEST_PATH, noTenantHeaders);
  if (untenanted.status !== 403) {
    problems.push(`mesh: without x-tenant expected 403 forbidden, got ${describe(untenanted)}`);
  }
  const open = await get(PORTS["mesh-open"], REQUEST_PATH, headersFor({ open: true }));
  if (open.status !== 200 || !["echo-v1", "echo-v2"].includes(open.json?.service)) {
    problems.push(`mesh-open: expected 200 from echo-v1/v2, got ${describe(open)}`);
  } else {
    for (const name of ["x-mesh-caller", "x-forwarded-client-cert", "x-mesh-passport"]) {
      if (name in (open.json.headers ?? {})) problems.push(`mesh-open: echo saw ${name}`);
    }
  }

  // mesh-path: echo must receive the normalised path.
  const messy = await get(PORTS["mesh-path"], MESSY_REQUEST_PATH, withDebug);
  checkMesh("mesh-path", messy, "echo-canary", MESSY_NORMALISED);

  // mesh-resilient must reach echo-rs's split rule, and its retry layer must take the retry path
  // (a hop that retries marks its tries for the hops after it); the mesh lane's must not.
  const resilient = await get(PORTS["mesh-resilient"], REQUEST_PATH, withDebug);
  checkMesh("mesh-resilient", resilient, RESILIENT_TARGET, "/bench/orders");
  const marks = (r) => ({
    retry: r.json?.headers?.["x-mesh-retry"] ?? null,
    attempt: r.json?.headers?.["x-mesh-attempt"] ?? null,
  });
  if (resilient.status === 200) {
    const m = marks(resilient);
    if (m.retry !== "off" || m.attempt !== "1") {
      problems.push(
        `mesh-resilient: echo saw x-mesh-retry=${m.retry}, x-mesh-attempt=${m.attempt}, expected off and 1 (a rule that retries)`,
      );
    }
  }
  if (mesh.status === 200 && (marks(mesh).retry !== null || marks(mesh).attempt !== null)) {
    problems.push(`mesh: echo saw retry marks ${JSON.stringify(marks(mesh))}: mesh must not retry`);
  }
  const resilientCanary = await get(PORTS["mesh-resilient"], REQUEST_PATH, {
    ...LOAD_HEADERS,
    "x-canary": "always",
  });
  if (resilientCanary.json?.service !== "echo-v2") {
    problems.push(
      `mesh-resilient: x-canary: always should reach echo-v2 (as echo-rs-v2), got ${describe(resilientCanary)}`,
    );
  }

  const status = await routerStatus();
  if (status?.version !== 1) problems.push(`router status: version ${status?.version}, expected 1`);
  problems.push(...resilienceProblems(status, { afterLoad: false }));
  for (const destination of [TARGET, REGEX_TARGET, RESILIENT_TARGET]) {
    if (!status?.destinations?.[destination]) {
      problems.push(
        `router status (HTTP entry) does not list '${destination}': its config cache is not the one the Mesh entrypoint used, so the KV counters below do not cover the mesh calls`,
      );
    }
  }
  return {
    problems,
    split: sample,
    meshPath: { sent: MESSY_REQUEST_PATH, echoSaw: messy.json?.path ?? null },
    meshRegex: {
      route: regex.json?.headers?.["x-mesh-route"] ?? null,
      canary: regexCanary.json?.service ?? null,
      withoutTenant: noTenant.status,
    },
    meshResilient: {
      route: resilient.json?.headers?.["x-mesh-route"] ?? null,
      retryMarks: marks(resilient),
      canary: resilientCanary.json?.service ?? null,
      breakers: status?.breakers ?? null,
    },
  };
}

/**
 * What the router's status must show of the resilience policy: breakers only for the
 * mesh-resilient lane's backends (the routing-only lanes' echo-v1/v2 have none), closed; after
 * the load also both of them, and reports to their Durable Objects that went through.
 */
function resilienceProblems(status, { afterLoad }) {
  const problems = [];
  const when = afterLoad ? "after the load" : "after the smoke test";
  const breakers = status?.breakers ?? {};
  const backendSync = status?.backendSync;
  for (const name of Object.keys(breakers)) {
    if (!RESILIENT_BACKENDS.includes(name)) {
      problems.push(`router status ${when}: a breaker for ${name}, which has no BackendPolicy`);
    }
  }
  for (const name of afterLoad ? RESILIENT_BACKENDS : RESILIENT_BACKENDS.slice(1)) {
    // (echo-rs-v2 is called by the smoke test's x-canary request; echo-rs-v1 only by chance.)
    if (breakers[name]?.state !== "closed") {
      problems.push(
        `router status ${when}: breaker ${name} is ${JSON.stringify(breakers[name] ?? null)}, expected closed`,
      );
    }
  }
  if (afterLoad) {
    // The policy's other pieces were in play: the rate limits were checked, `auto` learned.
    if (!status?.rateLimits?.[RESILIENT_TARGET]?.total) {
      problems.push(`router status after the load: no rate limit state for ${RESILIENT_TARGET}`);
    }
    for (const name of RESILIENT_BACKENDS) {
      if (!(status?.latency?.[name]?.samples > 0)) {
        problems.push(`router status after the load: no latency samples for ${name} (auto)`);
      }
    }
  }
  if (!backendSync) problems.push(`router status ${when}: no backendSync`);
  else if (afterLoad) {
    if (!(backendSync.reports > 0)) {
      problems.push(`router status after the load: backendSync.reports ${backendSync.reports}`);
    }
    if (backendSync.lastError !== null) {
      problems.push(
        `router status after the load: backendSync.lastError ${JSON.stringify(backendSync.lastError)}`,
      );
    }
  }
  return problems;
}

/**
 * What must be true of the telemetry once mesh calls have been made (the smoke test's, and after
 * the load all of them): the router writes data points and flushes its counts (its status), and
 * they arrive (the sink's counts) — so no mesh lane runs with telemetry silently off.
 */
function telemetryProblems(status, counts, { when }) {
  const problems = [];
  const t = status?.telemetry;
  if (!t) return [`router status ${when}: no telemetry`];
  if (!t.analytics) problems.push(`router status ${when}: telemetry.analytics is false`);
  if (t.analyticsErrors !== 0) {
    problems.push(
      `router status ${when}: ${t.analyticsErrors} data points refused (${t.metrics.lastError})`,
    );
  }
  if (t.accessLogSample !== Number(TELEMETRY_VARS.ACCESS_LOG_SAMPLE)) {
    problems.push(
      `router status ${when}: access-log sample ${t.accessLogSample}, expected ${TELEMETRY_VARS.ACCESS_LOG_SAMPLE}`,
    );
  }
  if (!t.metrics.enabled)
    problems.push(`router status ${when}: telemetry.metrics.enabled is false`);
  if (!(t.metrics.flushes > 0)) problems.push(`router status ${when}: no metrics flush went out`);
  if (t.metrics.failedFlushes !== 0 || t.metrics.lastError !== null) {
    problems.push(
      `router status ${when}: ${t.metrics.failedFlushes} failed flushes (${t.metrics.lastError})`,
    );
  }
  if (!(counts?.dataPoints > 0)) problems.push(`telemetry sink ${when}: no data point arrived`);
  if (!(counts?.flushes > 0) || !(counts?.flushedCalls > 0)) {
    problems.push(
      `telemetry sink ${when}: ${counts?.flushes} flushes, ${counts?.flushedCalls} calls counted in them`,
    );
  }
  if (counts?.badFlushes !== 0) {
    problems.push(
      `telemetry sink ${when}: ${counts?.badFlushes} flushes did not parse (${counts?.lastBadFlush})`,
    );
  }
  return problems;
}

function runLoad(scenario, seconds, connections, latencyFile) {
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    const args = [LOAD, url(PORTS[scenario.name]), String(connections), String(seconds)];
    if (latencyFile) args.push(latencyFile);
    // Every lane sends its path raw and the same headers (mesh-open no token); only what is
    // behind the port differs.
    args.push("--path", scenario.requestPath, "--headers", JSON.stringify(headersFor(scenario)));
    loadChild = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    loadChild.stdout.on("data", (d) => (out += d));
    loadChild.stderr.on("data", (d) => (err += d));
    loadChild.on("error", reject);
    loadChild.on("close", (code) => {
      loadChild = undefined;
      if (code !== 0) return reject(new Error(`load generator exited with ${code}: ${err}`));
      resolve(JSON.parse(out.trim().split("\n").pop()));
    });
  });
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

/**
 * One phase: every lane for `rounds` rounds of `seconds`, in alternating order (A B C, then
 * C B A, …) so that a slow drift of the machine falls on every lane alike. Per lane, requests,
 * CPU and every latency are pooled over the rounds.
 */
async function runPhase(label, connections, seconds, rounds) {
  const acc = new Map(SCENARIOS.map((s) => [s.name, { scenario: s, rounds: [], latencies: [] }]));
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? SCENARIOS : [...SCENARIOS].reverse();
    for (const scenario of order) {
      const a = acc.get(scenario.name);
      console.log(
        `▶ ${label} ${scenario.name} (round ${round + 1}/${rounds}): ${connections} connection${connections === 1 ? "" : "s"}, ${seconds} s …`,
      );
      const isMesh = Boolean(scenario.mesh);
      const window0 = process.hrtime.bigint();
      const reading = async () => ({
        status: await routerStatus(),
        kv: await kvServed(),
        telemetry: await telemetryCounts(),
      });
      const before = isMesh ? await reading() : undefined;
      const latencyFile = join(RUN, `latencies-${label}-${scenario.name}-${round}.bin`);
      const wall0 = process.hrtime.bigint();
      const busy0 = machineBusySeconds();
      const cpu0 = workerdCpuSeconds();
      const load = await runLoad(scenario, seconds, connections, latencyFile);
      const cpu1 = workerdCpuSeconds();
      const busy1 = machineBusySeconds();
      const wallSeconds = Number(process.hrtime.bigint() - wall0) / 1e9;
      if (scenario.resilient) await sleep(REPORT_SETTLE_MS);
      const after = isMesh ? await reading() : undefined;
      // From the first counter reading to the last: the time the reports counted were made in.
      const counterWindowSeconds = Number(process.hrtime.bigint() - window0) / 1e9;
      const bytes = readFileSync(latencyFile);
      rmSync(latencyFile);
      a.latencies.push(new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8));
      const reads = (s) => s?.kvReads ?? { awaited: NaN, background: NaN };
      // Calls to the identity Worker: JWKS fetches a request waited for, background ones, and
      // passport-key certificates; and SVID signature checks (a warm caller's token is cached).
      const identity = (s, f) => {
        const id = s?.identity;
        return id ? f(id) : NaN;
      };
      const delta = (f) => identity(after.status, f) - identity(before.status, f);
      a.rounds.push({
        requests: load.requests,
        seconds: load.seconds,
        rps: load.rps,
        p50: load.latencyMs.p50,
        p99: load.latencyMs.p99,
        statusCodes: load.statusCodes,
        non2xx: load.non2xx,
        errors: load.errors + load.timeouts,
        workerdCpuSeconds: cpu1 - cpu0,
        cpuUsPerRequest: load.requests > 0 ? ((cpu1 - cpu0) * 1e6) / load.requests : null,
        loadGeneratorCpuSeconds: load.cpuSeconds,
        otherCpuSeconds: Math.max(0, busy1 - busy0 - (cpu1 - cpu0) - load.cpuSeconds),
        // Between the two readings, including the load generator's start-up (which the load's
        // own `seconds` leave out): other work is spread over all of it.
        wallSeconds,
        hotPath: isMesh
          ? {
              awaitedKvReads: reads(after.status).awaited - reads(before.status).awaited,
              backgroundKvReads: reads(after.status).background - reads(before.status).background,
              kvReadsServed: after.kv - before.kv,
              durableObjectReports:
                (after.status?.backendSync?.reports ?? NaN) -
                (before.status?.backendSync?.reports ?? NaN),
              counterWindowSeconds,
              configVersion: after.status?.version ?? null,
              identityAwaitedCalls: delta((id) => id.jwks.awaitedFetches),
              identityBackgroundCalls: delta(
                (id) => id.jwks.backgroundFetches + id.passports.certificates,
              ),
              tokenVerifications: delta((id) => id.tokens.verifications),
              // Telemetry: data points that reached the sink in the lane's phase (each is
              // delivered just after its call), and the router's metrics flushes.
              dataPoints: after.telemetry.dataPoints - before.telemetry.dataPoints,
              metricsFlushes:
                (after.status?.telemetry?.metrics?.flushes ?? NaN) -
                (before.status?.telemetry?.metrics?.flushes ?? NaN),
            }
          : undefined,
      });
    }
  }
  return SCENARIOS.map((scenario) => summarize(acc.get(scenario.name)));
}

function summarize({ scenario, rounds, latencies }) {
  const sum = (f) => rounds.reduce((total, r) => total + f(r), 0);
  const all = new Float64Array(sum((r) => r.requests));
  let offset = 0;
  for (const part of latencies) {
    all.set(part, offset);
    offset += part.length;
  }
  all.sort();
  const requests = sum((r) => r.requests);
  const seconds = sum((r) => r.seconds);
  const cpuSeconds = sum((r) => r.workerdCpuSeconds);
  const statusCodes = {};
  for (const r of rounds) {
    for (const [code, n] of Object.entries(r.statusCodes))
      statusCodes[code] = (statusCodes[code] ?? 0) + n;
  }
  const hotPath = rounds[0].hotPath
    ? {
        awaitedKvReads: sum((r) => r.hotPath.awaitedKvReads),
        backgroundKvReads: sum((r) => r.hotPath.backgroundKvReads),
        kvReadsServed: sum((r) => r.hotPath.kvReadsServed),
        durableObjectReports: sum((r) => r.hotPath.durableObjectReports),
        counterWindowSeconds: sum((r) => r.hotPath.counterWindowSeconds),
        configVersion: rounds.at(-1).hotPath.configVersion,
        identityAwaitedCalls: sum((r) => r.hotPath.identityAwaitedCalls),
        identityBackgroundCalls: sum((r) => r.hotPath.identityBackgroundCalls),
        tokenVerifications: sum((r) => r.hotPath.tokenVerifications),
        dataPoints: sum((r) => r.hotPath.dataPoints),
        metricsFlushes: sum((r) => r.hotPath.metricsFlushes),
      }
    : undefined;
  return {
    scenario: scenario.name,
    path: scenario.path,
    requestPath: scenario.requestPath,
    requests,
    seconds,
    rps: requests / seconds,
    latencyMs: {
      mean: all.length ? all.reduce((a, b) => a + b, 0) / all.length : null,
      p50: percentile(all, 50),
      p90: percentile(all, 90),
      p99: percentile(all, 99),
      max: percentile(all, 100),
    },
    statusCodes,
    non2xx: sum((r) => r.non2xx),
    errors: sum((r) => r.errors),
    workerdCpuSeconds: cpuSeconds,
    workerdCpuUtilization: cpuSeconds / seconds,
    cpuUsPerRequest: requests > 0 ? (cpuSeconds * 1e6) / requests : null,
    loadGeneratorCpuUtilization: sum((r) => r.loadGeneratorCpuSeconds) / seconds,
    // CPU that neither workerd nor the load generator used: other work skewing the figures.
    otherCpuUtilization: sum((r) => r.otherCpuSeconds) / sum((r) => r.wallSeconds),
    ...(hotPath ? { hotPath } : {}),
    rounds: rounds.map((r) => ({
      requests: r.requests,
      seconds: r.seconds,
      rps: r.rps,
      p50: r.p50,
      p99: r.p99,
      cpuUsPerRequest: r.cpuUsPerRequest,
      otherCpuUtilization: r.otherCpuSeconds / r.wallSeconds,
    })),
  };
}

// ---------------------------------------------------------------------------------------------
// Report

const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : null);
const diff = (a, b) => (Number.isFinite(a) && Number.isFinite(b) ? a - b : null);
const msToUs = (ms) => (ms === null ? null : ms * 1000);
const fixed = (n, digits = 2) =>
  n === null || n === undefined || Number.isNaN(n) ? "-" : n.toFixed(digits);
const signed = (n, digits = 1) => (n === null ? "-" : `${n >= 0 ? "+" : ""}${n.toFixed(digits)}`);

/** Prints a table: the first `left` columns left-aligned, the rest right-aligned. */
function printRows(rows, left = 1) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  for (const [i, row] of rows.entries()) {
    console.log(
      row
        .map((cell, c) => (c < left ? cell.padEnd(widths[c]) : cell.padStart(widths[c])))
        .join("  "),
    );
    if (i === 0) console.log(widths.map((w) => "─".repeat(w)).join("  "));
  }
}

function printTables(results) {
  console.log(
    `Throughput: ${CONNECTIONS} connections, ${SECONDS} s per lane in ${ROUNDS} round(s) (workerd saturated)`,
  );
  printRows([
    [
      "scenario",
      "req/s",
      "p50 ms",
      "p99 ms",
      "non-2xx",
      "errors",
      "workerd CPU µs/req",
      "(by round)",
      "workerd CPU %",
      "other CPU %",
    ],
    ...results.map((r) => [
      r.scenario,
      fixed(r.rps, 0),
      fixed(r.latencyMs.p50, 3),
      fixed(r.latencyMs.p99, 3),
      String(r.non2xx),
      String(r.errors),
      fixed(r.cpuUsPerRequest, 1),
      r.rounds.map((x) => fixed(x.cpuUsPerRequest, 0)).join(" / "),
      fixed(r.workerdCpuUtilization * 100, 0),
      fixed(r.otherCpuUtilization * 100, 0),
    ]),
  ]);
  console.log("");
  console.log(
    `Latency: 1 connection, ${LATENCY_SECONDS} s per lane in ${ROUNDS} round(s) (one request at a time)`,
  );
  printRows([
    ["scenario", "req/s", "p50 ms", "p90 ms", "p99 ms", "non-2xx", "errors"],
    ...results.map((r) => [
      r.scenario,
      fixed(r.unloaded.rps, 0),
      fixed(r.unloaded.latencyMs.p50, 3),
      fixed(r.unloaded.latencyMs.p90, 3),
      fixed(r.unloaded.latencyMs.p99, 3),
      String(r.unloaded.non2xx),
      String(r.unloaded.errors),
    ]),
  ]);
}

function versions() {
  const pkg = (name) => {
    try {
      return JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8"))
        .version;
    } catch {
      return null;
    }
  };
  let commit = null;
  try {
    commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], {
      cwd: ROOT,
      encoding: "utf8",
    }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain"], {
      cwd: ROOT,
      encoding: "utf8",
    }).trim();
    if (dirty) commit += " (with uncommitted changes)";
  } catch {
    // not a git checkout
  }
  return {
    node: process.version,
    v8: process.versions.v8,
    workerd: execFileSync(WORKERD, ["--version"], { encoding: "utf8" }).trim(),
    workerdPackage: pkg("workerd"),
    wrangler: pkg("wrangler"),
    autocannon: pkg("autocannon"),
    re2js: pkg("re2js"),
    commit,
  };
}

/** A mesh variant against the mesh lane of the same run. */
function againstMesh(lane, mesh) {
  return {
    scenario: lane.scenario,
    requestPath: lane.requestPath,
    cpuUsPerRequest: lane.cpuUsPerRequest,
    rps: lane.rps,
    unloadedP50Ms: lane.unloaded.latencyMs.p50,
    unloadedP99Ms: lane.unloaded.latencyMs.p99,
    overMesh: {
      cpuUsPerRequest: diff(lane.cpuUsPerRequest, mesh.cpuUsPerRequest),
      // Same round, adjacent in the order: the spread of these is the noise on the figure above.
      cpuUsPerRequestByRound: lane.rounds.map((r, i) =>
        diff(r.cpuUsPerRequest, mesh.rounds[i].cpuUsPerRequest),
      ),
      // CPU per request at one connection: a second, independent reading.
      unloadedCpuUsPerRequest: diff(lane.unloaded.cpuUsPerRequest, mesh.unloaded.cpuUsPerRequest),
      rpsRatio: ratio(lane.rps, mesh.rps),
      unloadedP50Us: msToUs(diff(lane.unloaded.latencyMs.p50, mesh.unloaded.latencyMs.p50)),
      unloadedP99Us: msToUs(diff(lane.unloaded.latencyMs.p99, mesh.unloaded.latencyMs.p99)),
    },
  };
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const started = Date.now();
  const loadAverageAtStart = os.loadavg();
  if (options["micro-only"]) {
    printMicro(runMicro());
    return 0;
  }
  await checkPortsFree();
  rmSync(RUN, { recursive: true, force: true });
  mkdirSync(RUN, { recursive: true });
  console.log("▶ building Workers with wrangler deploy --dry-run …");
  await buildWorkers();
  // Before workerd starts, so the timings share the machine with nothing of the bench's own.
  console.log("▶ micro: timing the hot path's pieces in this process …");
  const micro = runMicro();
  const { index, kv } = buildSnapshotWrites();
  writeFileSync(join(RUN, "snapshot.json"), JSON.stringify(kv));
  const configPath = writeBenchConfig();
  console.log(`▶ starting workerd (${relative(ROOT, configPath)}) …`);
  // --experimental: workerd's Analytics Engine binding (MESH_ANALYTICS) needs it.
  workerd = await startWorkerd(RUN, SOCKETS, { experimental: true });
  LOAD_HEADERS["x-mesh-svid"] = await benchSvid();

  const smoke = await smokeTest();
  if (smoke.split) {
    const s = smoke.split;
    console.log(
      `▶ smoke test: mesh split over ${s.requests} calls: echo-v1 ${s["echo-v1"]}, echo-v2 ${s["echo-v2"]}, failed ${s.other} (policy 90/10)`,
    );
  }
  console.log(
    `▶ smoke test: mesh-path sent ${smoke.meshPath.sent}, echo saw ${smoke.meshPath.echoSaw}; mesh-regex matched ${smoke.meshRegex.route}, x-canary → ${smoke.meshRegex.canary}, x-tenant: tenant-x → ${smoke.meshRegex.withoutTenant}`,
  );
  console.log(
    `▶ smoke test: mesh-resilient matched ${smoke.meshResilient.route}, retry marks ${JSON.stringify(smoke.meshResilient.retryMarks)}, x-canary → ${smoke.meshResilient.canary}; breakers ${JSON.stringify(Object.fromEntries(Object.entries(smoke.meshResilient.breakers ?? {}).map(([name, b]) => [name, b.state])))}`,
  );
  for (const problem of smoke.problems) console.log(`  ✗ ${problem}`);
  // The smoke test's calls through mesh-resilient are reported (the Durable Objects' first
  // calls): let that land before the micro cases read workerd's CPU time.
  await sleep(REPORT_SETTLE_MS);
  // Telemetry on, for real: the smoke test's mesh calls wrote data points and were flushed.
  const telemetryBefore = {
    status: (await routerStatus())?.telemetry,
    counts: await telemetryCounts(),
  };
  const preflight = telemetryProblems(
    { telemetry: telemetryBefore.status },
    telemetryBefore.counts,
    {
      when: "after the smoke test",
    },
  );
  console.log(
    `▶ telemetry pre-flight: ${telemetryBefore.counts.dataPoints} data points and ${telemetryBefore.counts.flushes} metrics flushes (${telemetryBefore.counts.flushedCalls} calls) reached the sink; router: analytics ${telemetryBefore.status?.analytics}, metrics ${telemetryBefore.status?.metrics?.enabled}, access-log sample ${telemetryBefore.status?.accessLogSample}`,
  );
  if (preflight.length > 0) {
    for (const problem of preflight) console.log(`  ✗ ${problem}`);
    throw new Error("telemetry is not on in the mesh lanes (above); not measuring them without it");
  }

  console.log("▶ micro on workerd: the same pieces, timed on workerd itself …");
  const microWorkerd = await runWorkerdMicro();

  console.log(`▶ warm-up: ${WARMUP_SECONDS} s per lane, ${CONNECTIONS} connections …`);
  for (const scenario of SCENARIOS) {
    await runLoad(scenario, WARMUP_SECONDS, CONNECTIONS);
  }
  // The resilient lane's last report, before any phase is measured.
  await sleep(REPORT_SETTLE_MS);

  const telemetryAtStart = { status: await routerStatus(), counts: await telemetryCounts() };
  const telemetryWindow0 = process.hrtime.bigint();
  const results = await runPhase("throughput", CONNECTIONS, SECONDS / ROUNDS, ROUNDS);
  const latency = await runPhase("latency", 1, LATENCY_SECONDS / ROUNDS, ROUNDS);
  for (const [i, r] of latency.entries()) {
    results[i].unloaded = {
      connections: 1,
      requests: r.requests,
      seconds: r.seconds,
      rps: r.rps,
      latencyMs: r.latencyMs,
      non2xx: r.non2xx,
      errors: r.errors,
      cpuUsPerRequest: r.cpuUsPerRequest,
      otherCpuUtilization: r.otherCpuUtilization,
      ...(r.hotPath ? { hotPath: r.hotPath } : {}),
      rounds: r.rounds,
    };
  }
  // The router's status once every phase has run (the resilient lane's reports have settled;
  // the last calls' metrics flush is due within a second of them).
  await sleep(REPORT_SETTLE_MS);
  const statusAfterLoad = await routerStatus();
  const telemetryAtEnd = { status: statusAfterLoad, counts: await telemetryCounts() };
  const telemetryWindowSeconds = Number(process.hrtime.bigint() - telemetryWindow0) / 1e9;
  const by = Object.fromEntries(results.map((r) => [r.scenario, r]));
  const ratios = {};
  for (const name of ["mesh", "hop"]) {
    ratios[`${name}/direct`] = {
      rps: ratio(by[name].rps, by.direct.rps),
      p50: ratio(by[name].latencyMs.p50, by.direct.latencyMs.p50),
      p99: ratio(by[name].latencyMs.p99, by.direct.latencyMs.p99),
      cpuPerRequest: ratio(by[name].cpuUsPerRequest, by.direct.cpuUsPerRequest),
      unloadedP50: ratio(by[name].unloaded.latencyMs.p50, by.direct.unloaded.latencyMs.p50),
      unloadedP99: ratio(by[name].unloaded.latencyMs.p99, by.direct.unloaded.latencyMs.p99),
    };
  }
  const mesh = by.mesh;
  const meshLanes = results.filter((r) => r.hotPath);
  // A mesh lane's counters over both of its phases (throughput and one connection).
  const phases = (r, key) => r.hotPath[key] + r.unloaded.hotPath[key];
  const total = (f) => meshLanes.reduce((t, r) => t + f(r), 0);
  const meshRequests = total((r) => r.requests + r.unloaded.requests);
  const durableObjectsByLane = Object.fromEntries(
    meshLanes.map((r) => {
      const reports = phases(r, "durableObjectReports");
      // Lane time: between the counter readings around each of its phases (its load, the load
      // generator's start-up and, for a lane that reports, the settle after it).
      const seconds = phases(r, "counterWindowSeconds");
      const loadSeconds = r.seconds + r.unloaded.seconds;
      return [r.scenario, { reports, seconds, loadSeconds, perSecond: reports / seconds }];
    }),
  );
  const hotPath = {
    lanes: meshLanes.map((r) => r.scenario),
    phases: "throughput and one connection",
    awaitedKvReadsPerRequest: meshRequests
      ? total((r) => phases(r, "awaitedKvReads")) / meshRequests
      : null,
    awaitedKvReads: total((r) => phases(r, "awaitedKvReads")),
    backgroundKvReads: total((r) => phases(r, "backgroundKvReads")),
    kvReadsServed: total((r) => phases(r, "kvReadsServed")),
    // The router calls its Durable Objects only from waitUntil (batched reports): none is
    // awaited by a request. The reports it made in the mesh phases, from its own counter
    // (backendSync.reports, one per backend per report), by lane over the lane's time:
    durableObjectReports: total((r) => phases(r, "durableObjectReports")),
    durableObjectsByLane,
    // The identity Worker: calls a request waited for (0 once warm), background ones (a JWKS
    // refresh after its max-age, a certificate renewal), and SVID signature checks (0 once the
    // bench caller's token is cached).
    identityAwaitedCalls: total((r) => phases(r, "identityAwaitedCalls")),
    identityBackgroundCalls: total((r) => phases(r, "identityBackgroundCalls")),
    tokenVerifications: total((r) => phases(r, "tokenVerifications")),
    // Telemetry: data points that reached the sink during each mesh lane's phases, per request
    // of the lane (1 each), and the router's metrics flushes in those phases.
    dataPoints: total((r) => phases(r, "dataPoints")),
    dataPointsPerRequest: meshRequests
      ? total((r) => phases(r, "dataPoints")) / meshRequests
      : null,
    dataPointsByLane: Object.fromEntries(
      meshLanes.map((r) => [
        r.scenario,
        phases(r, "dataPoints") / (r.requests + r.unloaded.requests),
      ]),
    ),
    metricsFlushes: total((r) => phases(r, "metricsFlushes")),
    durableObjects:
      "reports go out through waitUntil; that no request waits for one is what test/backend-state.test.ts shows (a hanging object delays no response)",
  };
  const addedLatencyUs = {};
  for (const name of ["mesh", "hop"]) {
    addedLatencyUs[`${name}-direct`] = {
      p50: (by[name].unloaded.latencyMs.p50 - by.direct.unloaded.latencyMs.p50) * 1000,
      p99: (by[name].unloaded.latencyMs.p99 - by.direct.unloaded.latencyMs.p99) * 1000,
    };
  }
  const routerCpu = {
    usPerRequestOverDirect: mesh.cpuUsPerRequest - by.direct.cpuUsPerRequest,
    usPerRequestOverHop: mesh.cpuUsPerRequest - by.hop.cpuUsPerRequest,
    hopUsPerRequestOverDirect: by.hop.cpuUsPerRequest - by.direct.cpuUsPerRequest,
  };
  const meshVariants = {
    "mesh-open": againstMesh(by["mesh-open"], mesh),
    "mesh-resilient": againstMesh(by["mesh-resilient"], mesh),
    "mesh-regex": againstMesh(by["mesh-regex"], mesh),
    "mesh-path": againstMesh(by["mesh-path"], mesh),
  };
  const overMesh = {
    regexCpuUsPerRequest: meshVariants["mesh-regex"].overMesh.cpuUsPerRequest,
    pathNormalisationSlowPathCpuUsPerRequest: meshVariants["mesh-path"].overMesh.cpuUsPerRequest,
    resilienceCpuUsPerRequest: meshVariants["mesh-resilient"].overMesh.cpuUsPerRequest,
    resilienceBudgetUs: RESILIENCE_BUDGET_US,
    // mesh − mesh-open: what identity and authorization add (mesh-open has them off).
    identityCpuUsPerRequest: -meshVariants["mesh-open"].overMesh.cpuUsPerRequest,
    identityBudgetUs: IDENTITY_BUDGET_US,
    note:
      "µs of workerd CPU per request over the mesh lane in the same run; a few µs are below this " +
      "bench's noise (compare the by-round figures), so read them with micro, which times the " +
      "same work in V8 directly",
  };

  // The resilience policy under load: the lane's reports to the backends' Durable Objects, and
  // what the router's status shows once they have settled.
  const resilienceReports = durableObjectsByLane["mesh-resilient"];
  const resilience = {
    lane: "mesh-resilient",
    target: RESILIENT_TARGET,
    backends: RESILIENT_BACKENDS,
    retry: RETRY,
    circuitBreaker: CIRCUIT_BREAKER,
    budgetUs: RESILIENCE_BUDGET_US,
    cpuUsPerRequestOverMesh: overMesh.resilienceCpuUsPerRequest,
    cpuUsPerRequestOverMeshByRound: meshVariants["mesh-resilient"].overMesh.cpuUsPerRequestByRound,
    unloadedCpuUsPerRequestOverMesh:
      meshVariants["mesh-resilient"].overMesh.unloadedCpuUsPerRequest,
    microWorkerdBookkeepingUs: microWorkerd.summary.resilienceBookkeepingNs / 1000,
    microWorkerdRetryLayerSpecOverNoneUs: microWorkerd.summary.retryLayerSpecOverNoneNs / 1000,
    durableObjectReports: resilienceReports.reports,
    laneSeconds: resilienceReports.seconds,
    loadSeconds: resilienceReports.loadSeconds,
    durableObjectReportsPerSecond: resilienceReports.perSecond,
    // One report per backend with news, at most once a second per isolate.
    // One object per Service with news: the two backends (breaker, budget, latency) and echo-rs
    // (rate-limit demand).
    durableObjectReportsPerSecondBound: REPORTING_SERVICES.length * (1000 / FLUSH_INTERVAL_MS),
    statusAfterLoad: {
      breakers: statusAfterLoad?.breakers ?? null,
      backendSync: statusAfterLoad?.backendSync ?? null,
    },
    problems: resilienceProblems(statusAfterLoad, { afterLoad: true }),
  };

  // Identity and authorization: the mesh lane (token verified — once, then cached — props and
  // token agreeing, the several-rule policy, XFCC, a shared passport) against mesh-open (none).
  const identity = {
    lane: "mesh",
    offLane: "mesh-open",
    policies: IDENTITY_POLICY.filter(
      (r) => r.kind === "AuthorizationPolicy" && r.spec.targetRefs === guarded,
    ).map((r) => `${r.metadata.name} (${r.spec.action ?? "ALLOW"})`),
    budgetUs: IDENTITY_BUDGET_US,
    cpuUsPerRequestOverOpen: overMesh.identityCpuUsPerRequest,
    cpuUsPerRequestOverOpenByRound: meshVariants["mesh-open"].overMesh.cpuUsPerRequestByRound.map(
      (x) => -x,
    ),
    unloadedCpuUsPerRequestOverOpen: -meshVariants["mesh-open"].overMesh.unloadedCpuUsPerRequest,
    microWorkerdPiecesUs: microWorkerd.summary.identityPiecesNs / 1000,
    microWorkerdPipelineOverOpenUs: microWorkerd.summary.pipelineMeshOverOpenNs / 1000,
    identityAwaitedCalls: hotPath.identityAwaitedCalls,
    identityBackgroundCalls: hotPath.identityBackgroundCalls,
    tokenVerifications: hotPath.tokenVerifications,
    statusAfterLoad: statusAfterLoad?.identity ?? null,
  };

  // Telemetry (issue 9): on in every mesh lane. Over the measured phases (from before the first
  // to a settle after the last): data points and flushed calls against the mesh calls made, and
  // the flushes against the time; the micro's A/B is what it adds per call.
  const delta = (f) => f(telemetryAtEnd) - f(telemetryAtStart);
  const flushes = delta((t) => t.status?.telemetry?.metrics?.flushes ?? NaN);
  const telemetry = {
    lanes: meshLanes.map((r) => r.scenario),
    vars: TELEMETRY_VARS,
    bindings: {
      MESH_ANALYTICS: `workerd's analyticsEngine binding (serve --experimental) → ${TELEMETRY_SINK} (bench/workers/telemetry-sink.ts), one HTTP request per data point, answered 204`,
      POLICY: `${TELEMETRY_SINK}'s RouterReports entrypoint: report and metrics answer { ok: true }; metrics checks each flush with the policy Worker's parser`,
    },
    budgetUs: TELEMETRY_BUDGET_US,
    preflight: { status: telemetryBefore.status, sink: telemetryBefore.counts },
    underLoad: {
      seconds: telemetryWindowSeconds,
      meshRequests,
      dataPoints: delta((t) => t.counts.dataPoints),
      dataPointsPerRequest: delta((t) => t.counts.dataPoints) / meshRequests,
      dataPointBytes: delta((t) => t.counts.dataPointBytes),
      flushes,
      flushesPerSecond: flushes / telemetryWindowSeconds,
      flushesReceived: delta((t) => t.counts.flushes),
      flushedCalls: delta((t) => t.counts.flushedCalls),
      flushedCallsPerRequest: delta((t) => t.counts.flushedCalls) / meshRequests,
      failedFlushes: delta((t) => t.status?.telemetry?.metrics?.failedFlushes ?? NaN),
      analyticsErrors: delta((t) => t.status?.telemetry?.analyticsErrors ?? NaN),
      versionReports: delta((t) => t.counts.versionReports),
    },
    microWorkerdOnOverOffUs: microWorkerd.summary.telemetryOnOverOffNs / 1000,
    microWorkerdStubOverOffUs: microWorkerd.summary.telemetryStubOverOffNs / 1000,
    microWorkerdDeliveryPerPointUs: microWorkerd.summary.telemetryOnOverStubNs / 1000,
    statusAfterLoad: statusAfterLoad?.telemetry ?? null,
    sinkAfterLoad: telemetryAtEnd.counts,
    problems: telemetryProblems(statusAfterLoad, telemetryAtEnd.counts, { when: "after the load" }),
  };
  const u = telemetry.underLoad;
  // Every mesh call was counted: a data point each, and in a flush (the HTTP entry's
  // /.mesh/status reads are not mesh calls). The load generator does not count the calls in
  // flight when a phase stops (up to one per connection), which workerd still serves.
  const inFlight = meshLanes.length * ROUNDS * (CONNECTIONS + 1);
  u.uncountedCallsBound = inFlight;
  for (const [what, n] of [
    ["data points", u.dataPoints],
    ["flushed calls", u.flushedCalls],
  ]) {
    if (!(n >= meshRequests && n <= meshRequests + inFlight)) {
      telemetry.problems.push(
        `under load: ${meshRequests} mesh calls (+ at most ${inFlight} in flight at the phases' ends), but ${n} ${what} reached the sink`,
      );
    }
  }
  if (u.failedFlushes !== 0 || u.analyticsErrors !== 0) {
    telemetry.problems.push(
      `under load: ${u.failedFlushes} failed flushes, ${u.analyticsErrors} refused data points`,
    );
  }

  const noisy = results.filter(
    (r) => r.otherCpuUtilization > NOISY_CPU || r.unloaded.otherCpuUtilization > NOISY_CPU,
  );
  const report = {
    date: new Date().toISOString(),
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? null,
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      platform: `${os.type()} ${os.release()} ${os.arch()}`,
      clockTicksPerSecond: CLK_TCK,
      // 1, 5 and 15 minute load averages: other work on the machine skews every figure.
      loadAverageAtStart,
      loadAverageAtEnd: os.loadavg(),
    },
    versions: versions(),
    method: {
      runtime:
        "one `workerd serve` process, generated capnp config (scripts/workerd.mjs), compatibility date " +
        COMPATIBILITY_DATE,
      loadGenerator:
        "autocannon in a separate Node process (bench/load.mjs), HTTP/1.1 keep-alive, loopback",
      connections: CONNECTIONS,
      warmupSeconds: WARMUP_SECONDS,
      rounds: ROUNDS,
      order: `rounds alternate the lane order (${SCENARIOS.map((s) => s.name).join(", ")}; then the reverse)`,
      throughputPhase: { connections: CONNECTIONS, seconds: SECONDS },
      latencyPhase: { connections: 1, seconds: LATENCY_SECONDS },
      requestPath: REQUEST_PATH,
      requestPaths: Object.fromEntries(SCENARIOS.map((s) => [s.name, s.requestPath])),
      requestHeaders: LOAD_HEADERS,
      ports: PORTS,
      cpu: "workerd utime+stime from /proc/<pid>/stat over each measured phase, divided by requests",
      configVersion: index.version,
    },
    policy: POLICY,
    smokeTest: smoke,
    scenarios: results,
    ratios,
    addedLatencyUs,
    routerCpu,
    meshVariants,
    overMesh,
    resilience,
    identity,
    telemetry,
    micro,
    microWorkerd,
    hotPath,
    noise: {
      otherCpuThreshold: NOISY_CPU,
      noisyScenarios: noisy.map((r) => r.scenario),
    },
    durationSeconds: Math.round((Date.now() - started) / 1000),
  };
  writeFileSync(RESULTS, `${JSON.stringify(report, null, 2)}\n`);

  console.log("");
  console.log(
    `Meshwork bench — ${report.date} — ${report.machine.cpus} × ${report.machine.cpuModel}, node ${report.versions.node}, ${report.versions.workerd}`,
  );
  console.log(
    `GET ${REQUEST_PATH} (mesh-path: ${MESSY_REQUEST_PATH}) with ${JSON.stringify(LOAD_HEADERS)}, after ${WARMUP_SECONDS} s warm-up per lane`,
  );
  console.log("");
  printTables(results);
  console.log("");
  for (const [name, r] of Object.entries(ratios)) {
    console.log(
      `${name.padEnd(12)} loaded: req/s ×${fixed(r.rps)}  p50 ×${fixed(r.p50)}  p99 ×${fixed(r.p99)}  CPU/req ×${fixed(r.cpuPerRequest)}   1 connection: p50 ×${fixed(r.unloadedP50)}  p99 ×${fixed(r.unloadedP99)}`,
    );
  }
  for (const [name, us] of Object.entries(addedLatencyUs)) {
    console.log(
      `${name.padEnd(12)} added latency at 1 connection: p50 ${fixed(us.p50, 0)} µs, p99 ${fixed(us.p99, 0)} µs`,
    );
  }
  console.log(
    `router CPU/req ≈ ${fixed(routerCpu.usPerRequestOverDirect, 1)} µs over direct (${fixed(routerCpu.usPerRequestOverHop, 1)} µs over an empty hop; the hop itself costs ${fixed(routerCpu.hopUsPerRequestOverDirect, 1)} µs)`,
  );
  console.log("");
  console.log("Against the mesh lane (same run):");
  printRows([
    [
      "lane",
      "CPU µs/req",
      "− mesh",
      "(by round)",
      "1-conn. CPU − mesh",
      "req/s",
      "× mesh",
      "1-conn. p50 ms",
      "− mesh µs",
      "1-conn. p99 ms",
      "− mesh µs",
    ],
    ...Object.entries(meshVariants).map(([name, v]) => [
      name,
      fixed(v.cpuUsPerRequest, 1),
      signed(v.overMesh.cpuUsPerRequest),
      v.overMesh.cpuUsPerRequestByRound.map((x) => signed(x, 0)).join(" / "),
      signed(v.overMesh.unloadedCpuUsPerRequest),
      fixed(v.rps, 0),
      fixed(v.overMesh.rpsRatio),
      fixed(v.unloadedP50Ms, 3),
      signed(v.overMesh.unloadedP50Us, 0),
      fixed(v.unloadedP99Ms, 3),
      signed(v.overMesh.unloadedP99Us, 0),
    ]),
  ]);
  console.log(
    `regex CPU/req (mesh-regex − mesh) ≈ ${signed(overMesh.regexCpuUsPerRequest)} µs; path normalisation slow path (mesh-path − mesh) ≈ ${signed(overMesh.pathNormalisationSlowPathCpuUsPerRequest)} µs (workerd CPU, within this bench's noise; see micro)`,
  );
  console.log(
    `resilience CPU/req (mesh-resilient − mesh) ≈ ${signed(resilience.cpuUsPerRequestOverMesh)} µs (by round ${resilience.cpuUsPerRequestOverMeshByRound.map((x) => signed(x, 0)).join(" / ")}; at 1 connection ${signed(resilience.unloadedCpuUsPerRequestOverMesh)}) against a budget of ${RESILIENCE_BUDGET_US} µs: ${resilience.cpuUsPerRequestOverMesh <= RESILIENCE_BUDGET_US ? "within" : "over"} it, but lane differences of this size are within this bench's noise; the micro on workerd below times the policy's bookkeeping: ${fixed(resilience.microWorkerdBookkeepingUs, 2)} µs per call`,
  );
  console.log(
    `mesh-resilient: Durable Object reports ${resilience.durableObjectReports} in ${fixed(resilience.laneSeconds, 1)} s of lane time (${fixed(resilience.loadSeconds, 1)} s of load, plus start-up and a ${fixed(REPORT_SETTLE_MS / 1000, 1)} s settle after each phase so its last report counts) = ${fixed(resilience.durableObjectReportsPerSecond, 2)}/s (at most ${resilience.durableObjectReportsPerSecondBound}/s: each of ${REPORTING_SERVICES.join(", ")} once a second), sent through waitUntil, awaited by no request; status after the load: ${RESILIENT_BACKENDS.map((b) => `${b} ${resilience.statusAfterLoad.breakers?.[b]?.state ?? "absent"}`).join(", ")}, backendSync.reports ${resilience.statusAfterLoad.backendSync?.reports}, lastError ${JSON.stringify(resilience.statusAfterLoad.backendSync?.lastError ?? null)}`,
  );
  for (const problem of resilience.problems) console.log(`  ✗ ${problem}`);
  console.log(
    `identity CPU/req (mesh − mesh-open: token, authorization by ${identity.policies.length} policies, XFCC, passport) ≈ ${signed(identity.cpuUsPerRequestOverOpen)} µs (by round ${identity.cpuUsPerRequestOverOpenByRound.map((x) => signed(x, 0)).join(" / ")}; at 1 connection ${signed(identity.unloadedCpuUsPerRequestOverOpen)}) against a budget of ${IDENTITY_BUDGET_US} µs (within the lanes' noise; the micro on workerd below times it: ${fixed(identity.microWorkerdPiecesUs, 2)} µs of pieces, ${signed(identity.microWorkerdPipelineOverOpenUs, 2)} µs whole call); calls to the identity Worker during the load: ${identity.identityAwaitedCalls} awaited, ${identity.identityBackgroundCalls} in the background; SVID signature checks ${identity.tokenVerifications}`,
  );
  console.log(
    `telemetry (on in ${telemetry.lanes.join(", ")}; ACCESS_LOG_SAMPLE ${TELEMETRY_VARS.ACCESS_LOG_SAMPLE}, METRICS_FLUSH ${TELEMETRY_VARS.METRICS_FLUSH}): ${u.dataPoints} data points reached the sink for ${u.meshRequests} mesh calls (${fixed(u.dataPointsPerRequest, 4)} per call; by lane ${Object.entries(
      hotPath.dataPointsByLane,
    )
      .map(([lane, x]) => `${lane} ${fixed(x, 3)}`)
      .join(
        ", ",
      )}); ${u.flushes} metrics flushes in ${fixed(u.seconds, 1)} s (${fixed(u.flushesPerSecond, 2)}/s, at most 1/s), carrying ${u.flushedCalls} calls; ${u.failedFlushes} failed, ${u.analyticsErrors} refused points; what it adds per call, micro on workerd: ${signed(telemetry.microWorkerdStubOverOffUs, 2)} µs of the router's own work (budget ${TELEMETRY_BUDGET_US} µs), ${signed(telemetry.microWorkerdOnOverOffUs, 2)} µs with workerd's local Analytics Engine delivery`,
  );
  for (const problem of telemetry.problems) console.log(`  ✗ ${problem}`);
  console.log(
    `hot path (${hotPath.lanes.join(", ")}: ${hotPath.phases} phases): awaited KV reads ${hotPath.awaitedKvReads} (${fixed(hotPath.awaitedKvReadsPerRequest, 6)}/req), background KV reads ${hotPath.backgroundKvReads}, KV reads served ${hotPath.kvReadsServed}; Durable Object reports ${hotPath.durableObjectReports} (by lane: ${Object.entries(
      hotPath.durableObjectsByLane,
    )
      .map(([lane, d]) => `${lane} ${d.reports}`)
      .join(", ")}; ${hotPath.durableObjects})`,
  );
  console.log("");
  printMicro(micro);
  console.log("");
  printWorkerdMicro(microWorkerd);
  if (noisy.length > 0) {
    console.log(
      `⚠ other processes used ${noisy.map((r) => `${fixed(Math.max(r.otherCpuUtilization, r.unloaded.otherCpuUtilization) * 100, 0)}% CPU during ${r.scenario}`).join(", ")}: those figures are skewed; rerun on a quieter machine`,
    );
  }
  const failures = results.filter(
    (r) => r.non2xx + r.errors + r.unloaded.non2xx + r.unloaded.errors > 0,
  );
  for (const r of failures) {
    console.log(
      `✗ ${r.scenario}: ${r.non2xx + r.unloaded.non2xx} non-2xx, ${r.errors + r.unloaded.errors} errors/timeouts (loaded status codes ${JSON.stringify(r.statusCodes)})`,
    );
  }
  if (smoke.problems.length > 0)
    console.log(`✗ smoke test: ${smoke.problems.length} problem(s) above`);
  if (resilience.problems.length > 0)
    console.log(
      `✗ resilience check after the load: ${resilience.problems.length} problem(s) above`,
    );
  if (telemetry.problems.length > 0)
    console.log(`✗ telemetry check after the load: ${telemetry.problems.length} problem(s) above`);
  console.log(
    `\nwrote ${relative(ROOT, RESULTS)} (workerd log: ${relative(ROOT, workerd.logPath)}) in ${report.durationSeconds} s`,
  );
  return smoke.problems.length === 0 &&
    resilience.problems.length === 0 &&
    telemetry.problems.length === 0 &&
    failures.length === 0
    ? 0
    : 1;
}

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    killChildren();
    process.exit(130);
  });
}
process.on("exit", killChildren);

main()
  .then(
    (code) => {
      process.exitCode = code;
    },
    (error) => {
      console.error(`✗ bench failed: ${error.stack ?? error}`);
      if (workerd) console.error(`workerd log (last lines):\n${tail(workerd.logPath)}`);
      process.exitCode = 1;
    },
  )
  .finally(async () => {
    agent.destroy();
    if (loadChild && loadChild.exitCode === null) loadChild.kill("SIGTERM");
    if (workerd) await workerd.stop();
  });
