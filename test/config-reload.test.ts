// Config from KV: bad config (as `wrangler kv key put` could write it) is refused, the router
// keeps serving the last good version, and /.mesh/status says what was wrong.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { INDEX_KEY } from "../core/config/snapshot.ts";
import { configFor, handleMeshCall, routerFetch } from "../workers/router/app.ts";
import { callHttp, publish, refresh, service, type Echoed } from "./helpers/mesh.ts";
import { MemoryKV } from "./helpers/memory-kv.ts";
import { ADMIN_HEADERS } from "./helpers/open-mesh.ts";

interface Status {
  version: number | null;
  error: {
    message: string;
    version: number | null;
    issues: { path: string; message: string }[];
  } | null;
  destinations: Record<string, { error: unknown; entry: string | null }>;
}

async function servedBy(): Promise<string> {
  const response = await callHttp("echo", "/");
  expect(response.status).toBe(200);
  return ((await response.json()) as Echoed).service;
}

describe("bad config in KV", () => {
  it("keeps the last good version and reports each kind of error", async () => {
    const good = await publish([service("echo", "ECHO_V1")]);
    expect(await servedBy()).toBe("echo-v1");

    // Not JSON at all.
    await env.MESH_CONFIG.put(INDEX_KEY, "{ this is not json");
    let status = (await refresh()) as unknown as Status;
    expect(status.version).toBe(good);
    expect(status.error?.message).toMatch(/mesh\/index is not valid JSON/);
    expect(await servedBy()).toBe("echo-v1");

    // JSON, but not a valid index.
    await env.MESH_CONFIG.put(
      INDEX_KEY,
      JSON.stringify({ schema: 1, version: 50, publishedAt: "yesterday", destinations: {} }),
    );
    status = (await refresh()) as unknown as Status;
    expect(status.version).toBe(good);
    expect(status.error?.issues.map((i) => i.path)).toContain("mesh/index.publishedAt");

    // A valid index naming a hand-written entry with a bad weight.
    const badKey = "mesh/dest/echo/hand-written";
    await env.MESH_CONFIG.put(
      badKey,
      JSON.stringify({
        schema: 1,
        service: service("echo", "ECHO_V2"),
        routes: [
          {
            apiVersion: "gateway.networking.k8s.io/v1",
            kind: "HTTPRoute",
            metadata: { name: "bad" },
            spec: {
              parentRefs: [{ name: "echo" }],
              rules: [{ backendRefs: [{ name: "echo", weight: -5 }] }],
            },
          },
        ],
        backends: [],
      }),
    );
    await env.MESH_CONFIG.put(
      INDEX_KEY,
      JSON.stringify({
        schema: 1,
        version: 51,
        publishedAt: new Date().toISOString(),
        destinations: { echo: badKey },
      }),
    );
    status = (await refresh()) as unknown as Status;
    expect(status.version).toBe(good);
    expect(status.error?.version).toBe(51);
    expect(status.error?.message).toBe(`${badKey} failed validation`);
    expect(status.error?.issues[0]?.path).toBe(
      `${badKey}.routes[0].spec.rules[0].backendRefs[0].weight`,
    );
    expect(await servedBy()).toBe("echo-v1");

    // A good publish clears the error and applies.
    const next = await publish([service("echo", "ECHO_V2")]);
    status = (await refresh()) as unknown as Status;
    expect(status.version).toBe(next);
    expect(status.error).toBeNull();
    expect(await servedBy()).toBe("echo-v2");
  });

  it("a cold isolate with no valid config answers no_route naming the problem", async () => {
    const kv = new MemoryKV();
    kv.data.set(INDEX_KEY, "[]");
    const broken = { ...env, MESH_CONFIG: kv as unknown as KVNamespace };
    const ctx = createExecutionContext();
    const response = await handleMeshCall(new Request("http://echo/"), broken, ctx);
    await waitOnExecutionContext(ctx);
    expect(response.status).toBe(404);
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("no_route");
    expect(body.error.message).toMatch(
      /no usable config for service 'echo': mesh\/index failed validation/,
    );

    // Calls right after a failed read answer from the recorded error instead of waiting on KV.
    const readsAfterFailure = kv.reads;
    for (let i = 0; i < 20; i++) {
      const again = await handleMeshCall(
        new Request("http://echo/"),
        broken,
        createExecutionContext(),
      );
      expect(again.status).toBe(404);
    }
    expect(kv.reads).toBe(readsAfterFailure);
  });

  it("a destination whose entry is broken answers no_route naming the entry, without re-reading KV per call", async () => {
    const kv = new MemoryKV();
    kv.data.set(
      INDEX_KEY,
      JSON.stringify({
        schema: 1,
        version: 3,
        publishedAt: new Date().toISOString(),
        destinations: { echo: "mesh/dest/echo/broken" },
      }),
    );
    kv.data.set(
      "mesh/dest/echo/broken",
      JSON.stringify({ schema: 1, service: {}, routes: [], backends: [] }),
    );
    const broken = { ...env, MESH_CONFIG: kv as unknown as KVNamespace };
    for (let i = 0; i < 10; i++) {
      const response = await handleMeshCall(
        new Request("http://echo/"),
        broken,
        createExecutionContext(),
      );
      expect(response.status).toBe(404);
      const body = (await response.json()) as { error: { message: string } };
      expect(body.error.message).toBe(
        "no usable config for service 'echo': mesh/dest/echo/broken failed validation",
      );
    }
    expect(kv.reads).toBe(2);
  });
});

