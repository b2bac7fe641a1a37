// Who may use the admin API: the ADMIN_TOKEN, or a JWT-SVID from the real identity Worker of a
// service in ADMIN_SERVICES (read and write) or VIEWER_SERVICES (read) — or with a role claim
// (admin-roles.test.ts). A caller with no valid credential gets 401; a valid SVID with no role,
// and a viewer writing, 403; neither changes anything, both are in the audit log, and the answer
// says no more than the code.
import { describe, expect, it } from "vitest";
import { spiffeId } from "../../core/identity/names.ts";
import {
  ADMIN,
  apply,
  auditEntries,
  call,
  currentVersion,
  expectJson,
  service,
  svidFor,
  TRUST_DOMAIN,
  type ErrorAnswer,
  type WriteAnswer,
} from "./helpers.ts";
import { POLICY_ADMIN_TOKEN } from "./constants.ts";

const GENERIC_401 =
  "the admin API needs Authorization: Bearer <ADMIN_TOKEN>, or an admin service's JWT-SVID in X-Mesh-SVID";

async function expectRefused(
  response: Promise<Response>,
  status: 401 | 403,
): Promise<ErrorAnswer["error"]> {
  const answer = await response;
  expect(answer.status).toBe(status);
  if (status === 401) expect(answer.headers.get("www-authenticate")).toMatch(/^Bearer /);
  return ((await answer.json()) as ErrorAnswer).error;
}

describe("without an admin credential", () => {
  it("every /v1 endpoint answers 401 unauthenticated, saying no more", async () => {
    for (const [method, path] of [
      ["GET", "/v1/config"],
      ["GET", "/v1/status"],
      ["GET", "/v1/audit"],
      ["GET", "/v1/history"],
      ["POST", "/v1/apply"],
      ["DELETE", "/v1/resources/Service/x"],
      ["GET", "/v1/not-an-endpoint"],
    ] as const) {
      const error = await expectRefused(call(method, path, { headers: {} }), 401);
      expect(error).toEqual({ code: "unauthenticated", message: GENERIC_401 });
    }
  });

  it("a write changes nothing and is recorded in the audit log, without the token presented", async () => {
    const before = await currentVersion();
    const guesses: Record<string, string>[] = [
      { authorization: "Bearer wrong-guess-wrong-guess-0000" },
      { authorization: `Bearer ${POLICY_ADMIN_TOKEN}x` },
      { authorization: `Basic ${btoa(`admin:${POLICY_ADMIN_TOKEN}`)}` },
      { authorization: `Bearer  ${POLICY_ADMIN_TOKEN} extra` },
      {},
    ];
    for (const headers of guesses) {
      await expectRefused(
        call("POST", "/v1/apply", { body: { resources: [service("intruder")] }, headers }),
        401,
      );
    }
    expect(await currentVersion()).toBe(before);
    await expectJson(call("GET", "/v1/resources/Service/intruder"), 404);
    const refusals = (await auditEntries(guesses.length)).reverse();
    expect(refusals.map((e) => [e.actor, e.action, e.outcome, e.version])).toEqual(
      guesses.map(() => ["anonymous", "POST /v1/apply", "unauthenticated", before]),
    );
    expect(refusals.map((e) => e.detail)).toEqual([
      "a bearer token that is not ADMIN_TOKEN",
      "a bearer token that is not ADMIN_TOKEN",
      "a bearer token that is not ADMIN_TOKEN",
      "a bearer token that is not ADMIN_TOKEN",
      "no credential",
    ]);
    const audit = JSON.stringify(await auditEntries(100));
    expect(audit).not.toContain("wrong-guess");
    expect(audit).not.toContain(POLICY_ADMIN_TOKEN);
  });

  it("a bearer token is compared whole: the scheme is case-insensitive, the token is not", async () => {
    await expectJson(
      call("GET", "/v1/config", { headers: { authorization: `bearer ${POLICY_ADMIN_TOKEN}` } }),
    );
    await expectRefused(
      call("GET", "/v1/config", {
        headers: { authorization: `Bearer ${POLICY_ADMIN_TOKEN.toUpperCase()}` },
      }),
      401,
    );
  });
});

