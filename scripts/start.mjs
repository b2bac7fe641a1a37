// `npm start`: the whole demo mesh on this machine, on workerd through `wrangler dev`.
//
//  1. decides which config to run: with --config FILE, that file (validated here, every issue
//     printed as `path: message`); without, the config already in the local state runs as it is
//     — versions only move forward, so a config applied with meshctl (or published with
//     `npm run publish`) survives a restart — and only an empty state gets the demo config
//     (examples/mesh.yaml);
//  2. runs the identity and policy Workers in `wrangler dev` processes of their own (served on
//     --identity-port and --policy-port), and ONE `wrangler dev` process with the router first
//     (it is the one served on --port) and every example Worker, reachable from the router
//     through its service bindings; the router reaches the identity and policy Workers through
//     wrangler's dev registry, kept beside the local state so two meshes on one machine never
//     bind to each other's; the config chosen in 1 is applied through the policy Worker's admin
//     API, which publishes it to the local KV;
//  3. waits until the router's /.mesh/status reports that version and prints where to look;
//  4. unless --no-traffic, sends light demo traffic to `orders` (which calls `payments` through
//     the mesh) and prints the observed payments split every 10 s.
//
// Ctrl-C (or SIGTERM) stops wrangler and everything it started.
import { spawn } from "node:child_process";
import { createWriteStream, mkdirSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { dirname, join, relative } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import {
  DEFAULT_PERSIST_DIR,
  DEV_ADMIN_TOKEN,
  IDENTITY_CONFIG,
  POLICY_CONFIG,
  requireNode,
  ROOT,
  userPath,
  WORKERS,
  worker,
  WRANGLER,
  wranglerEnv,
} from "./workers.mjs";

const DEMO_CONFIG = join(ROOT, "examples", "mesh.yaml");
const DEFAULT_INSPECTOR_PORT = 9229;
const READY_TIMEOUT_MS = 120_000;
const REPORT_EVERY_MS = 10_000;
const STOP_GRACE_MS = 5_000;
// eslint-disable-next-line no-control-regex -- an escape sequence is what it matches
const ANSI_ESCAPE = /\x1b\[[0-9;]*[A-Za-z]/g;
/** wrangler output worth showing once the mesh runs (the rest goes to the log file). */
const ERROR_LINE = /\[wrangler:error\]|\[ERROR\]|✘|\bUncaught\b/;

const USAGE = `Usage: npm start -- [options]

Runs the Meshwork router and the demo services locally (wrangler dev, one workerd).

Runs the config already in the local state (.mesh-local/state); applies the demo config
(examples/mesh.yaml) through the policy Worker only when there is none. Change the running mesh
with \`npx meshctl apply -f FILE\`.

Options:
  --config FILE          apply this mesh config (YAML or JSON) as the next version, then run
  --port N               router port on 127.0.0.1 (default 8787)
  --policy-port N        policy Worker (admin API) port on 127.0.0.1 (default 8788)
  --identity-port N      identity Worker port on 127.0.0.1 (default 8789)
  --inspector-port N     devtools inspector port (default 9229, or a free one if that is taken)
  --persist-to DIR       local state directory (default .mesh-local/state)
  --rate N               demo requests per second to orders (default 5)
  --no-traffic           do not send demo traffic
  -h, --help             show this help`;

// ---------------------------------------------------------------------------------------------
// Options

function fail(message) {
  console.error(`✗ ${message}`);
  process.exit(1);
}

function parseOptions() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        config: { type: "string" },
        port: { type: "string", default: "8787" },
        "identity-port": {
          type: "string",
          default: String(worker("meshwork-identity").dev.port),
        },
        "policy-port": { type: "string", default: String(worker("meshwork-policy").dev.port) },
        "inspector-port": { type: "string" },
        "persist-to": { type: "string" },
        rate: { type: "string", default: "5" },
        "no-traffic": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    console.error(`✗ ${error.message}\n\n${USAGE}`);
    process.exit(1);
  }
  if (parsed.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const port = (name, text) => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < 1 || value > 65535) {
      fail(`--${name} must be a port number (1-65535), got '${text}'`);
    }
    return value;
  };
  const rate = Number(parsed.rate);
  if (!(rate > 0 && rate <= 200)) fail(`--rate must be between 0 and 200, got '${parsed.rate}'`);
  return {
    // `npm start` runs in the package root; user paths are resolved where they were typed.
    configFile: parsed.config ? userPath(parsed.config) : undefined,
    port: port("port", parsed.port),
    identityPort: port("identity-port", parsed["identity-port"]),
    policyPort: port("policy-port", parsed["policy-port"]),
    inspectorPort:
      parsed["inspector-port"] === undefined
        ? undefined
        : port("inspector-port", parsed["inspector-port"]),
    persistTo: parsed["persist-to"] ? userPath(parsed["persist-to"]) : DEFAULT_PERSIST_DIR,
    rate,
    traffic: !parsed["no-traffic"],
  };
}