describe("entries that are not in KV yet", () => {
  it("a new version whose entry for a warm destination is missing waits, and applies once it appears", async () => {
    const kv = new MemoryKV();
    kv.publish([service("echo", "ECHO_V1")], 1);
    const routerEnv = { ...env, MESH_CONFIG: kv as unknown as KVNamespace };
    const call = async () => {
      const ctx = createExecutionContext();
      const response = await handleMeshCall(new Request("http://echo/"), routerEnv, ctx);
      await waitOnExecutionContext(ctx);
      return ((await response.json()) as Echoed).service;
    };
    expect(await call()).toBe("echo-v1"); // echo is warm on version 1

    // Version 2's index arrives before its entry (KV reaches locations key by key).
    const next = new MemoryKV();
    next.publish([service("echo", "ECHO_V2")], 2);
    const entryKey = [...next.data.keys()].find((key) => key.startsWith("mesh/dest/echo/"))!;
    kv.data.set(INDEX_KEY, next.data.get(INDEX_KEY)!);
    const cache = configFor(routerEnv);
    await cache.refreshNow();
    expect(cache.status()).toMatchObject({
      version: 1,
      error: { version: 2, message: `KV key ${entryKey} does not exist` },
    });
    expect(await call()).toBe("echo-v1");

    // The entry arrives: the next check applies version 2 (the index text did not change).
    kv.data.set(entryKey, next.data.get(entryKey)!);
    await cache.refreshNow();
    expect(cache.status()).toMatchObject({ version: 2, error: null });
    expect(await call()).toBe("echo-v2");
  });
});

describe("/.mesh/status", () => {
  it("keeps appliedAt while the version stays the same, and moves it when a version is applied", async () => {
    const version = await publish([service("echo", "ECHO_V1")]);
    const first = (await refresh()) as unknown as { version: number; appliedAt: string };
    expect(first.version).toBe(version);
    await new Promise((done) => setTimeout(done, 20));
    const again = (await refresh()) as unknown as { appliedAt: string; lastCheckAt: string };
    expect(again.appliedAt).toBe(first.appliedAt);
    await new Promise((done) => setTimeout(done, 20));
    await publish([service("echo", "ECHO_V2")]);
    const next = (await refresh()) as unknown as { appliedAt: string };
    expect(Date.parse(next.appliedAt)).toBeGreaterThan(Date.parse(first.appliedAt));
  });

  it("loads the config on a cold isolate instead of showing no version", async () => {
    const kv = new MemoryKV();
    kv.publish([service("echo", "ECHO_V1")], 12);
    const fresh = { ...env, MESH_CONFIG: kv as unknown as KVNamespace };
    const response = await routerFetch(
      new Request("http://anything/.mesh/status", { headers: ADMIN_HEADERS }),
      fresh,
      createExecutionContext(),
      "http",
    );
    expect(((await response.json()) as Status).version).toBe(12);
  });
});
