// The router under hostile input, in workerd: each test is named by the attack it stops. (Odd Host
// values need a real HTTP socket, since only the platform builds a URL from Host: see
// test/http/hostile-http.test.ts. The weight-0 pin is in split.test.ts.)
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { INDEX_KEY } from "../core/config/snapshot.ts";
import { handleMeshCall, routerFetch } from "../workers/router/app.ts";
import { callHttp, httpRoute, publish, refresh, service, type Echoed } from "./helpers/mesh.ts";
import { MemoryKV } from "./helpers/memory-kv.ts";
import { ADMIN_HEADERS, OPEN_ENTRY_FIELDS } from "./helpers/open-mesh.ts";

interface MeshErrorBody {
  error: { code: string; message: string };
}

interface Status {
  version: number | null;
  error: { message: string; version: number | null; issues: { message: string }[] } | null;
  destinations: Record<string, { entry: string | null; warnings: string[]; fallbackFor?: string }>;
}

const BACKENDS = [
  service("echo-v1", "ECHO_V1"),
  service("echo-v2", "ECHO_V2"),
  service("echo-v3", "ECHO_V3"),
];

const toV3 = (match: object) => ({ matches: [match], backendRefs: [{ name: "echo-v3" }] });
const catchAll = { backendRefs: [{ name: "echo-v1" }] };

async function echoed(response: Response): Promise<Echoed> {
  expect(response.status, await response.clone().text()).toBe(200);
  return (await response.json()) as Echoed;
}

async function meshError(response: Response, status: number, code: string): Promise<string> {
  expect(response.status).toBe(status);
  expect(response.headers.get("x-mesh-error")).toBe(code);
  expect(response.headers.get("content-type")).toBe("application/json");
  const body = (await response.json()) as MeshErrorBody;
  expect(body.error.code).toBe(code);
  return body.error.message;
}

afterEach(() => vi.restoreAllMocks());

/**
 * Writes `mesh/index` as `wrangler kv key put` would: the published index at `version`, with
 * some destinations pointed elsewhere. Returns the index it replaced.
 */
async function writeIndexByHand(
  version: number,
  changes: Record<string, string>,
): Promise<{ destinations: Record<string, string> }> {
  const index = JSON.parse((await env.MESH_CONFIG.get(INDEX_KEY))!) as {
    destinations: Record<string, string>;
  };
  const destinations = { ...index.destinations, ...changes };
  const publishedAt = new Date().toISOString();
  await env.MESH_CONFIG.put(
    INDEX_KEY,
    JSON.stringify({ schema: 1, version, publishedAt, destinations }),
  );
  return index;
}

describe("catastrophic regular expressions", () => {
  it("attack: (a+)+$ against 'aaaa…a!' answers at once, and a concurrent call is unaffected", async () => {
    await publish([
      ...BACKENDS,
      service("echo", "ECHO_V1"),
      service("other", "ECHO_V2"),
      httpRoute("evil", "echo", [
        toV3({ headers: [{ type: "RegularExpression", name: "x-evil", value: "(a+)+$" }] }),
        toV3({ path: { type: "RegularExpression", value: "/(a+)+$" } }),
        catchAll,
      ]),
    ]);
    const attack = `${"a".repeat(4000)}!`;
    const started = Date.now();
    const [header, path, unrelated] = await Promise.all([
      callHttp("echo", "/x", { headers: { "x-evil": attack } }),
      callHttp("echo", `/${attack}`),
      callHttp("other", "/unrelated"),
    ]);
    // No regex matched ('!' is not 'a'): both fell through to the catch-all.
    expect((await echoed(header)).service).toBe("echo-v1");
    expect((await echoed(path)).service).toBe("echo-v1");
    expect((await echoed(unrelated)).service).toBe("echo-v2");
    // A backtracking engine spends seconds at 30 characters and years at 4000; RE2 a millisecond.
    expect(Date.now() - started).toBeLessThan(5000);
    // And the patterns still match what they should.
    const matched = await callHttp("echo", "/x", { headers: { "x-evil": "aaaa" } });
    expect((await echoed(matched)).service).toBe("echo-v3");
  });
});