describe("admin SVIDs", () => {
  it("an ADMIN_SERVICES service's SVID may write; the author is its SPIFFE ID and the client's note", async () => {
    const token = await svidFor("ops");
    const answer = await expectJson<WriteAnswer>(
      call("POST", "/v1/apply", {
        body: { resources: [service("by-ops")] },
        headers: { "x-mesh-svid": token, "x-mesh-author": " carol\u0007 " },
      }),
    );
    const [latest] = (
      await expectJson<{ versions: { version: number; author: string }[] }>(
        call("GET", "/v1/history?limit=1"),
      )
    ).versions;
    expect(latest).toMatchObject({
      version: answer.version,
      author: `${spiffeId(TRUST_DOMAIN, "ops")} (carol)`,
    });
  });

  it("a VIEWER_SERVICES service's SVID may read, and gets 403 forbidden for a write, which changes nothing", async () => {
    const token = await svidFor("dash");
    const headers = { "x-mesh-svid": token };
    for (const path of ["/v1/config", "/v1/status", "/v1/history", "/v1/audit"]) {
      await expectJson(call("GET", path, { headers }));
    }
    const before = await currentVersion();
    for (const [method, path, body] of [
      ["POST", "/v1/apply", { resources: [service("by-dash")] }],
      ["PUT", "/v1/resources/Service/by-dash", service("by-dash")],
      ["DELETE", "/v1/resources/Service/by-ops", undefined],
      ["POST", "/v1/rollback", { version: 1 }],
    ] as const) {
      const error = await expectRefused(call(method, path, { body, headers }), 403);
      expect(error.code).toBe("forbidden");
    }
    expect(await currentVersion()).toBe(before);
    const [last] = await auditEntries(1);
    expect(last).toMatchObject({
      actor: spiffeId(TRUST_DOMAIN, "dash"),
      action: "POST /v1/rollback",
      outcome: "forbidden",
      version: before,
    });
  });

  it("a service in neither list, with no role claim, gets 403", async () => {
    const token = await svidFor("orders");
    await expectRefused(call("GET", "/v1/config", { headers: { "x-mesh-svid": token } }), 403);
    const [last] = await auditEntries(1);
    expect(last).toMatchObject({
      actor: spiffeId(TRUST_DOMAIN, "orders"),
      outcome: "forbidden",
      detail:
        "service 'orders' has no admin role: its SVID claims no role, and it is in neither ADMIN_SERVICES nor VIEWER_SERVICES",
    });
  });

  it("a forged or tampered SVID gets 401", async () => {
    const token = await svidFor("ops");
    const [header, payload, signature] = token.split(".") as [string, string, string];
    const claims = JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/"))) as object;
    const forgedPayload = btoa(
      JSON.stringify({ ...claims, sub: spiffeId(TRUST_DOMAIN, "ops") + "x" }),
    )
      .replace(/=+$/, "")
      .replace(/\+/g, "-")
      .replace(/\//g, "_");
    const flipped = signature.startsWith("A") ? `B${signature.slice(1)}` : `A${signature.slice(1)}`;
    const none = `${btoa(JSON.stringify({ alg: "none" })).replace(/=+$/, "")}.${payload}.`;
    for (const bad of [
      `${header}.${forgedPayload}.${signature}`,
      `${header}.${payload}.${flipped}`,
      none,
      "not-a-token",
    ]) {
      await expectRefused(
        call("POST", "/v1/apply", {
          body: { resources: [service("forged")] },
          headers: { "x-mesh-svid": bad },
        }),
        401,
      );
    }
    await expectJson(call("GET", "/v1/resources/Service/forged"), 404);
  });

  it("an admin SVID is refused as soon as a Revocation of its subject is committed", async () => {
    const token = await svidFor("ops");
    await expectJson(call("GET", "/v1/config", { headers: { "x-mesh-svid": token } }));
    await apply([
      {
        apiVersion: "meshwork.dev/v1",
        kind: "Revocation",
        metadata: { name: "ops-out" },
        spec: { subject: spiffeId(TRUST_DOMAIN, "ops") },
      },
    ]);
    await expectRefused(call("GET", "/v1/config", { headers: { "x-mesh-svid": token } }), 401);
    await expectJson(call("DELETE", "/v1/resources/Revocation/ops-out", { headers: ADMIN }));
    await expectJson(call("GET", "/v1/config", { headers: { "x-mesh-svid": token } }));
  });
});

describe("refusals in the audit log", () => {
  it("are recorded at a bounded rate per isolate, so a flood cannot keep the single writer busy", async () => {
    const [newest] = await auditEntries(1);
    const answers = await Promise.all(
      Array.from({ length: 40 }, () => call("GET", "/v1/config", { headers: {} })),
    );
    expect(answers.every((answer) => answer.status === 401)).toBe(true);
    // A burst of 20 at most (fewer when earlier tests spent some); the rest only counted.
    const recorded = (await auditEntries(100)).filter((e) => e.id > (newest?.id ?? 0));
    expect(recorded.length).toBeLessThanOrEqual(20);
  });
});
