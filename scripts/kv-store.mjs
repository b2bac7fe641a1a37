// The router's KV namespace (MESH_CONFIG) as a SnapshotStore (core/config/publish.ts), two ways:
//  - local: the state `wrangler dev --persist-to DIR` (and so `npm start`) reads, opened the way
//    `wrangler kv … --local` opens it — Miniflare on DIR/v3 with the namespace id from
//    wrangler.toml — but once for the whole publish instead of once per command;
//  - remote: the deployed namespace, through `wrangler kv … --remote` (wrangler holds the
//    account credentials).
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, ROUTER_CONFIG, WRANGLER, wranglerEnv } from "./workers.mjs";

/** A KV operation that failed, with what the backend said. */
export class KvError extends Error {}

// Runs inside the local workerd: bulk operations cross from Node once per call, not once per
// key (8,000 entries take seconds this way, minutes one request each).
const LOCAL_KV_WORKER = `
export default {
  async fetch(request, env) {
    const { op, keys, writes, prefix, key } = await request.json();
    const batches = async (items, run) => {
      for (let i = 0; i < items.length; i += 256) await Promise.all(items.slice(i, i + 256).map(run));
    };
    if (op === "get") return Response.json({ value: await env.KV.get(key, "text") });
    if (op === "put") {
      await batches(writes, (w) => env.KV.put(w.key, w.value));
      return Response.json({});
    }
    if (op === "delete") {
      await batches(keys, (k) => env.KV.delete(k));
      return Response.json({});
    }
    if (op === "list") {
      const names = [];
      let cursor;
      do {
        const page = await env.KV.list({ prefix, cursor });
        for (const k of page.keys) names.push(k.name);
        cursor = page.list_complete ? undefined : page.cursor;
      } while (cursor);
      return Response.json({ keys: names });
    }
    return new Response("unknown operation", { status: 400 });
  },
};`;

/** Opens the local state under `persistTo`; `close()` when done. */
export async function openLocalStore(persistTo, namespaceId) {
  // Loaded here, not at the top: commands that never open local state start without it.
  const { Miniflare, convertV4MiniflareOptions } = await import("miniflare");
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      modules: true,
      script: LOCAL_KV_WORKER,
      resourcePersistencePath: join(persistTo, "v3"),
      kvNamespaces: { KV: namespaceId },
    }),
  );
  const call = async (body) => {
    const response = await mf.dispatchFetch("http://local-kv/", {
      method: "POST",
      body: JSON.stringify(body),
    });
    if (!response.ok) {
      throw new KvError(`local KV in ${persistTo}: ${response.status} ${await response.text()}`);
    }
    return response.json();
  };
  return {
    where: "local",
    // One process's SQLite-backed state: a listing shows every write and delete at once.
    consistentList: true,
    get: async (key) => (await call({ op: "get", key })).value,
    list: async (prefix) => (await call({ op: "list", prefix })).keys,
    putMany: async (writes) => void (writes.length > 0 && (await call({ op: "put", writes }))),
    deleteMany: async (keys) => void (keys.length > 0 && (await call({ op: "delete", keys }))),
    close: () => mf.dispose(),
  };
}

function wrangler(args) {
  const result = spawnSync(process.execPath, [WRANGLER, ...args], {
    cwd: ROOT,
    env: wranglerEnv(),
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
  });
  if (result.status !== 0) {
    const output = `${result.stdout ?? ""}${result.stderr ?? ""}${result.error ?? ""}`.trim();
    throw new KvError(`wrangler ${args.slice(0, 3).join(" ")} failed:\n${output}`);
  }
  return result.stdout;
}

/** The deployed namespace, through wrangler. */
export function openRemoteStore() {
  const target = ["--binding", "MESH_CONFIG", "-c", ROUTER_CONFIG, "--remote"];
  const dir = mkdtempSync(join(tmpdir(), "meshwork-kv-"));
  let files = 0;
  const bulk = (command, payload, extra = []) => {
    const file = join(dir, `${command}-${files++}.json`);
    writeFileSync(file, JSON.stringify(payload));
    return wrangler(["kv", "bulk", command, file, ...target, ...extra]);
  };
  // wrangler may print warnings before the JSON: it starts at the first line opening with { or [.
  const jsonIn = (text) => JSON.parse(text.slice(text.search(/^[[{]/m)));
  return {
    where: "remote",
    // A real read: `kv bulk get` answers null for a missing key, where `kv key get` prints
    // "Value not found" like a value, and a listing may lag behind writes.
    async get(key) {
      const values = jsonIn(bulk("get", [key]));
      const found = values[key];
      return found !== null && typeof found === "object" ? (found.value ?? null) : (found ?? null);
    },
    async list(prefix) {
      const text = wrangler(["kv", "key", "list", "--prefix", prefix, ...target]);
      return jsonIn(text).map((k) => k.name);
    },
    putMany: async (writes) => void (writes.length > 0 && bulk("put", writes)),
    deleteMany: async (keys) => void (keys.length > 0 && bulk("delete", keys, ["--force"])),
    close: async () => rmSync(dir, { recursive: true, force: true }),
  };
}