const display = (path) => (path.startsWith(ROOT) ? relative(ROOT, path) || "." : path);

// ---------------------------------------------------------------------------------------------
// Config: what runs

// The shared config code imports TypeScript modules, which need Node ≥ 22.18 — imported only
// after the version check so an old Node gets a clear message instead of a syntax error.
const sharedConfig = () => import("./mesh-config.mjs");

function printConfigError(error, MeshConfigError) {
  if (!(error instanceof MeshConfigError)) throw error;
  console.error(`✗ ${error.message}${error.lines.length > 0 ? ":" : ""}`);
  for (const line of error.lines) console.error(`  ${line}`);
  process.exit(1);
}

/**
 * What to run: with `file`, that file (validated here first, every issue printed) is applied
 * through the policy Worker's admin API as the next version once it is up; without, a config
 * already in the local state runs as it is (versions only move forward, so a config applied
 * with meshctl or published with `npm run publish` survives a restart), and only an empty state
 * gets the demo config (examples/mesh.yaml), applied the same way. Returns
 * `{ version, services, apply }`: the version to wait for (0 until the apply), the Services, and
 * the resources to apply, if any.
 */
async function prepareConfig(file, persistTo) {
  const { loadMeshConfig, MeshConfigError, openStore, readMeshConfig } = await sharedConfig();
  const { INDEX_KEY } = await import("../core/config/snapshot.ts");
  try {
    if (file === undefined) {
      const store = await openStore({ persistTo });
      let index;
      try {
        const text = await store.get(INDEX_KEY);
        index = text === null ? undefined : JSON.parse(text);
      } catch {
        index = undefined;
      } finally {
        await store.close();
      }
      if (Number.isInteger(index?.version) && index.version > 0) {
        console.log(
          `✓ running the config already in ${display(persistTo)}: version ${index.version}, ` +
            `published ${index.publishedAt} (npm start -- --config FILE applies another)`,
        );
        return { version: index.version, services: Object.keys(index.destinations ?? {}) };
      }
    }
    const source = file ?? DEMO_CONFIG;
    const { config, warnings } = loadMeshConfig(source);
    for (const warning of warnings) console.warn(`⚠ ${warning}`);
    return {
      version: 0,
      services: config.services.map((s) => s.metadata.name),
      apply: { source, resources: readMeshConfig(source).resources },
    };
  } catch (error) {
    printConfigError(error, MeshConfigError);
  }
}

