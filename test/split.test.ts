// Traffic splitting through the whole router: weights converge (fixed seed), stickiness holds
// while weights move, the pin header overrides only where the destination allows it, and Cookie
// sessions are issued.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { seededRandom, type RandomSource } from "../core/random.ts";
import { handleMeshCall } from "../workers/router/app.ts";
import { callAs, callHttp, httpRoute, publish, service, type Echoed } from "./helpers/mesh.ts";

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
});

/** `echo` with backend pinning configured on the destination Service. */
function pinnable(backendPinning: object) {
  const echo = service("echo", "ECHO_V1");
  return { ...echo, spec: { ...echo.spec, backendPinning } };
}

async function pinnedTo(backend: string, caller?: string): Promise<Echoed> {
  const init = { headers: { "x-mesh-backend": backend } };
  const response = caller
    ? await callAs(caller, "echo", "/", init)
    : await callHttp("echo", "/", init);
  expect(response.status).toBe(200);
  const body = (await response.json()) as Echoed;
  // A pin is the mesh's business, honoured or not: the destination never sees the header.
  expect(body.headers["x-mesh-backend"]).toBeUndefined();
  return body;
}

describe("backend pinning (X-Mesh-Backend)", () => {
  it("attack: a caller cannot pin a weight-0 backend (or any backend) when pinning is off", async () => {
    await publish([...SERVICES.slice(1), service("echo", "ECHO_V1"), split(100, 0)]);
    for (let i = 0; i < 20; i++) {
      expect((await pinnedTo("echo-v3")).service).toBe("echo-v1");
      expect((await pinnedTo("echo-v2")).service).toBe("echo-v1");
    }
  });

  it("pins to a listed backend with weight above 0 once the destination enables it", async () => {
    await publish([...SERVICES.slice(1), pinnable({ enabled: true }), split(100, 0)]);
    // echo-v2 has weight 0 in split(100, 0), echo-v3 too: still refused without allowZeroWeight.
    expect((await pinnedTo("echo-v3")).service).toBe("echo-v1");
    await publish([...SERVICES.slice(1), pinnable({ enabled: true }), split(50, 50)]);
    for (let i = 0; i < 10; i++) expect((await pinnedTo("echo-v2")).service).toBe("echo-v2");
    // A name that is not a backend of the matched rule is ignored.
    expect(["echo-v1", "echo-v2"]).toContain((await pinnedTo("payments-v1")).service);
  });

  it("pins to a weight-0 backend only with allowZeroWeight", async () => {
    await publish([
      ...SERVICES.slice(1),
      pinnable({ enabled: true, allowZeroWeight: true }),
      split(100, 0),
    ]);
    expect((await pinnedTo("echo-v3")).service).toBe("echo-v3");
  });

  it("honours only the callers it names (binding-attested), never an anonymous HTTP call", async () => {
    await publish([
      ...SERVICES.slice(1),
      pinnable({ enabled: true, allowZeroWeight: true, callers: ["qa"] }),
      split(100, 0),
    ]);
    expect((await pinnedTo("echo-v3", "qa")).service).toBe("echo-v3");
    expect((await pinnedTo("echo-v3", "orders")).service).toBe("echo-v1");
    expect((await pinnedTo("echo-v3")).service).toBe("echo-v1");
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
