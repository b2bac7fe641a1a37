// Secrets never leave the policy Worker in what it keeps or says: the admin token, a wrong token
// someone tried, and the JWT-SVIDs callers present appear in no history entry, no version, no
// audit entry, no status answer and no log line — the Worker's and the PolicyStore's console
// output is captured here (they run in this isolate) while every kind of request goes through,
// accepted and refused. (Bootstrap secrets never reach it: a WorkloadCredential holds only the
// secret's SHA-256, which is not a secret.)
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { spiffeId } from "../../core/identity/names.ts";
import { POLICY_ADMIN_TOKEN } from "./constants.ts";
import {
  ADMIN,
  call,
  controlStoreClock,
  expectJson,
  runAlarm,
  service,
  svidFor,
  TRUST_DOMAIN,
} from "./helpers.ts";

const logged: string[] = [];
const LEVELS = ["log", "info", "warn", "error", "debug"] as const;

beforeAll(async () => {
  await controlStoreClock();
  for (const level of LEVELS) {
    vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
      logged.push(
        args.map((arg) => (typeof arg === "string" ? arg : JSON.stringify(arg))).join(" "),
      );
    });
  }
});

afterAll(() => {
  vi.restoreAllMocks();
});

/** Everything the Worker keeps or answers about what happened, as one text. */
async function everythingKept(): Promise<string> {
  const history = await expectJson<{ versions: { version: number }[] }>(
    call("GET", "/v1/history?limit=1000"),
  );
  const versions = await Promise.all(
    history.versions.map((v) => expectJson(call("GET", `/v1/history/${v.version}`))),
  );
  const audit = await expectJson(call("GET", "/v1/audit?limit=1000"));
  const status = await expectJson(call("GET", "/v1/status"));
  const config = await expectJson(call("GET", "/v1/config"));
  return JSON.stringify({ history, versions, audit, status, config });
}

describe("secrets", () => {
  it("the admin token, tried tokens and SVIDs appear in no history, audit, status or log line", async () => {
    const adminSvid = await svidFor("ops");
    const viewerSvid = await svidFor("dash");
    const strangerSvid = await svidFor("orders");
    const wrongToken = `${POLICY_ADMIN_TOKEN}-but-wrong`;
    const tampered = `${adminSvid.slice(0, -4)}AAAA`;
    const secrets = [POLICY_ADMIN_TOKEN, wrongToken, adminSvid, viewerSvid, strangerSvid, tampered];

    // Accepted writes, by token and by SVID, and their publish.
    await expectJson(
      call("POST", "/v1/apply", {
        body: { resources: [service("secret-a")] },
        headers: { ...ADMIN, "x-mesh-author": "alice" },
      }),
    );
    await expectJson(
      call("PUT", "/v1/resources/Service/secret-b", {
        body: service("secret-b"),
        headers: { "x-mesh-svid": adminSvid },
      }),
    );
    await runAlarm();
    // Refused ones: a wrong token, a token where a scheme is expected, a tampered SVID, a viewer
    // writing, a stranger reading, an invalid config, a body that is not one, a stale If-Match.
    const refusals: [string, string, Record<string, string>, unknown, number][] = [
      ["POST", "/v1/apply", { authorization: `Bearer ${wrongToken}` }, { resources: [] }, 401],
      ["POST", "/v1/apply", { authorization: POLICY_ADMIN_TOKEN }, { resources: [] }, 401],
      ["POST", "/v1/apply", { "x-mesh-svid": tampered }, { resources: [] }, 401],
      ["DELETE", "/v1/resources/Service/secret-a", { "x-mesh-svid": viewerSvid }, undefined, 403],
      ["GET", "/v1/config", { "x-mesh-svid": strangerSvid }, undefined, 403],
      ["POST", "/v1/apply", ADMIN, { resources: [service("Bad_Name")] }, 400],
      ["POST", "/v1/apply", ADMIN, "{ not json", 400],
      ["POST", "/v1/apply", { ...ADMIN, "if-match": '"1"' }, { resources: [service("c")] }, 412],
    ];
    for (const [method, path, headers, body, status] of refusals) {
      const answer = await call(method, path, { headers, body });
      const text = await answer.text();
      expect(answer.status, text).toBe(status);
      for (const secret of secrets) expect(text).not.toContain(secret);
    }
    // An SVID refused once its subject is revoked.
    await expectJson(
      call("POST", "/v1/apply", {
        body: {
          resources: [
            {
              apiVersion: "meshwork.dev/v1",
              kind: "Revocation",
              metadata: { name: "secret-revoke" },
              spec: { subject: spiffeId(TRUST_DOMAIN, "ops") },
            },
          ],
        },
      }),
    );
    expect(
      (await call("GET", "/v1/config", { headers: { "x-mesh-svid": adminSvid } })).status,
    ).toBe(401);
    await expectJson(call("DELETE", "/v1/resources/Revocation/secret-revoke"));
    await runAlarm();

    const kept = await everythingKept();
    // What was captured is real: the refusals and the publish were logged, and kept.
    expect(logged.some((line) => line.includes('"event":"admin_refused"'))).toBe(true);
    expect(logged.some((line) => line.includes('"event":"config_published"'))).toBe(true);
    expect(kept).toContain("token (alice)");
    expect(kept).toContain("a bearer token that is not ADMIN_TOKEN");
    const everything = [kept, ...logged].join("\n");
    for (const secret of secrets) {
      expect(everything).not.toContain(secret);
      // Nor a long piece of it (a token cut short to fit a field is still a leak).
      expect(everything).not.toContain(secret.slice(0, 24));
    }
  });
});
