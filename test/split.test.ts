// Traffic splitting through the whole router: weights converge (fixed seed), stickiness holds
// while weights move, the pin header overrides, and Cookie sessions are issued.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { seededRandom, type RandomSource } from "../core/random.ts";
import { handleMeshCall } from "../workers/router/app.ts";
import { callHttp, httpRoute, publish, service, type Echoed } from "./helpers/mesh.ts";

const SERVICES = [
  service("echo", "ECHO_V1"),
  service("echo-v1", "ECHO_V1"),
  service("echo-v2", "ECHO_V2"),
  service("echo-v3", "ECHO_V3"),
];

function split(v1: number, v2: number, session?: object) {
  return httpRoute("echo-split", "echo", [
    {
      backendRefs: [
        { name: "echo-v1", weight: v1 },
        { name: "echo-v2", weight: v2 },
        { name: "echo-v3", weight: 0 },
      ],
      ...(session ? { sessionPersistence: session } : {}),
    },
  ]);
}

async function callWith(random: RandomSource, headers: Record<string, string> = {}) {
  const ctx = createExecutionContext();
  const response = await handleMeshCall(
    new Request("http://echo.mesh/split", { headers }),
    env,
    ctx,
    { random },
  );
  await waitOnExecutionContext(ctx);
  return response;
}

describe("weighted split", () => {
  it("converges on 90/10 within statistical bounds (fixed seed), never picking weight 0", async () => {
    await publish([...SERVICES, split(90, 10)]);
    const random = seededRandom(2026);
    const n = 1000;
    const seen: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const body = (await (await callWith(random)).json()) as Echoed;
      seen[body.service] = (seen[body.service] ?? 0) + 1;
    }
    // 5 standard deviations of a binomial(1000, 0.1): 100 ± 47.
    expect(seen["echo-v2"]).toBeGreaterThan(53);
    expect(seen["echo-v2"]).toBeLessThan(147);
    expect((seen["echo-v1"] ?? 0) + (seen["echo-v2"] ?? 0)).toBe(n);
    expect(seen["echo-v3"]).toBeUndefined();
  });

  it("X-Mesh-Backend pins a call to a named backend, even one at weight 0", async () => {
    await publish([...SERVICES, split(100, 0)]);
    for (const backend of ["echo-v2", "echo-v3"]) {
      const response = await callHttp("echo", "/", { headers: { "x-mesh-backend": backend } });
      const body = (await response.json()) as Echoed;
      expect(body.service).toBe(backend);
      // The pin is the mesh's; the destination does not see it.
      expect(body.headers["x-mesh-backend"]).toBeUndefined();
    }
  });
});

describe("sticky sessions", () => {
  const users = Array.from({ length: 120 }, (_, i) => `user-${i}`);

  async function placement(): Promise<Map<string, string>> {
    const placed = new Map<string, string>();
    for (const user of users) {
      const response = await callHttp("echo", "/", { headers: { "x-user": user } });
      placed.set(user, ((await response.json()) as Echoed).service);
    }
    return placed;
  }

  it("keeps each user on one version while the canary's weight grows", async () => {
    const session = { type: "Header", sessionName: "x-user" };
    await publish([...SERVICES, split(90, 10, session)]);
    const first = await placement();
    // Same user, same answer, on repeat.
    expect(await placement()).toEqual(first);
    const onCanary = [...first].filter(([, s]) => s === "echo-v2").map(([u]) => u);
    expect(onCanary.length).toBeGreaterThan(0);

    await publish([...SERVICES, split(50, 50, session)]);
    const second = await placement();
    for (const user of onCanary) expect(second.get(user)).toBe("echo-v2");
    const moved = [...second].filter(([u, s]) => first.get(u) !== s);
    // Only stable users move, and only towards the canary.
    expect(moved.every(([, s]) => s === "echo-v2")).toBe(true);
    expect(moved.length).toBeGreaterThan(0);
  });

  it("issues a session cookie when the Cookie session is absent, then honours it", async () => {
    await publish([...SERVICES, split(50, 50, { type: "Cookie", sessionName: "mesh-user" })]);
    const first = await callHttp("echo", "/");
    const cookie = first.headers.get("set-cookie");
    expect(cookie).toMatch(/^mesh-user=[0-9a-f-]+; Path=\/; HttpOnly; SameSite=Lax$/);
    const served = ((await first.json()) as Echoed).service;
    const value = cookie!.split(";")[0]!;
    for (let i = 0; i < 10; i++) {
      const again = await callHttp("echo", "/", { headers: { cookie: `other=1; ${value}` } });
      expect(again.headers.get("set-cookie")).toBeNull();
      expect(((await again.json()) as Echoed).service).toBe(served);
    }
  });
});
