// Runs `scripts/start.mjs` (what `npm start` runs) as a real process for end-to-end tests, out of
// the way of a developer's own `npm start`: its own router and inspector ports, its own local
// state and its own wrangler dev registry, all in a temporary directory removed afterwards.
//
// Plain JavaScript because it needs Node's APIs, and the repository's TypeScript is typed for
// Workers only; mesh-process.d.mts declares what the tests use.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const STOP_GRACE_MS = 15_000;

function listenable(port) {
  return new Promise((done) => {
    const server = net.createServer();
    server.once("error", () => done(undefined));
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => {
      const { port: bound } = server.address();
      server.close(() => done(bound));
    });
  });
}

/** `preferred` when it is free, else a port the OS hands out. */
export async function freePort(preferred = 0) {
  const port = (preferred && (await listenable(preferred))) || (await listenable(0));
  if (!port) throw new Error("could not find a free port on 127.0.0.1");
  return port;
}

/** A Node that strips TypeScript types, as start.mjs needs (the project pins one). */
export function nodeBinary() {
  const [major, minor] = process.versions.node.split(".").map(Number);
  if (major > 22 || (major === 22 && minor >= 18)) return process.execPath;
  const pinned = join(ROOT, "node_modules", "node", "bin", "node");
  return existsSync(pinned) ? pinned : process.execPath;
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

/** GET with an explicit Host header (fetch would replace it with the URL's host). */
export function call(port, host, path, timeoutMs = 15_000, headers = {}) {
  return new Promise((done, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, path, method: "GET", headers: { ...headers, host }, agent: false },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk) => (body += chunk));
        res.on("end", () =>
          done({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            json: () => JSON.parse(body),
          }),
        );
        res.on("error", reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Starts the mesh and resolves once start.mjs reports it ready (config version 1 applied). */
export async function startMesh({
  preferredPort = 18787,
  args = [],
  readyTimeoutMs = 110_000,
  stateDir,
  traffic = false,
  rate,
} = {}) {
  const port = await freePort(preferredPort);
  let inspectorPort = await freePort(0);
  while (inspectorPort === port) inspectorPort = await freePort(0);
  const taken = new Set([port, inspectorPort]);
  const another = async () => {
    let p = await freePort(0);
    while (taken.has(p)) p = await freePort(0);
    taken.add(p);
    return p;
  };
  const identityPort = await another();
  const policyPort = await another();
  // Local state (KV) in the caller's directory when given (kept), else in a temporary one.
  const dir = stateDir ?? mkdtempSync(join(tmpdir(), "meshwork-e2e-"));

  const child = spawn(
    nodeBinary(),
    [
      "scripts/start.mjs",
      ...["--port", String(port), "--inspector-port", String(inspectorPort)],
      ...["--identity-port", String(identityPort), "--policy-port", String(policyPort)],
      ...["--persist-to", join(dir, "state")],
      // Quiet unless asked: most tests send their own calls and count them.
      ...(traffic ? (rate === undefined ? [] : ["--rate", String(rate)]) : ["--no-traffic"]),
      ...args,
    ],
    {
      cwd: ROOT,
      env: {
        ...process.env,
        WRANGLER_SEND_METRICS: "false",
        // Keep this mesh's Workers out of the developer's wrangler dev registry.
        WRANGLER_REGISTRY_PATH: join(dir, "registry"),
        INIT_CWD: ROOT,
      },
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group: stop() signals the group, never anything else.
      detached: true,
    },
  );
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (chunk) => (output += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk) => (output += chunk));
  const exited = new Promise((done) => {
    child.once("exit", (code, signal) => done({ code, signal }));
    child.once("error", (error) => done({ code: null, signal: null, error }));
  });
  let exit;
  exited.then((result) => (exit = result));

  /** start.mjs runs wrangler in a group of its own and prints its pid. */
  const wranglerPid = () => Number(/wrangler pid (\d+)/.exec(output)?.[1]) || undefined;
  // If the test process ends without stop(), take the mesh down with it.
  const onExit = () => {
    if (exit) return;
    killGroup(child.pid, "SIGKILL");
    const pid = wranglerPid();
    if (pid) killGroup(pid, "SIGKILL");
  };
  process.on("exit", onExit);

  let stopped;
  const stop = () =>
    (stopped ??= (async () => {
      if (child.pid !== undefined && !exit) {
        // start.mjs stops wrangler (SIGTERM to its group, SIGKILL if it lingers), then exits.
        killGroup(child.pid, "SIGTERM");
        const timer = sleep(STOP_GRACE_MS).then(() => "timeout");
        if ((await Promise.race([exited, timer])) === "timeout") {
          killGroup(child.pid, "SIGKILL");
          const pid = wranglerPid();
          if (pid) killGroup(pid, "SIGKILL");
          await exited;
        }
      }
      process.off("exit", onExit);
      if (!stateDir) rmSync(dir, { recursive: true, force: true });
    })());

  const mesh = {
    port,
    inspectorPort,
    identityPort,
    policyPort,
    persistTo: join(dir, "state"),
    output: () => output,
    exitStatus: () => exit,
    call: (host, path, headers) => call(port, host, path, undefined, headers),
    stop,
  };

  const deadline = Date.now() + readyTimeoutMs;
  // The banner ends with this line, and start.mjs prints the banner in one write.
  while (!output.includes("Ctrl-C stops the mesh.")) {
    if (exit || Date.now() > deadline) {
      const why = exit
        ? `exited (${exit.error?.message ?? exit.code ?? exit.signal})`
        : `was not ready within ${readyTimeoutMs / 1000} s`;
      await stop();
      throw new Error(`npm start ${why}. Its output:\n${output}`);
    }
    await sleep(200);
  }
  return mesh;
}

/**
 * Runs `npm run publish -- ARGS` as a user would, from `cwd` (npm then runs the script in the
 * package root with INIT_CWD = cwd). Resolves with its exit code and output.
 */
export function runPublish(args, { cwd = ROOT } = {}) {
  return captured("npm", ["--prefix", ROOT, "run", "--silent", "publish", "--", ...args], {
    cwd,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" },
  });
}

/** Runs `meshctl ARGS` (the package's bin, with the project's Node) from `cwd`, as a user would. */
export function runMeshctl(args, { cwd = ROOT, env = {} } = {}) {
  return captured(nodeBinary(), [join(ROOT, "cli", "meshctl.mjs"), ...args], {
    cwd,
    // INIT_CWD is where npm was run (npm test's own): meshctl takes paths from there.
    env: { ...process.env, NO_COLOR: "1", INIT_CWD: cwd, ...env },
  });
}

/**
 * Runs one command line through `sh -c` from `cwd`, as a user types it in a shell: a shell's
 * environment (npm's INIT_CWD, which an npm script has, removed), plus `env`. npm runs offline, so
 * an `npx` that found no local bin would fail rather than fetch one.
 */
export function runShell(line, { cwd = ROOT, env = {} } = {}) {
  const shellEnv = { ...process.env, NO_COLOR: "1", npm_config_offline: "true", ...env };
  delete shellEnv.INIT_CWD;
  return captured("sh", ["-c", line], { cwd, env: shellEnv });
}

/** Runs `command` to its end: its exit code and its stdout and stderr together. */
function captured(command, args, { cwd, env }) {
  return new Promise((done) => {
    const child = spawn(command, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk) => (output += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk) => (output += chunk));
    child.once("error", (error) => done({ code: null, output: `${output}${error.message}` }));
    child.once("exit", (code) => done({ code, output }));
  });
}
