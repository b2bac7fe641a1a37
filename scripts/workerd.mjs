// Runs built Workers on the `workerd` binary directly, from a generated capnp config: what the
// benchmark and the real-HTTP tests use. Not `wrangler dev`: its dev proxy caps throughput and
// answers some malformed requests itself, before the router could.
//
//   const mesh = await startWorkerd({ dir, services: [...], sockets: [...] });
//   … HTTP to 127.0.0.1:<socket port> …
//   await mesh.stop();
import { spawn } from "node:child_process";
import { mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join, relative } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ROOT } from "./workers.mjs";

export const WORKERD = join(ROOT, "node_modules", "workerd", "bin", "workerd");
export const COMPATIBILITY_DATE = "2026-11-01";

/** A capnp text literal (the JSON escapes used here are valid capnp escapes). */
export const str = (text) => JSON.stringify(text);

/** Binding helpers, as capnp text. */
export const binding = {
  text: (name, value) => `(name = ${str(name)}, text = ${str(value)})`,
  service: (name, service, entrypoint, props) =>
    `(name = ${str(name)}, service = ${
      entrypoint
        ? `(name = ${str(service)}, entrypoint = ${str(entrypoint)}${props ? `, props = (json = ${str(JSON.stringify(props))})` : ""})`
        : str(service)
    })`,
  kv: (name, service) => `(name = ${str(name)}, kvNamespace = ${str(service)})`,
  // workerd sends each data point to `service` as an HTTP request; needs `serve --experimental`.
  analyticsEngine: (name, service) => `(name = ${str(name)}, analyticsEngine = ${str(service)})`,
  jsonFile: (name, file) => `(name = ${str(name)}, json = embed ${str(file)})`,
};

/** The router's ADMIN_TOKEN here (bench and tests only): the bearer token of /.mesh/status. */
export const LOCAL_ADMIN_TOKEN = "meshwork-local-admin-token";

/**
 * The router as a workerd service: its config from `kv` (a service answering the KV protocol),
 * bindings ECHO_V1 and ECHO_V2 to the echo services below, and its vars (overridable). Its
 * BackendState Durable Objects (in memory) are its own, or — with `backendStateFrom` — those of
 * another router service, as several router isolates share them in production. With
 * `analytics`, MESH_ANALYTICS is an Analytics Engine binding whose data points go to that
 * service (workerd needs `--experimental` for it); with `policy`, POLICY binds that service's
 * RouterReports entrypoint (version reports and metrics flushes), as wrangler.toml binds the
 * policy Worker's.
 */
export function routerService(
  modules,
  { kv, vars = {}, name = "router", backendStateFrom, identity, analytics, policy },
) {
  const settings = {
    TRUST_DOMAIN: "meshwork.local",
    ADMIN_TOKEN: LOCAL_ADMIN_TOKEN,
    CONFIG_REFRESH_SECONDS: "5",
    PATH_ESCAPED_SLASHES: "reject",
    ...vars,
  };
  const backendState = backendStateFrom
    ? `(name = "BACKEND_STATE", durableObjectNamespace = (className = "BackendState", serviceName = ${str(backendStateFrom)}))`
    : `(name = "BACKEND_STATE", durableObjectNamespace = "BackendState")`;
  return {
    name,
    modules,
    extra: backendStateFrom
      ? ""
      : `durableObjectNamespaces = [(className = "BackendState", uniqueKey = "meshwork-backend-state", enableSql = true)],
    durableObjectStorage = (localDisk = "durable-objects"),`,
    bindings: [
      backendState,
      binding.kv("MESH_CONFIG", kv),
      // The identity Worker's Identity entrypoint, as wrangler.toml binds it.
      ...(identity
        ? [binding.service("IDENTITY", identity, "Identity", { service: "meshwork-router" })]
        : []),
      ...(analytics ? [binding.analyticsEngine("MESH_ANALYTICS", analytics)] : []),
      ...(policy ? [binding.service("POLICY", policy, "RouterReports")] : []),
      binding.service("ECHO_V1", "echo-v1"),
      binding.service("ECHO_V2", "echo-v2"),
      ...Object.entries(settings).map(([name, value]) => binding.text(name, value)),
    ],
  };
}

/** The identity Worker's vars, as workers/identity/wrangler.toml sets them. */
export const IDENTITY_VARS = {
  TRUST_DOMAIN: "meshwork.local",
  SVID_TTL_SECONDS: "300",
  SVID_MAX_TTL_SECONDS: "3600",
  ROUTER_KEY_TTL_SECONDS: "3600",
  KEY_ROTATION_SECONDS: "86400",
  JWKS_MAX_AGE_SECONDS: "300",
};

/**
 * The identity Worker (workers/identity) as a workerd service named `meshwork-identity`: its
 * config from `kv`, its SigningKeys Durable Object stored with the others, vars as its
 * wrangler.toml sets them (overridable).
 */
export function identityService(modules, { kv, vars = {} }) {
  const settings = { ...IDENTITY_VARS, ...vars };
  return {
    name: "meshwork-identity",
    modules,
    extra: `durableObjectNamespaces = [(className = "SigningKeys", uniqueKey = "meshwork-signing-keys", enableSql = true)],
    durableObjectStorage = (localDisk = "durable-objects"),`,
    bindings: [
      `(name = "SIGNING_KEYS", durableObjectNamespace = "SigningKeys")`,
      binding.kv("MESH_CONFIG", kv),
      ...Object.entries(settings).map(([name, value]) => binding.text(name, value)),
    ],
  };
}

