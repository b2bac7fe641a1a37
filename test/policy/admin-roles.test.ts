// Admin SVIDs by role claim, across both Workers: a WorkloadCredential's `roles` reach the
// identity Worker through the published config, and the SVIDs it issues on that credential carry
// them (claim meshwork.dev/roles) — only those; the policy Worker takes an admin-role SVID for
// writes, a viewer-role one for reads, refuses one with no role (403) and any claim the mesh's
// keys did not sign (401), and stops honouring a role as soon as the config takes it away.
// None of the services here is in ADMIN_SERVICES or VIEWER_SERVICES: the claim is what counts.
import { env } from "cloudflare:workers";
import { decodeProtectedHeader, exportJWK, generateKeyPair, SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { ROLES_CLAIM, spiffeId } from "../../core/identity/names.ts";
import {
  ADMIN,
  auditEntries,
  call,
  controlStoreClock,
  currentVersion,
  expectJson,
  runAlarm,
  service,
  svidFor,
  TRUST_DOMAIN,
  type ErrorAnswer,
} from "./helpers.ts";

const SECRETS = {
  deployer: "roles-test-bootstrap-deployer-0123456789",
  dashboard: "roles-test-bootstrap-dashboard-012345678",
  reports: "roles-test-bootstrap-reports-0123456789ab",
};

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function credential(name: string, serviceName: string, secret: string, roles?: string[]) {
  return {
    apiVersion: "meshwork.dev/v1",
    kind: "WorkloadCredential",
    metadata: { name },
    spec: {
      service: serviceName,
      bootstrap: { secretSha256: await sha256Hex(secret) },
      ...(roles === undefined ? {} : { roles }),
    },
  };
}

const identityHttp = (env as unknown as { IDENTITY_HTTP: Fetcher }).IDENTITY_HTTP;

/** An SVID from the identity Worker's HTTP entry, for the workload holding `secret`. */
async function svidWithSecret(secret: string): Promise<string> {
  const response = await identityHttp.fetch("https://identity.example/v1/svid", {
    method: "POST",
    headers: { authorization: `Bearer ${secret}` },
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`POST /v1/svid: ${response.status} ${text}`);
  return (JSON.parse(text) as { token: string }).token;
}

const base64url = (text: string) =>
  btoa(text).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");

function claimsOf(token: string): Record<string, unknown> {
  const payload = token.split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(payload)) as Record<string, unknown>;
}

const as = (token: string) => ({ "x-mesh-svid": token });
const write = (token: string, name: string) =>
  call("POST", "/v1/apply", { body: { resources: [service(name)] }, headers: as(token) });

let tokens: { deployer: string; dashboard: string; reports: string };

beforeAll(async () => {
  await controlStoreClock();
  await expectJson(
    call("POST", "/v1/apply", {
      body: {
        resources: [
          await credential("deployer", "deployer", SECRETS.deployer, ["admin"]),
          await credential("dashboard", "dashboard", SECRETS.dashboard, ["viewer"]),
          await credential("reports", "reports", SECRETS.reports),
        ],
      },
      headers: ADMIN,
    }),
  );
  // Published to KV, where the identity Worker reads the credentials.
  await runAlarm();
  tokens = {
    deployer: await svidWithSecret(SECRETS.deployer),
    dashboard: await svidWithSecret(SECRETS.dashboard),
    reports: await svidWithSecret(SECRETS.reports),
  };
});

describe("issuing: the roles claim", () => {
  it("carries the roles of the credential that attested the workload, and only those", async () => {
    expect(claimsOf(tokens.deployer)).toMatchObject({
      sub: spiffeId(TRUST_DOMAIN, "deployer"),
      [ROLES_CLAIM]: ["admin"],
    });
    expect(claimsOf(tokens.dashboard)[ROLES_CLAIM]).toEqual(["viewer"]);
    // A credential that grants no role, and a Worker attested by its binding's props: no claim.
    expect(claimsOf(tokens.reports)).not.toHaveProperty([ROLES_CLAIM]);
    expect(claimsOf(await svidFor("orders"))).not.toHaveProperty([ROLES_CLAIM]);
  });

  it("refuses a credential whose roles are not the mesh's, naming the field", async () => {
    const bad = await credential("bad-roles", "bad", "roles-test-bootstrap-bad-0123456789abcd", [
      "root",
    ]);
    const before = await currentVersion();
    const answer = await expectJson<ErrorAnswer>(
      call("POST", "/v1/apply", { body: { resources: [bad] } }),
      400,
    );
    expect(answer.error.issues).toEqual([
      { path: "resources[0].spec.roles[0]", message: "must be admin or viewer" },
    ]);
    expect(await currentVersion()).toBe(before);
  });
});

describe("the admin API: the role an SVID claims", () => {
  it("admin: may write, recorded as its SPIFFE ID", async () => {
    const before = await currentVersion();
    await expectJson(write(tokens.deployer, "by-deployer"));
    expect(await currentVersion()).toBe(before + 1);
    const [latest] = (
      await expectJson<{ versions: { author: string }[] }>(call("GET", "/v1/history?limit=1"))
    ).versions;
    expect(latest!.author).toBe(spiffeId(TRUST_DOMAIN, "deployer"));
  });

  it("viewer: may read, and gets 403 for a write, which changes nothing", async () => {
    await expectJson(call("GET", "/v1/config", { headers: as(tokens.dashboard) }));
    const before = await currentVersion();
    const answer = await expectJson<ErrorAnswer>(write(tokens.dashboard, "by-dashboard"), 403);
    expect(answer.error.code).toBe("forbidden");
    expect(await currentVersion()).toBe(before);
  });

  it("none: 403 forbidden for reads and writes, the reason in the audit log only", async () => {
    for (const response of [
      call("GET", "/v1/config", { headers: as(tokens.reports) }),
      write(tokens.reports, "by-reports"),
    ]) {
      const answer = await expectJson<ErrorAnswer>(response, 403);
      expect(answer.error.code).toBe("forbidden");
      expect(answer.error.message).not.toContain("reports");
    }
    const [last] = await auditEntries(1);
    expect(last).toMatchObject({
      actor: spiffeId(TRUST_DOMAIN, "reports"),
      outcome: "forbidden",
      detail: expect.stringContaining("its SVID claims no role"),
    });
  });

  it("a forged claim fails: edited into a signed token, unsigned, or signed with another key", async () => {
    const [header, , signature] = tokens.reports.split(".") as [string, string, string];
    const claims = { ...claimsOf(tokens.reports), [ROLES_CLAIM]: ["admin"] };
    const edited = `${header}.${base64url(JSON.stringify(claims))}.${signature}`;
    const unsigned = `${base64url(JSON.stringify({ alg: "none", typ: "JWT" }))}.${base64url(JSON.stringify(claims))}.`;
    // A key of the attacker's, under the mesh's own kid and its exact claims.
    const { privateKey } = await generateKeyPair("ES256", { extractable: true });
    const kid = decodeProtectedHeader(tokens.reports).kid!;
    const otherSigned = await new SignJWT(claims)
      .setProtectedHeader({ alg: "ES256", kid, typ: "JWT" })
      .sign(privateKey);
    // Its own key in the header instead: refused before any key is looked up.
    const embedded = await new SignJWT(claims)
      .setProtectedHeader({ alg: "ES256", kid, jwk: await exportJWK(privateKey) })
      .sign(privateKey);
    const before = await currentVersion();
    for (const forged of [edited, unsigned, otherSigned, embedded]) {
      const answer = await expectJson<ErrorAnswer>(write(forged, "by-forger"), 401);
      expect(answer.error.code).toBe("unauthenticated");
    }
    expect(await currentVersion()).toBe(before);
    // And the genuine token it was made from still has no role.
    await expectJson(write(tokens.reports, "by-forger"), 403);
  });

  it("a role the config takes away counts at once, before any new token", async () => {
    // The deployer's credential now grants only viewer: its admin token reads, and cannot write.
    await expectJson(
      call("PUT", "/v1/resources/WorkloadCredential/deployer", {
        body: await credential("deployer", "deployer", SECRETS.deployer, ["viewer"]),
      }),
    );
    await expectJson(call("GET", "/v1/config", { headers: as(tokens.deployer) }));
    await expectJson(write(tokens.deployer, "by-deployer-2"), 403);
    // Disabled, it grants nothing.
    const admin = await credential("deployer", "deployer", SECRETS.deployer, ["admin"]);
    await expectJson(
      call("PUT", "/v1/resources/WorkloadCredential/deployer", {
        body: { ...admin, spec: { ...admin.spec, disabled: true } },
      }),
    );
    await expectJson(call("GET", "/v1/config", { headers: as(tokens.deployer) }), 403);
    // Granted again, the same token writes again.
    await expectJson(call("PUT", "/v1/resources/WorkloadCredential/deployer", { body: admin }));
    await expectJson(write(tokens.deployer, "by-deployer-3"));
  });
});
