// `npm run bench`: the mesh's overhead, measured on the real Workers.
//
//  1. Builds the router, echo-v1, echo-v2 and the bench-only Workers (bench/workers/) with
//     `wrangler deploy --dry-run`, exactly as they would be deployed.
//  2. Builds a config snapshot from a realistic policy with the repo's own core (validate, then
//     buildSnapshot) and serves it to the router's MESH_CONFIG through workerd's real
//     kvNamespace binding (bench/workers/kv.ts answers the KV protocol).
//  3. Runs everything in one `workerd serve` with a generated capnp config — workerd directly,
//     not `wrangler dev`, whose proxy caps throughput — and exposes one loopback socket per
//     scenario. The same client Worker calls `env.ECHO.fetch(request)` in each:
//       direct  client → echo-v1                       (a plain service binding)
//       hop     client → empty hop Worker → echo-v1    (the floor for any extra Worker hop)
//       mesh    client → router (entrypoint Mesh, props {caller, target}) → echo-v1 | echo-v2
//  4. Drives load from a separate process (bench/load.mjs, autocannon): a warm-up, then a
//     throughput phase per scenario (several connections, workerd saturated; its CPU time is
//     read from /proc before and after), then a latency phase per scenario with one connection,
//     where the latency is the hop's own cost rather than queueing behind other requests.
//  5. Prints a table, writes bench/results.json, and stops workerd.
//
// Options (`npm run bench -- --seconds 20`): --seconds N (throughput phase per scenario,
// default 10), --latency-seconds N (default 4), --rounds N (each phase split into N rounds of
// alternating scenario order, default 2), --warmup N (default 3), --connections N (default 16),
// --port-base N (default 19081; uses N..N+4).
import { execFileSync, spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { connect } from "node:net";
import os from "node:os";
import { dirname, join, relative } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { buildSnapshot } from "../core/config/snapshot.ts";
import { validateResources } from "../core/config/validate.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const BUILD = join(ROOT, "bench", ".build");
const RUN = join(ROOT, "bench", ".run");
const WORKERD = join(ROOT, "node_modules", "workerd", "bin", "workerd");
const LOAD = join(ROOT, "bench", "load.mjs");
const RESULTS = join(ROOT, "bench", "results.json");
const COMPATIBILITY_DATE = "2026-11-01";

const { values: options } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    "latency-seconds": { type: "string", default: "4" },
    rounds: { type: "string", default: "2" },
    warmup: { type: "string", default: "3" },
    connections: { type: "string", default: "16" },
    "port-base": { type: "string", default: "19081" },
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
};
const SCENARIOS = [
  { name: "direct", path: "client → echo-v1 (service binding)" },
  { name: "hop", path: "client → hop Worker → echo-v1" },
  { name: "mesh", path: "client → router (Mesh entrypoint) → echo-v1/v2" },
];
const REQUEST_PATH = "/bench/orders?id=42";
const CALLER = "bench";
/** Other processes' CPU (in cores) during a phase above which the run is flagged as noisy. */
const NOISY_CPU = 0.15;
const TARGET = "echo";