describe("path spellings", () => {
  const ADMIN = [
    ...BACKENDS,
    service("echo", "ECHO_V1"),
    httpRoute("admin", "echo", [
      toV3({ path: { type: "PathPrefix", value: "/admin" } }),
      {
        matches: [{ path: { value: "/v2" } }],
        filters: [
          {
            type: "URLRewrite",
            urlRewrite: { path: { type: "ReplacePrefixMatch", replacePrefixMatch: "/" } },
          },
        ],
        backendRefs: [{ name: "echo-v2" }],
      },
      catchAll,
    ]),
  ];

  it("attack: /%61dmin/x, //admin/x and /x/../admin reach the /admin rule, as /admin/x", async () => {
    await publish(ADMIN);
    for (const spelling of ["/%61dmin/x", "//admin/x", "/x/%2E%2E/admin/x", "/admin/./x"]) {
      const body = await echoed(await callHttp("echo", spelling));
      expect(body.service, spelling).toBe("echo-v3");
      expect(body.path, spelling).toBe("/admin/x");
    }
  });

  it("attack: /admin%2Fx is refused with bad_request, never sent to the catch-all", async () => {
    await publish(ADMIN);
    for (const spelling of ["/admin%2Fx", "/admin%2fx", "/admin%5Cx"]) {
      const message = await meshError(await callHttp("echo", spelling), 400, "bad_request");
      expect(message).toMatch(/encoded '[/\\]'/);
    }
  });

  it("PATH_ESCAPED_SLASHES=keep forwards %2F encoded, as part of its segment", async () => {
    const kv = new MemoryKV();
    kv.publish(ADMIN, 1);
    const keep = {
      ...env,
      MESH_CONFIG: kv as unknown as KVNamespace,
      PATH_ESCAPED_SLASHES: "keep",
    };
    const ctx = createExecutionContext();
    const response = await routerFetch(new Request("http://echo/admin%2fx"), keep, ctx, "http");
    await waitOnExecutionContext(ctx);
    const body = await echoed(response);
    // One segment 'admin%2Fx' is not the segment 'admin': the catch-all serves it.
    expect(body.service).toBe("echo-v1");
    expect(body.path).toBe("/admin%2Fx");
  });

  it("attack: /%2Emesh/status and //.mesh/status are the router's own, never forwarded", async () => {
    await publish(ADMIN);
    for (const spelling of ["/%2Emesh/status", "//.mesh/status", "/x/../.mesh/status"]) {
      const response = await callHttp("echo", spelling, { headers: ADMIN_HEADERS });
      expect(response.status, spelling).toBe(200);
      const status = (await response.json()) as { router?: string; service?: string };
      expect(status.router, spelling).toBe("meshwork-router");
      expect(status.service).toBeUndefined();
    }
    await meshError(await callHttp("echo", "/%2emesh/nothing"), 404, "no_route");
  });

  it("a configured path matches every spelling of it (values are normalised like requests)", async () => {
    await publish([
      ...BACKENDS,
      service("echo", "ECHO_V1"),
      httpRoute("encoded", "echo", [
        toV3({ path: { type: "Exact", value: "/caf%c3%a9" } }),
        toV3({ path: { type: "PathPrefix", value: "/%7Euser" } }),
        catchAll,
      ]),
    ]);
    for (const spelling of ["/caf%C3%A9", "/caf%c3%a9", "/café", "/~user/x", "/%7euser"]) {
      expect((await echoed(await callHttp("echo", spelling))).service, spelling).toBe("echo-v3");
    }
  });

  it("attack: a rewrite cannot forward into /.mesh/ (/v2/.mesh/status rewritten to /.mesh/status)", async () => {
    await publish(ADMIN);
    const message = await meshError(await callHttp("echo", "/v2/.mesh/status"), 400, "bad_request");
    expect(message).toMatch(/gives \/\.mesh\/status, which is reserved for the mesh/);
    expect((await echoed(await callHttp("echo", "/v2/status"))).path).toBe("/status");
  });
});