/** Applies `resources` through the admin API as the whole config (prune); returns the version. */
async function applyThroughAdminApi(port, source, resources) {
  const response = await fetch(`http://127.0.0.1:${port}/v1/apply?prune=true`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${DEV_ADMIN_TOKEN}`,
      "content-type": "application/json",
      "x-mesh-author": "npm start",
    },
    body: JSON.stringify({ resources }),
    signal: AbortSignal.timeout(30_000),
  });
  const body = await response.json().catch(() => ({}));
  if (response.status !== 200 || !Number.isInteger(body.version)) {
    const issues = (body.error?.issues ?? []).map((i) => `  ${i.path}: ${i.message}`);
    throw new Error(
      `the policy Worker refused ${display(source)}: ${response.status} ${body.error?.message ?? JSON.stringify(body)}` +
        (issues.length > 0 ? `\n${issues.join("\n")}` : ""),
    );
  }
  return body.version;
}

// ---------------------------------------------------------------------------------------------
// Ports and HTTP

function portFree(port) {
  return new Promise((done) => {
    const server = net.createServer();
    server.once("error", () => done(false));
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () =>
      server.close(() => done(true)),
    );
  });
}

function freePort() {
  return new Promise((done, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen({ port: 0, host: "127.0.0.1", exclusive: true }, () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });
}

/** A request to the router with an explicit Host header (fetch would replace it). */
function call(port, host, path, { agent, timeoutMs = 10_000, headers = {} } = {}) {
  return new Promise((done, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, path, method: "GET", headers: { host, ...headers }, agent },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk) => (body += chunk));
        res.on("end", () => done({ status: res.statusCode, headers: res.headers, body }));
        res.on("error", reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

// ---------------------------------------------------------------------------------------------
// wrangler dev

/** wrangler's line once the Worker serves. */
const READY_LINE = /Ready on https?:\/\//;
/** workerd could not open the local state at start because another one held it. */
const BUSY_AT_START = /SQLITE_BUSY|database is locked/;
const MAX_BUSY_RESTARTS = 3;

class Wrangler {
  constructor(logFile, env = {}) {
    this.env = env;
    this.child = undefined;
    this.tail = [];
    this.log = createWriteStream(logFile, { flags: "w" });
    this.echo = "none";
    this.restarts = 0;
    this.stopping = false;
    this.exited = new Promise((done) => (this.markExited = done));
  }

  start(args) {
    this.args = args;
    this.spawn();
  }

  spawn() {
    if (this.stopping) {
      this.markExited({ code: null, signal: "SIGTERM" });
      return;
    }
    this.ready = false;
    this.child = spawn(process.execPath, [WRANGLER, ...this.args], {
      cwd: ROOT,
      env: { ...wranglerEnv(), ...this.env },
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group, so stopping it stops workerd and everything else it started.
      detached: true,
    });
    this.child.once("error", (error) => this.markExited({ code: null, signal: null, error }));
    this.child.once("exit", (code, signal) => {
      // Three workerd processes open the one local state at once; SQLite can refuse one of them
      // at start (SQLITE_BUSY). That one is started again, a moment later, a few times at most.
      const busy = this.tail.slice(-40).some((line) => BUSY_AT_START.test(line));
      if (!this.ready && !this.stopping && busy && this.restarts < MAX_BUSY_RESTARTS) {
        this.restarts += 1;
        this.log.write(`[start.mjs] the local state was busy as workerd started: starting again\n`);
        this.tail = [];
        setTimeout(() => this.spawn(), 300 + Math.floor(Math.random() * 700));
        return;
      }
      this.markExited({ code, signal });
    });
    for (const stream of [this.child.stdout, this.child.stderr]) {
      createInterface({ input: stream }).on("line", (line) => this.onLine(line));
    }
  }

  onLine(raw) {
    // wrangler colours its error lines whatever NO_COLOR says; the log and the echo stay plain.
    const line = raw.replace(ANSI_ESCAPE, "");
    this.log.write(`${line}\n`);
    this.tail.push(line);
    if (READY_LINE.test(line)) this.ready = true;
    if (this.tail.length > 80) this.tail.shift();
    if (this.echo === "all" || (this.echo === "errors" && ERROR_LINE.test(line))) {
      console.log(`  wrangler │ ${line}`);
    }
  }

  get running() {
    return this.child?.pid !== undefined && this.child.exitCode === null && !this.child.signalCode;
  }

  signal(name) {
    try {
      process.kill(-this.child.pid, name);
    } catch {
      // The group is gone already.
    }
  }

  /** SIGTERM to the whole group, SIGKILL if it lingers; resolves when wrangler has exited. */
  async stop() {
    this.stopping = true;
    if (!this.child?.pid) {
      this.markExited({ code: null, signal: null });
      return;
    }
    if (this.running) {
      this.signal("SIGTERM");
      const timer = sleep(STOP_GRACE_MS).then(() => "timeout");
      if ((await Promise.race([this.exited, timer])) === "timeout") this.signal("SIGKILL");
      await this.exited;
    }
    // Anything it started and left behind (workerd) goes with the group.
    this.signal("SIGKILL");
    this.log.end();
  }

  printTail(lines = 40) {
    if (this.tail.length === 0) return;
    console.error("  last lines of wrangler's output:");
    for (const line of this.tail.slice(-lines)) console.error(`  wrangler │ ${line}`);
  }
}

/** Polls a Worker's /health until it answers 200. */
async function waitUntilHealthy(child, port, name) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let exited;
  child.exited.then((result) => (exited = result));
  let last = "no answer yet";
  while (Date.now() < deadline && !exited) {
    try {
      const res = await call(port, "localhost", "/health", { timeoutMs: 5_000 });
      if (res.status === 200) return true;
      last = `/health answered ${res.status}`;
    } catch (error) {
      last = error.message;
    }
    await sleep(500);
  }
  console.error(
    exited
      ? `✗ ${name}'s wrangler dev stopped before it was ready.`
      : `✗ ${name} did not answer /health within ${READY_TIMEOUT_MS / 1000} s (last: ${last}).`,
  );
  return false;
}