const childEnv = { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" };
delete childEnv.FORCE_COLOR;
let workerd;
let loadChild;

// ---------------------------------------------------------------------------------------------
// The policy: what a team running echo with a canary would configure.

const POLICY = [
  service("echo-v1", "ECHO_V1"),
  service("echo-v2", "ECHO_V2"),
  // `echo` fronts the versions; its own endpoint is used only when no route matches.
  service("echo", "ECHO_V1"),
  {
    apiVersion: "gateway.networking.k8s.io/v1",
    kind: "HTTPRoute",
    metadata: { name: "echo-canary" },
    spec: {
      parentRefs: [{ name: "echo" }],
      rules: [
        {
          name: "canary-testers",
          matches: [{ headers: [{ name: "x-canary", value: "always" }] }],
          backendRefs: [{ name: "echo-v2" }],
          timeouts: { request: "10s", backendRequest: "5s" },
        },
        {
          name: "split",
          matches: [{ path: { type: "PathPrefix", value: "/" } }],
          filters: [
            {
              type: "RequestHeaderModifier",
              requestHeaderModifier: {
                set: [{ name: "x-mesh-route", value: "echo-canary/split" }],
                add: [{ name: "x-tenant", value: "bench" }],
                remove: ["x-debug"],
              },
            },
          ],
          backendRefs: [
            { name: "echo-v1", weight: 90 },
            { name: "echo-v2", weight: 10 },
          ],
          timeouts: { request: "10s", backendRequest: "5s" },
        },
      ],
    },
  },
];

function service(name, binding) {
  return {
    apiVersion: "meshwork.dev/v1",
    kind: "Service",
    metadata: { name },
    spec: { endpoints: [{ binding }] },
  };
}

function buildSnapshotWrites() {
  const validated = validateResources(POLICY);
  if (!validated.ok) {
    throw new Error(`the bench policy does not validate: ${JSON.stringify(validated.issues)}`);
  }
  const { index, writes } = buildSnapshot(validated.value, 1, new Date());
  return { index, kv: Object.fromEntries(writes.map((w) => [w.key, w.value])) };
}

// ---------------------------------------------------------------------------------------------
// Build

// `main`: the bundle wrangler writes, named after the config's entry module.
const WORKERS = [
  { name: "router", config: "wrangler.toml", main: "index.js" },
  { name: "echo-v1", config: "examples/echo/wrangler.v1.toml", main: "index.js" },
  { name: "echo-v2", config: "examples/echo/wrangler.v2.toml", main: "index.js" },
  { name: "bench-client", config: "bench/workers/client.toml", main: "client.js" },
  { name: "bench-hop", config: "bench/workers/hop.toml", main: "hop.js" },
  { name: "bench-kv", config: "bench/workers/kv.toml", main: "snapshot-kv.js" },
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

/** The modules of a built Worker, main module first, as capnp Module entries. */
function modulesOf(name) {
  const dir = join(BUILD, name);
  const main = WORKERS.find((w) => w.name === name).main;
  const files = readdirSync(dir).filter((f) => /\.(m?js)$/.test(f));
  files.sort((a, b) => (a === main ? -1 : b === main ? 1 : a.localeCompare(b)));
  const other = readdirSync(dir).filter(
    (f) => !files.includes(f) && !f.endsWith(".map") && f !== "README.md",
  );
  if (other.length > 0) throw new Error(`${name}: unsupported build output ${other.join(", ")}`);
  return files
    .map((f) => `(name = ${str(f)}, esModule = embed ${str(relative(RUN, join(dir, f)))})`)
    .join(", ");
}

// ---------------------------------------------------------------------------------------------
// workerd config

/** A capnp text literal (the JSON escapes used here are valid capnp escapes). */
const str = (text) => JSON.stringify(text);

/** A workerd service running the Worker built as `build` (default: the service's name). */
function worker(name, bindings, build = name) {
  return `(name = ${str(name)}, worker = (
    modules = [${modulesOf(build)}],
    compatibilityDate = ${str(COMPATIBILITY_DATE)},
    bindings = [${bindings.join(", ")}],
  ))`;
}

const text = (name, value) => `(name = ${str(name)}, text = ${str(value)})`;
const bind = (name, target) => `(name = ${str(name)}, service = ${target})`;

function writeWorkerdConfig() {
  const meshProps = JSON.stringify({ caller: CALLER, target: TARGET });
  const echo = (v) =>
    worker(`echo-v${v}`, [text("SERVICE_NAME", `echo-v${v}`), text("VERSION", `v${v}`)]);
  const client = (name, target) => worker(name, [bind("ECHO", target)], "bench-client");
  const services = [
    worker("router", [
      `(name = "MESH_CONFIG", kvNamespace = "bench-kv")`,
      bind("ECHO_V1", str("echo-v1")),
      bind("ECHO_V2", str("echo-v2")),
      text("TRUST_DOMAIN", "meshwork.local"),
      text("CONFIG_REFRESH_SECONDS", "5"),
    ]),
    echo(1),
    echo(2),
    worker("bench-hop", [bind("ECHO", str("echo-v1"))]),
    worker("bench-kv", [`(name = "SNAPSHOT", json = embed "snapshot.json")`]),
    client("client-direct", str("echo-v1")),
    client("client-hop", str("bench-hop")),
    client(
      "client-mesh",
      `(name = "router", entrypoint = "Mesh", props = (json = ${str(meshProps)}))`,
    ),
  ];
  const socket = (name, port, target) =>
    `(name = ${str(name)}, address = ${str(`127.0.0.1:${port}`)}, http = (), service = ${str(target)})`;
  const sockets = [
    socket("direct", PORTS.direct, "client-direct"),
    socket("hop", PORTS.hop, "client-hop"),
    socket("mesh", PORTS.mesh, "client-mesh"),
    socket("router", PORTS.router, "router"),
    socket("kv", PORTS.kv, "bench-kv"),
  ];
  const capnp = `# Generated by bench/run.mjs; do not edit.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    ${services.join(",\n    ")},
  ],
  sockets = [
    ${sockets.join(",\n    ")},
  ],
);
`;
  const path = join(RUN, "meshwork-bench.capnp");
  writeFileSync(path, capnp);
  return path;
}

// ---------------------------------------------------------------------------------------------
// workerd process

/** Whether something already listens on 127.0.0.1:`port` (a leftover workerd, say). */
function listening(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

async function startWorkerd(configPath) {
  for (const [name, port] of Object.entries(PORTS)) {
    if (await listening(port)) {
      throw new Error(
        `port ${port} (${name}) is already in use; stop what listens there or pass --port-base`,
      );
    }
  }
  const logPath = join(RUN, "workerd.log");
  const log = openSync(logPath, "w");
  workerd = spawn(WORKERD, ["serve", configPath, "config"], {
    cwd: RUN,
    stdio: ["ignore", log, log],
  });
  let exited = null;
  workerd.on("exit", (code, signal) => (exited = { code, signal }));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) {
      throw new Error(
        `workerd exited (${JSON.stringify(exited)}) before listening:\n${tail(logPath)}`,
      );
    }
    try {
      const checks = await Promise.all(
        Object.values(PORTS).map((port) =>
          fetch(`http://127.0.0.1:${port}/.bench/ready`).then((r) => r.arrayBuffer()),
        ),
      );
      if (checks.length && !exited) return logPath;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline)
      throw new Error(`workerd did not listen within 30 s:\n${tail(logPath)}`);
    await sleep(100);
  }
}

function tail(path, lines = 30) {
  try {
    return readFileSync(path, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

function stopWorkerd() {
  if (loadChild && loadChild.exitCode === null) loadChild.kill("SIGTERM");
  if (workerd && workerd.exitCode === null && workerd.signalCode === null) {
    workerd.kill("SIGTERM");
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

async function getJson(target, init) {
  const response = await fetch(target, init);
  const body = await response.text();
  let json;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, body, json };
}

const routerStatus = async () => (await getJson(url(PORTS.router, "/.mesh/status"))).json;
const kvServed = async () => (await getJson(url(PORTS.kv, "/.bench/reads"))).json.reads;

/** One request per scenario before any load: each path must work, and the mesh must route. */
async function smokeTest() {
  const problems = [];
  const describe = (r) =>
    `${r.status}${r.headers.get("x-mesh-error") ? ` (X-Mesh-Error: ${r.headers.get("x-mesh-error")})` : ""}: ${r.body.slice(0, 500)}`;
  for (const name of ["direct", "hop"]) {
    const r = await getJson(url(PORTS[name]));
    if (r.status !== 200 || r.json?.service !== "echo-v1") {
      problems.push(`${name}: expected 200 from echo-v1, got ${describe(r)}`);
    }
  }
  const mesh = await getJson(url(PORTS.mesh), { headers: { "x-debug": "1" } });
  let sample;
  if (mesh.status !== 200) {
    problems.push(`mesh: expected 200, got ${describe(mesh)}`);
  } else {
    const h = mesh.json?.headers ?? {};
    const expect = {
      "x-mesh-caller": `spiffe://meshwork.local/${CALLER}`,
      "x-mesh-route": "echo-canary/split",
      "x-tenant": "bench",
    };
    for (const [name, value] of Object.entries(expect)) {
      if (h[name] !== value) problems.push(`mesh: echo saw ${name}=${h[name]}, expected ${value}`);
    }
    for (const name of ["x-request-id", "traceparent"]) {
      if (!h[name]) problems.push(`mesh: echo saw no ${name} header`);
    }
    if ("x-debug" in h) problems.push("mesh: RequestHeaderModifier did not remove x-debug");
    const canary = await getJson(url(PORTS.mesh), { headers: { "x-canary": "always" } });
    if (canary.json?.service !== "echo-v2") {
      problems.push(`mesh: x-canary: always should reach echo-v2, got ${describe(canary)}`);
    }
    // The weighted split, observed over a sequential sample.
    sample = { requests: 400, "echo-v1": 0, "echo-v2": 0, other: 0 };
    for (let i = 0; i < sample.requests; i++) {
      const r = await getJson(url(PORTS.mesh));
      const key = r.status === 200 ? r.json?.service : undefined;
      if (key === "echo-v1" || key === "echo-v2") sample[key]++;
      else {
        sample.other++;
        if (sample.other === 1) problems.push(`mesh: a sampled call failed: ${describe(r)}`);
      }
    }
  }
  const status = await routerStatus();
  if (status?.version !== 1) problems.push(`router status: version ${status?.version}, expected 1`);
  if (!status?.destinations?.[TARGET]) {
    problems.push(
      `router status (HTTP entry) does not list '${TARGET}': its config cache is not the one the Mesh entrypoint used, so the KV counters below do not cover the mesh calls`,
    );
  }
  return { problems, split: sample };
}

function runLoad(port, seconds, connections, latencyFile) {
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    const args = [LOAD, url(port), String(connections), String(seconds)];
    if (latencyFile) args.push(latencyFile);
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
 * One phase: every scenario for `rounds` rounds of `seconds`, in alternating order (A B C, then
 * C B A, …) so that a slow drift of the machine falls on every scenario alike. Per scenario,
 * requests, CPU and every latency are pooled over the rounds.
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
      const isMesh = scenario.name === "mesh";
      const before = isMesh ? { status: await routerStatus(), kv: await kvServed() } : undefined;
      const latencyFile = join(RUN, `latencies-${label}-${scenario.name}-${round}.bin`);
      const busy0 = machineBusySeconds();
      const cpu0 = workerdCpuSeconds();
      const load = await runLoad(PORTS[scenario.name], seconds, connections, latencyFile);
      const cpu1 = workerdCpuSeconds();
      const busy1 = machineBusySeconds();
      const after = isMesh ? { status: await routerStatus(), kv: await kvServed() } : undefined;
      const bytes = readFileSync(latencyFile);
      rmSync(latencyFile);
      a.latencies.push(new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8));
      const reads = (s) => s?.kvReads ?? { awaited: NaN, background: NaN };
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
        hotPath: isMesh
          ? {
              awaitedKvReads: reads(after.status).awaited - reads(before.status).awaited,
              backgroundKvReads: reads(after.status).background - reads(before.status).background,
              kvReadsServed: after.kv - before.kv,
              configVersion: after.status?.version ?? null,
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
        configVersion: rounds.at(-1).hotPath.configVersion,
      }
    : undefined;
  return {
    scenario: scenario.name,
    path: scenario.path,
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
    otherCpuUtilization: sum((r) => r.otherCpuSeconds) / seconds,
    ...(hotPath ? { hotPath } : {}),
    rounds: rounds.map((r) => ({
      requests: r.requests,
      seconds: r.seconds,
      rps: r.rps,
      p50: r.p50,
      p99: r.p99,
      cpuUsPerRequest: r.cpuUsPerRequest,
      otherCpuUtilization: r.otherCpuSeconds / r.seconds,
    })),
  };
}

// ---------------------------------------------------------------------------------------------
// Report

/** Whether the router's wrangler.toml declares Durable Object bindings (none do yet). */
function routerHasDurableObjects() {
  const toml = readFileSync(join(ROOT, "wrangler.toml"), "utf8");
  return /^\s*\[\[durable_objects\.bindings\]\]/m.test(toml) || /durable_objects\s*=/.test(toml);
}

const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : null);
const fixed = (n, digits = 2) => (n === null || n === undefined ? "-" : n.toFixed(digits));

function printRows(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  for (const [i, row] of rows.entries()) {
    console.log(
      row
        .map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c])))
        .join("  "),
    );
    if (i === 0) console.log(widths.map((w) => "─".repeat(w)).join("  "));
  }
}

