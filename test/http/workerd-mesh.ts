// A mesh on the workerd binary, reached over real HTTP sockets, for tests that need what only the
// platform does: build the request URL from a raw Host header, parse raw request lines. The router
// and echo are bundled with esbuild, the config is published into a snapshot the router reads
// through its real KV binding, and workerd's own log is kept so a test can look for uncaught
// errors in it.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:net";
import { build } from "esbuild";
import { buildSnapshot } from "../../core/config/snapshot.ts";
import { validateResources } from "../../core/config/validate.ts";
import { withOpenMesh } from "../helpers/open-mesh.ts";
import {
  binding,
  echoService,
  modulesOf,
  routerService,
  startWorkerd,
  writeWorkerdConfig,
} from "../../scripts/workerd.mjs";

const ROOT = join(import.meta.dirname, "..", "..");

export interface WorkerdMesh {
  port: number;
  /** With `routers: 2`: the second router's port (its own isolate, the same Durable Objects). */
  secondPort: number | undefined;
  /** workerd's output so far. */
  log(): string;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function bundle(entry: string, outdir: string): Promise<void> {
  mkdirSync(outdir, { recursive: true });
  await build({
    entryPoints: [join(ROOT, entry)],
    outfile: join(outdir, "index.js"),
    bundle: true,
    format: "esm",
    target: "es2024",
    external: ["cloudflare:*"],
    logLevel: "warning",
  });
}

/**
 * Starts router + echo-v1/v2 on workerd with `resources` published as version 1 (in an open mesh
 * unless they decide peer authentication and the default action: helpers/open-mesh.ts); with
 * `routers: 2`, a second router service beside the first, sharing its Durable Objects.
 */
export async function startWorkerdMesh(
  resources: unknown[],
  vars: Record<string, string> = {},
  { routers = 1 }: { routers?: 1 | 2 } = {},
): Promise<WorkerdMesh> {
  const validated = validateResources(withOpenMesh(resources));
  if (!validated.ok) throw new Error(`test config is invalid: ${JSON.stringify(validated.issues)}`);
  const snapshot = buildSnapshot(validated.value, 1, new Date());
  if (!snapshot.ok) throw new Error(JSON.stringify(snapshot.issues));

  const dir = mkdtempSync(join(tmpdir(), "meshwork-workerd-"));
  await Promise.all([
    bundle("workers/router/index.ts", join(dir, "router")),
    bundle("examples/echo/index.ts", join(dir, "echo")),
    bundle("test/fixtures/snapshot-kv.ts", join(dir, "kv")),
  ]);
  writeFileSync(
    join(dir, "snapshot.json"),
    JSON.stringify(Object.fromEntries(snapshot.writes.map((w) => [w.key, w.value]))),
  );
  const port = await freePort();
  const secondPort = routers === 2 ? await freePort() : undefined;
  const echo = (v: number) => echoService(modulesOf(join(dir, "echo"), "index.js", dir), v);
  const sockets = [{ name: "router", port, service: "router" }];
  if (secondPort !== undefined) {
    sockets.push({ name: "router-b", port: secondPort, service: "router-b" });
  }
  const routerModules = modulesOf(join(dir, "router"), "index.js", dir);
  const routerVars = { CONFIG_REFRESH_SECONDS: "3600", ...vars };
  writeWorkerdConfig(
    dir,
    [
      routerService(routerModules, { kv: "kv", vars: routerVars }),
      ...(secondPort === undefined
        ? []
        : [
            routerService(routerModules, {
              kv: "kv",
              vars: routerVars,
              name: "router-b",
              backendStateFrom: "router",
            }),
          ]),
      echo(1),
      echo(2),
      {
        name: "kv",
        modules: modulesOf(join(dir, "kv"), "index.js", dir),
        bindings: [binding.jsonFile("SNAPSHOT", "snapshot.json")],
      },
      // Outbound fetches (URL endpoints) may reach loopback, as in local development.
      { name: "internet", network: ["public", "local", "private"] },
    ],
    sockets,
  );
  const workerd = await startWorkerd(dir, sockets);
  return {
    port,
    secondPort,
    log: workerd.log,
    async stop() {
      await workerd.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface RawResponse {
  status: number;
  headers: Map<string, string>;
  body: string;
}

function decodeChunked(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let offset = 0;
  for (;;) {
    const lineEnd = body.indexOf("\r\n", offset);
    if (lineEnd < 0) break;
    const size = parseInt(body.subarray(offset, lineEnd).toString("latin1"), 16);
    if (!(size > 0)) break;
    parts.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
    offset = lineEnd + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

/**
 * Sends `head` (request line and headers, without the final blank line) and `body` as bytes on a
 * fresh connection, exactly as given — no client library to refuse or rewrite an odd Host — and
 * parses the answer. `Connection: close` is added so the answer ends with the connection.
 */
export function rawRequest(port: number, head: string, body = ""): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port }, () => {
      socket.write(`${head}\r\nConnection: close\r\n\r\n${body}`, "latin1");
    });
    const chunks: Buffer[] = [];
    socket.setTimeout(10_000, () =>
      socket.destroy(new Error(`no answer to ${head.split("\r\n")[0]}`)),
    );
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", reject);
    socket.on("end", () => {
      const raw = Buffer.concat(chunks);
      const split = raw.indexOf("\r\n\r\n");
      if (split < 0) return reject(new Error(`no HTTP answer: ${raw.toString("latin1")}`));
      const [statusLine, ...lines] = raw.subarray(0, split).toString("latin1").split("\r\n");
      const headers = new Map<string, string>();
      for (const line of lines) {
        const colon = line.indexOf(":");
        headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
      let payload: Buffer = raw.subarray(split + 4);
      if (headers.get("transfer-encoding")?.toLowerCase() === "chunked")
        payload = decodeChunked(payload);
      resolve({
        status: Number(statusLine!.split(" ")[1]),
        headers,
        body: payload.toString("utf8"),
      });
    });
  });
}