/** Polls /.mesh/status until the router reports `version`; explains what went wrong if not. */
async function waitUntilReady(wrangler, port, version) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = "no answer yet";
  let exited;
  wrangler.exited.then((result) => (exited = result));
  while (Date.now() < deadline) {
    if (exited) {
      const how = exited.error ? exited.error.message : `exit code ${exited.code ?? exited.signal}`;
      console.error(`✗ wrangler dev stopped before the mesh was ready (${how}).`);
      if (wrangler.tail.some((line) => /EADDRINUSE|address already in use/i.test(line))) {
        console.error(`  A port it needs is in use; try --port or --inspector-port.`);
      }
      return false;
    }
    try {
      // ?refresh=1 makes the router read KV now instead of on its first call.
      const res = await call(port, "meshwork-router", "/.mesh/status?refresh=1", {
        timeoutMs: 5_000,
        headers: { authorization: `Bearer ${DEV_ADMIN_TOKEN}` },
      });
      if (res.status === 200) {
        const status = JSON.parse(res.body);
        if (status.version >= version) return true;
        last = `status reports version ${status.version}${status.error ? ` (error: ${JSON.stringify(status.error)})` : ""}`;
      } else if (res.status === 429) {
        // ?refresh is taken once a second; the next poll is late enough.
      } else {
        last = `status answered ${res.status}: ${res.body.slice(0, 200)}`;
      }
    } catch (error) {
      last = error.message;
    }
    // ?refresh reads KV at most once a second per router isolate (429 sooner).
    await sleep(1000);
  }
  console.error(`✗ the router did not report config version ${version} within`);
  console.error(`  ${READY_TIMEOUT_MS / 1000} s (last: ${last}).`);
  return false;
}

// ---------------------------------------------------------------------------------------------
// Demo traffic