function printTables(results) {
  console.log(
    `Throughput: ${CONNECTIONS} connections, ${SECONDS} s per scenario in ${ROUNDS} round(s) (workerd saturated)`,
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
    `Latency: 1 connection, ${LATENCY_SECONDS} s per scenario in ${ROUNDS} round(s) (one request at a time)`,
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
    workerd: execFileSync(WORKERD, ["--version"], { encoding: "utf8" }).trim(),
    workerdPackage: pkg("workerd"),
    wrangler: pkg("wrangler"),
    autocannon: pkg("autocannon"),
    commit,
  };
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const started = Date.now();
  const loadAverageAtStart = os.loadavg();
  mkdirSync(RUN, { recursive: true });
  console.log("▶ building Workers with wrangler deploy --dry-run …");
  await buildWorkers();
  const { index, kv } = buildSnapshotWrites();
  writeFileSync(join(RUN, "snapshot.json"), JSON.stringify(kv));
  const configPath = writeWorkerdConfig();
  console.log(`▶ starting workerd (${relative(ROOT, configPath)}) …`);
  const logPath = await startWorkerd(configPath);

  const smoke = await smokeTest();
  if (smoke.split) {
    const s = smoke.split;
    console.log(
      `▶ smoke test: mesh split over ${s.requests} calls: echo-v1 ${s["echo-v1"]}, echo-v2 ${s["echo-v2"]}, failed ${s.other} (policy 90/10)`,
    );
  }
  for (const problem of smoke.problems) console.log(`  ✗ ${problem}`);

  console.log(`▶ warm-up: ${WARMUP_SECONDS} s per scenario, ${CONNECTIONS} connections …`);
  for (const scenario of SCENARIOS) {
    await runLoad(PORTS[scenario.name], WARMUP_SECONDS, CONNECTIONS);
  }

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
      rounds: r.rounds,
    };
  }
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
  const hotPath = {
    awaitedKvReadsPerRequest: mesh.requests ? mesh.hotPath.awaitedKvReads / mesh.requests : null,
    awaitedKvReads: mesh.hotPath.awaitedKvReads,
    backgroundKvReads: mesh.hotPath.backgroundKvReads,
    kvReadsServed: mesh.hotPath.kvReadsServed,
    // With no Durable Object bindings the router cannot call one; once it has some, this bench
    // must bind them in the capnp config and count their calls (until then: null, not 0).
    durableObjectCallsPerRequest: routerHasDurableObjects() ? null : 0,
    durableObjects: routerHasDurableObjects()
      ? "the router has Durable Object bindings; this bench does not bind or count them yet"
      : "no Durable Object bindings yet: the router makes no DO calls",
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
        "one `workerd serve` process, generated capnp config, compatibility date " +
        COMPATIBILITY_DATE,
      loadGenerator:
        "autocannon in a separate Node process (bench/load.mjs), HTTP/1.1 keep-alive, loopback",
      connections: CONNECTIONS,
      warmupSeconds: WARMUP_SECONDS,
      rounds: ROUNDS,
      order: "rounds alternate the scenario order (direct, hop, mesh; then mesh, hop, direct)",
      throughputPhase: { connections: CONNECTIONS, seconds: SECONDS },
      latencyPhase: { connections: 1, seconds: LATENCY_SECONDS },
      requestPath: REQUEST_PATH,
      cpu: "workerd utime+stime from /proc/<pid>/stat over each measured phase, divided by requests",
      configVersion: index.version,
    },
    policy: POLICY,
    smokeTest: smoke,
    scenarios: results,
    ratios,
    addedLatencyUs,
    routerCpu,
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
  console.log(`GET ${REQUEST_PATH}, after ${WARMUP_SECONDS} s warm-up per scenario`);
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
  console.log(
    `hot path (mesh phase): awaited KV reads ${hotPath.awaitedKvReads} (${fixed(hotPath.awaitedKvReadsPerRequest, 6)}/req), background KV reads ${hotPath.backgroundKvReads}, KV reads served ${hotPath.kvReadsServed}; DO calls ${hotPath.durableObjectCallsPerRequest ?? "not counted"} (${hotPath.durableObjects})`,
  );
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
  console.log(
    `\nwrote ${relative(ROOT, RESULTS)} (workerd log: ${relative(ROOT, logPath)}) in ${report.durationSeconds} s`,
  );
  return smoke.problems.length === 0 && failures.length === 0 ? 0 : 1;
}

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    stopWorkerd();
    process.exit(130);
  });
}
process.on("exit", stopWorkerd);

main().then(
  (code) => {
    stopWorkerd();
    process.exitCode = code;
  },
  (error) => {
    stopWorkerd();
    console.error(`✗ bench failed: ${error.stack ?? error}`);
    process.exitCode = 1;
  },
);
