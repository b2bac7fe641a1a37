// The hot path never awaits KV once warm: counted with an instrumented KV binding.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { configFor, handleMeshCall } from "../workers/router/app.ts";
import { httpRoute, service } from "./helpers/mesh.ts";
import { MemoryKV } from "./helpers/memory-kv.ts";

const MESH = [
  service("echo", "ECHO_V1"),
  service("echo-v1", "ECHO_V1"),
  service("echo-v2", "ECHO_V2"),
  httpRoute("split", "echo", [
    {
      backendRefs: [
        { name: "echo-v1", weight: 90 },
        { name: "echo-v2", weight: 10 },
      ],
    },
  ]),
];

async function call(routerEnv: Env): Promise<{ status: number; ctx: ExecutionContext }> {
  const ctx = createExecutionContext();
  const response = await handleMeshCall(new Request("http://echo/x"), routerEnv, ctx);
  await response.arrayBuffer();
  return { status: response.status, ctx };
}

/** A router environment whose KV is an instrumented in-memory copy holding MESH at version 1. */
function meshOnMemoryKV(refreshSeconds: string): { kv: MemoryKV; routerEnv: Env } {
  const kv = new MemoryKV();
  kv.publish(MESH, 1);
  const routerEnv = {
    ...env,
    MESH_CONFIG: kv as unknown as KVNamespace,
    CONFIG_REFRESH_SECONDS: refreshSeconds,
  };
  return { kv, routerEnv };
}

describe("hot path", () => {
  it("reads KV only on an isolate's first call for a destination", async () => {
    const { kv, routerEnv } = meshOnMemoryKV("3600");

    expect((await call(routerEnv)).status).toBe(200);
    expect(kv.reads).toBe(2); // the index, then the echo entry: the cold start

    for (let i = 0; i < 200; i++) {
      const { status, ctx } = await call(routerEnv);
      expect(status).toBe(200);
      await waitOnExecutionContext(ctx);
    }
    expect(kv.reads).toBe(2);
    expect(configFor(routerEnv).status().kvReads).toEqual({ awaited: 2, background: 0 });
  });

  it("refreshes in the background: a call does not wait for a slow KV read", async () => {
    const { kv, routerEnv } = meshOnMemoryKV("0");
    await call(routerEnv);
    const coldReads = kv.reads;

    kv.hold(); // every KV read from now on hangs until resume()
    const { status, ctx } = await call(routerEnv);
    expect(status).toBe(200); // answered while the refresh's read is still hanging
    expect(kv.reads).toBe(coldReads + 1);
    kv.publish([service("echo", "ECHO_V2")], 2);
    kv.resume();
    await waitOnExecutionContext(ctx);
    expect(configFor(routerEnv).status()).toMatchObject({
      version: 2,
      kvReads: { awaited: 2, background: 2 },
    });
  });
});