function startTraffic(port, rate) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const window = { calls: 0, errors: 0, by: new Map(), firstError: undefined };
  const total = { calls: 0, errors: 0, by: new Map() };
  let inFlight = 0;

  const count = (service) => {
    for (const tally of [window, total]) {
      tally.calls += 1;
      tally.by.set(service, (tally.by.get(service) ?? 0) + 1);
    }
  };
  const error = (why) => {
    for (const tally of [window, total]) {
      tally.calls += 1;
      tally.errors += 1;
    }
    window.firstError ??= why;
  };

  const send = async () => {
    if (inFlight >= 16) return error("too many calls in flight (the mesh is slow to answer)");
    inFlight += 1;
    try {
      const res = await call(port, "orders", "/orders", { agent });
      const meshError = res.headers["x-mesh-error"];
      let service;
      try {
        service = JSON.parse(res.body)?.payment?.service;
      } catch {
        service = undefined;
      }
      if (res.status === 201 && typeof service === "string") count(service);
      else error(`${res.status}${meshError ? ` ${meshError}` : ""}: ${res.body.slice(0, 160)}`);
    } catch (e) {
      error(e.message);
    } finally {
      inFlight -= 1;
    }
  };

  const split = (tally) => {
    const ok = tally.calls - tally.errors;
    if (ok === 0) return "no answers";
    return [...tally.by.keys()]
      .sort()
      .map((name) => `${name} ${((100 * tally.by.get(name)) / ok).toFixed(1)}%`)
      .join(" / ");
  };

  const sender = setInterval(send, Math.max(5, Math.round(1000 / rate)));
  const reporter = setInterval(() => {
    const time = new Date().toTimeString().slice(0, 8);
    console.log(
      `[${time}] orders → payments: ${window.calls} calls, ${split(window)}, ` +
        `errors ${window.errors}   (since start: ${total.calls} calls, ${split(total)}, ` +
        `errors ${total.errors})`,
    );
    if (window.firstError) console.log(`           first error: ${window.firstError}`);
    Object.assign(window, { calls: 0, errors: 0, by: new Map(), firstError: undefined });
  }, REPORT_EVERY_MS);

  return () => {
    clearInterval(sender);
    clearInterval(reporter);
    agent.destroy();
  };
}

// ---------------------------------------------------------------------------------------------
// Main

/** What to tell the user once the mesh runs, as lines (printed at once, so nothing interleaves). */
function banner(options, running, logFile, inspectorPort) {
  const url = `http://127.0.0.1:${options.port}`;
  const names = new Set(running.services);
  const tries = [];
  if (names.has("echo")) {
    tries.push(
      [`curl -H 'Host: echo' ${url}/hello`, "split 50/50 between echo-v1 and echo-v2"],
      [`curl -H 'Host: echo' -H 'x-version: v3' ${url}/hello`, "header match → echo-v3"],
      [`curl -H 'Host: echo' ${url}/v2/hello`, "prefix /v2 → echo-v2, rewritten to /hello"],
      [`curl -H 'Host: echo-v1' ${url}/hello`, "one version directly"],
    );
  }
  if (names.has("orders")) {
    tries.push([
      `curl -H 'Host: orders' ${url}/orders`,
      "orders → its PAYMENTS binding → router (Mesh) → payments 90/10",
    ]);
  }
  if (tries.length === 0) {
    const first = [...names][0];
    tries.push([
      `curl -H 'Host: ${first}' ${url}/`,
      `the Host header's first label is the Service`,
    ]);
  }
  tries.push([
    `curl -H 'Authorization: Bearer ${DEV_ADMIN_TOKEN}' ${url}/.mesh/status`,
    "the config version the router runs (admin only)",
  ]);
  const width = Math.max(...tries.map(([command]) => command.length));

  return [
    "",
    `✓ Meshwork is running config version ${running.version} (${display(options.persistTo)})`,
    "",
    `  router (data plane)  ${url}   the Host header names the destination Service`,
    `  status               ${url}/.mesh/status   (Authorization: Bearer ${DEV_ADMIN_TOKEN})`,
    `  policy Worker        http://127.0.0.1:${options.policyPort}   admin API (npx meshctl …)`,
    `  dashboard            http://127.0.0.1:${options.policyPort}/dashboard#token=${DEV_ADMIN_TOKEN}`,
    `  identity Worker      http://127.0.0.1:${options.identityPort}   JWKS, SVIDs (POST /v1/svid)`,
    `  devtools inspector   127.0.0.1:${inspectorPort}`,
    `  wrangler output      ${display(logFile)}   (tail -f it to see every request)`,
    "",
    "Try:",
    ...tries.map(([command, what]) => `  ${command.padEnd(width)}   # ${what}`),
    "",
    "Change the running mesh: edit a config, then",
    `  npx meshctl apply -f examples/mesh.yaml${options.policyPort === 8788 ? "" : ` --server http://127.0.0.1:${options.policyPort}`}`,
    "",
  ];
}