/** echo-v`version` (examples/echo) as a workerd service. */
export function echoService(modules, version) {
  return {
    name: `echo-v${version}`,
    modules,
    bindings: [
      binding.text("SERVICE_NAME", `echo-v${version}`),
      binding.text("VERSION", `v${version}`),
    ],
  };
}

/**
 * The ES modules of a built Worker in `dir`, the main module first, as capnp Module entries
 * relative to `from` (where the capnp file lives).
 */
export function modulesOf(dir, main, from) {
  const files = readdirSync(dir).filter((f) => /\.(m?js)$/.test(f));
  if (!files.includes(main)) throw new Error(`${dir} has no ${main}`);
  files.sort((a, b) => (a === main ? -1 : b === main ? 1 : a.localeCompare(b)));
  const other = readdirSync(dir).filter(
    (f) => !files.includes(f) && !f.endsWith(".map") && f !== "README.md",
  );
  if (other.length > 0) throw new Error(`${dir}: unsupported build output ${other.join(", ")}`);
  return files
    .map((f) => `(name = ${str(f)}, esModule = embed ${str(relative(from, join(dir, f)))})`)
    .join(", ");
}

/**
 * Writes `<dir>/workerd.capnp`. `services`: `{ name, modules, bindings }` Workers (modules from
 * `modulesOf`), or `{ name, network }` for an outbound network service. `sockets`:
 * `{ name, port, service }`. Workers reach the network through the service named `internet`
 * when one is given (workerd's default allows only public addresses). Durable Objects (the
 * router's BackendState) are stored on disk in `<dir>/durable-objects`, SQLite-backed.
 */
export function writeWorkerdConfig(dir, services, sockets) {
  const storage = join(dir, "durable-objects");
  mkdirSync(storage, { recursive: true });
  services = [...services, { name: "durable-objects", disk: storage }];
  const service = (s) =>
    s.network
      ? `(name = ${str(s.name)}, network = (allow = [${s.network.map(str).join(", ")}]))`
      : s.disk
        ? `(name = ${str(s.name)}, disk = (path = ${str(s.disk)}, writable = true))`
        : `(name = ${str(s.name)}, worker = (
    modules = [${s.modules}],
    compatibilityDate = ${str(COMPATIBILITY_DATE)},
    bindings = [${s.bindings.join(", ")}],
    ${s.extra ?? ""}
  ))`;
  const socket = (s) =>
    `(name = ${str(s.name)}, address = ${str(`127.0.0.1:${s.port}`)}, http = (), service = ${str(s.service)})`;
  const capnp = `# Generated by scripts/workerd.mjs; do not edit.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    ${services.map(service).join(",\n    ")},
  ],
  sockets = [
    ${sockets.map(socket).join(",\n    ")},
  ],
);
`;
  const path = join(dir, "workerd.capnp");
  writeFileSync(path, capnp);
  return path;
}

/** Whether something already listens on 127.0.0.1:`port`. */
export function listening(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** The last `lines` lines of a file (for error messages). */
export function tail(path, lines = 30) {
  try {
    return readFileSync(path, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/**
 * Starts `workerd serve` on the config in `dir` and resolves once every socket answers. Its
 * output goes to `<dir>/workerd.log`. Returns `{ pid, logPath, log(), stop() }`. `experimental`:
 * with `--experimental`, which workerd's Analytics Engine binding needs.
 */
export async function startWorkerd(
  dir,
  sockets,
  { timeoutMs = 30_000, experimental = false } = {},
) {
  for (const { name, port } of sockets) {
    if (await listening(port)) {
      throw new Error(`port ${port} (${name}) is already in use; stop what listens there`);
    }
  }
  const configPath = join(dir, "workerd.capnp");
  const logPath = join(dir, "workerd.log");
  const log = openSync(logPath, "w");
  const args = ["serve", ...(experimental ? ["--experimental"] : []), configPath, "config"];
  const child = spawn(WORKERD, args, {
    cwd: dir,
    stdio: ["ignore", log, log],
  });
  let exited = null;
  const exit = new Promise((resolve) =>
    child.on("exit", (code, signal) => resolve((exited = { code, signal }))),
  );
  const stop = async () => {
    if (exited) return;
    child.kill("SIGTERM");
    const timer = sleep(5000).then(() => "timeout");
    if ((await Promise.race([exit, timer])) === "timeout") child.kill("SIGKILL");
    await exit;
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited) {
      throw new Error(
        `workerd exited (${JSON.stringify(exited)}) before listening:\n${tail(logPath)}`,
      );
    }
    const up = await Promise.all(sockets.map(({ port }) => listening(port)));
    if (up.every(Boolean)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`workerd did not listen within ${timeoutMs / 1000} s:\n${tail(logPath)}`);
    }
    await sleep(100);
  }
  return {
    pid: child.pid,
    logPath,
    log: () => readFileSync(logPath, "utf8"),
    exited: () => exited,
    stop,
  };
}