describe("failures in the contract's shape", () => {
  it("a bug inside the router is internal_error (500), logged with the request id, not upstream_error", async () => {
    await publish([service("echo", "ECHO_V1")]);
    const logged = vi.spyOn(console, "error").mockImplementation(() => {});
    const ctx = createExecutionContext();
    const broken = () => {
      throw new TypeError("boom: a bug in a layer");
    };
    const response = await handleMeshCall(
      new Request("http://echo/", { headers: { "x-request-id": "req-42" } }),
      env,
      ctx,
      { random: broken },
    );
    await waitOnExecutionContext(ctx);
    const message = await meshError(response, 500, "internal_error");
    expect(message).toMatch(/bug in the router/);
    expect(response.headers.get("x-request-id")).toBe("req-42");
    expect(logged).toHaveBeenCalledTimes(1);
    const line = JSON.parse(String(logged.mock.calls[0]![0])) as Record<string, string>;
    expect(line).toMatchObject({ event: "internal_error", requestId: "req-42" });
    expect(line.error).toMatch(/TypeError: boom/);
  });
});

describe("bad config written straight into KV", () => {
  it("attack: a 10 MB annotation in a hand-written entry is refused before parsing; the last good version serves", async () => {
    const good = await publish([...BACKENDS, service("echo", "ECHO_V1")]);
    const huge = {
      schema: 1,
      service: {
        ...service("echo", "ECHO_V2"),
        metadata: { name: "echo", annotations: { note: "x".repeat(10 * 1024 * 1024) } },
      },
      routes: [],
      backends: [],
    };
    await env.MESH_CONFIG.put("mesh/dest/echo/huge", JSON.stringify(huge));
    await writeIndexByHand(good + 1, { echo: "mesh/dest/echo/huge" });
    const status = (await refresh()) as unknown as Status;
    expect(status.version).toBe(good);
    expect(status.error?.message).toMatch(
      /mesh\/dest\/echo\/huge is at least \d+ bytes; the limit is 2097152/,
    );
    expect((await echoed(await callHttp("echo", "/"))).service).toBe("echo-v1");
  });

  it("attack: an index naming a missing entry is a top-level error, and the destination keeps its last good entry", async () => {
    const good = await publish([...BACKENDS, service("payments", "ECHO_V2")]);
    const index = await writeIndexByHand(good + 1, { payments: "mesh/dest/payments/missing" });
    // A version this isolate applies at once (it has not served payments yet) …
    expect(((await refresh()) as unknown as Status).version).toBe(good + 1);
    // … and the first call for payments finds the entry missing: it keeps the previous one.
    expect((await echoed(await callHttp("payments", "/"))).service).toBe("echo-v2");
    const status = (await refresh()) as unknown as Status;
    expect(status.error?.message).toMatch(
      /KV key mesh\/dest\/payments\/missing does not exist; 'payments' keeps the entry of version \d+/,
    );
    expect(status.destinations.payments).toMatchObject({
      entry: index.destinations.payments,
      fallbackFor: "mesh/dest/payments/missing",
    });
    // Once the entry appears, the next check picks it up and the error clears.
    const fixed = {
      schema: 1,
      service: service("payments", "ECHO_V3"),
      routes: [],
      backends: [],
      ...OPEN_ENTRY_FIELDS,
    };
    await env.MESH_CONFIG.put("mesh/dest/payments/missing", JSON.stringify(fixed));
    const after = (await refresh()) as unknown as Status;
    expect(after.error).toBeNull();
    expect((await echoed(await callHttp("payments", "/"))).service).toBe("echo-v3");
  });

  it("an endpoint binding the router lacks (published around the check) is reported in status", async () => {
    await publish([...BACKENDS, service("payments", "PAYMENTS_V1", "PAYMENTS_V9")]);
    await callHttp("payments", "/");
    const status = (await refresh()) as unknown as Status;
    expect(status.destinations.payments?.warnings).toContain(
      "Service 'payments': the router has no service binding 'PAYMENTS_V9'",
    );
  });
});