async function main() {
  const options = parseOptions();
  requireNode("npm start");

  if (!(await portFree(options.port))) {
    fail(
      `port ${options.port} on 127.0.0.1 is in use (is another \`npm start\` running?). ` +
        "Stop it, or pick another port: npm start -- --port 8800",
    );
  }
  for (const [name, flag, value, other] of [
    ["the identity Worker's", "--identity-port", options.identityPort, 8790],
    ["the policy Worker's", "--policy-port", options.policyPort, 8791],
  ]) {
    const clash = [options.port, options.identityPort, options.policyPort].filter(
      (p) => p === value,
    );
    if (clash.length > 1 || !(await portFree(value))) {
      fail(
        `port ${value} on 127.0.0.1 (${name}) is in use: stop what uses it, or pick another: ` +
          `npm start -- ${flag} ${other}`,
      );
    }
  }
  let inspectorPort = options.inspectorPort;
  if (inspectorPort === undefined) {
    inspectorPort = (await portFree(DEFAULT_INSPECTOR_PORT))
      ? DEFAULT_INSPECTOR_PORT
      : await freePort();
  } else if (inspectorPort === options.port || !(await portFree(inspectorPort))) {
    fail(`inspector port ${inspectorPort} is in use: pick another with --inspector-port`);
  }

  mkdirSync(options.persistTo, { recursive: true });
  const running = await prepareConfig(options.configFile, options.persistTo);

  const logFile = join(dirname(options.persistTo), "wrangler.log");
  const logOf = (name) => join(dirname(options.persistTo), name);
  // The router finds the identity and policy Workers (processes of their own) through wrangler's
  // dev registry: one per local state, so two meshes on one machine never bind to each other's.
  const registry = { WRANGLER_REGISTRY_PATH: join(dirname(options.persistTo), "registry") };
  const identity = new Wrangler(logOf("identity.log"), registry);
  const policy = new Wrangler(logOf("policy.log"), registry);
  const wrangler = new Wrangler(logFile, registry);
  const children = [
    { child: identity, name: "the identity Worker's wrangler dev", log: logOf("identity.log") },
    { child: policy, name: "the policy Worker's wrangler dev", log: logOf("policy.log") },
    { child: wrangler, name: "wrangler dev", log: logFile },
  ];
  const stopAll = () => Promise.all(children.map(({ child }) => child.stop()));
  let stopTraffic = () => {};
  let stopping = false;
  const shutdown = async (code, why) => {
    if (stopping) {
      // A second Ctrl-C: stop at once.
      for (const { child } of children) child.signal("SIGKILL");
      process.exit(code);
    }
    stopping = true;
    stopTraffic();
    if (why) console.log(`\n${why}`);
    await stopAll();
    process.exit(code);
  };
  const giveUp = async () => {
    for (const { child, log } of children) {
      child.printTail();
      console.error(`  full output: ${display(log)}`);
    }
    await stopAll();
    process.exit(1);
  };
  process.on("SIGINT", () => shutdown(0, "stopping the mesh …"));
  process.on("SIGTERM", () => shutdown(0, "stopping the mesh …"));
  process.on("SIGHUP", () => shutdown(0));
  // Last resort if this process ends some other way: never leave workerd running.
  process.on("exit", () => {
    for (const { child } of children) if (child.running) child.signal("SIGKILL");
  });

  const common = async (port) => [
    ...["--ip", "127.0.0.1", "--port", String(port)],
    ...["--inspector-ip", "127.0.0.1", "--inspector-port", String(await freePort())],
    ...["--persist-to", options.persistTo, "--show-interactive-dev-session=false"],
  ];
  console.log(`… starting the identity Worker (wrangler dev, port ${options.identityPort})`);
  identity.start(["dev", "-c", IDENTITY_CONFIG, ...(await common(options.identityPort))]);
  console.log(`… starting the policy Worker (wrangler dev, port ${options.policyPort})`);
  policy.start([
    ...["dev", "-c", POLICY_CONFIG, ...(await common(options.policyPort))],
    ...["--var", `ADMIN_TOKEN:${DEV_ADMIN_TOKEN}`],
  ]);

  const configs = WORKERS.filter((w) => w.dev === "main").map((w) => w.config);
  const args = ["dev", ...configs.flatMap((config) => ["-c", config])];
  args.push("--ip", "127.0.0.1", "--port", String(options.port));
  args.push("--inspector-ip", "127.0.0.1", "--inspector-port", String(inspectorPort));
  args.push("--persist-to", options.persistTo, "--show-interactive-dev-session=false");
  args.push("--var", `ADMIN_TOKEN:${DEV_ADMIN_TOKEN}`);
  console.log(`… starting wrangler dev (router + ${configs.length - 1} example Workers)`);
  wrangler.start(args);
  console.log(`  wrangler pid ${wrangler.child.pid} (its own process group)`);

  const up = await Promise.all([
    waitUntilHealthy(identity, options.identityPort, "the identity Worker"),
    waitUntilHealthy(policy, options.policyPort, "the policy Worker"),
  ]);
  if (!up.every(Boolean)) await giveUp();
  if (running.apply) {
    try {
      running.version = await applyThroughAdminApi(
        options.policyPort,
        running.apply.source,
        running.apply.resources,
      );
    } catch (error) {
      console.error(`✗ ${error.message}`);
      await giveUp();
    }
    console.log(
      `✓ applied ${display(running.apply.source)} through the policy Worker (127.0.0.1:${options.policyPort}) as version ${running.version}`,
    );
  }
  if (!(await waitUntilReady(wrangler, options.port, running.version))) await giveUp();
  for (const { child } of children) child.echo = "errors";
  const lines = banner(options, running, logFile, inspectorPort);
  const hasOrders = running.services.includes("orders");
  if (options.traffic && hasOrders) {
    lines.push(
      `Demo traffic: ${options.rate} requests/s to orders (GET /orders, Host: orders); the ` +
        `payments split it sees is printed every ${REPORT_EVERY_MS / 1000} s.`,
      "Turn it off with: npm start -- --no-traffic",
      "",
    );
  } else if (options.traffic) {
    lines.push("No demo traffic: the config has no `orders` Service.", "");
  }
  lines.push("Ctrl-C stops the mesh.", "");
  console.log(lines.join("\n"));
  if (options.traffic && hasOrders) stopTraffic = startTraffic(options.port, options.rate);

  const [which, result] = await Promise.race(
    children.map((entry) => entry.child.exited.then((r) => [entry, r])),
  );
  if (!stopping) {
    console.error(`✗ ${which.name} exited unexpectedly (${result.code ?? result.signal}).`);
    which.child.printTail();
    await shutdown(1);
  }
}

main().catch((error) => {
  console.error(`✗ ${error?.stack ?? error}`);
  process.exit(1);
});
