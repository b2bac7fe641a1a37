// The router's side of identity, in workerd: callers authenticated by their binding's props or
// by a JWT-SVID (each attack refused), what each entrypoint is trusted with, peer
// authentication, authorization with every spelling of a denied path, what the destination is
// told (X-Mesh-Caller, XFCC, a passport it can verify with sdk/passport.ts), and that a warm
// router never waits for the identity Worker yet keeps its keys and revocations current. The
// identity Worker is a stand-in here (helpers/fake-identity.ts) that counts its calls;
// test/identity/ tests the real one.
import { exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { thumbprintFromHex } from "../core/identity/svid.ts";
import { PassportError, verifyPassport } from "../sdk/passport.ts";
import type { MeshProps } from "../workers/router/call.ts";
import { REFUSAL_MESSAGES } from "../workers/router/identity/refuse.ts";
import { FakeIdentity } from "./helpers/fake-identity.ts";
import { callHttp, httpRoute, publish, service, type Echoed } from "./helpers/mesh.ts";
import { TEST_ADMIN_TOKEN } from "./helpers/open-mesh.ts";
import { isolatedRouter, type Answer, type IsolatedRouter } from "./helpers/router.ts";

const TD = "meshwork.local";

function resource(kind: string, name: string, spec: object) {
  return { apiVersion: "meshwork.dev/v1", kind, metadata: { name }, spec };
}

const allow = (name: string, spec: object) => resource("AuthorizationPolicy", name, spec);

/** A zero-trust mesh: echo and payments, STRICT, DENY unless allowed. */
function zeroTrust(...extra: object[]) {
  return [
    service("echo", "ECHO_V1"),
    service("payments", "ECHO_V2"),
    resource("MeshSettings", "mesh", { authorization: { defaultAction: "DENY" } }),
    allow("echo-from-anyone", {
      targetRefs: [{ kind: "Service", name: "echo" }],
      rules: [{}],
    }),
    allow("payments-from-orders", {
      targetRefs: [{ kind: "Service", name: "payments" }],
      rules: [{ from: [{ source: { principals: [`spiffe://${TD}/orders`] } }] }],
    }),
    ...extra,
  ];
}

let identity: FakeIdentity;
beforeAll(async () => {
  identity = await FakeIdentity.create(TD);
});

function routerWith(resources: object[], vars: Record<string, string> = {}): IsolatedRouter {
  return isolatedRouter(resources, { identity: identity.binding(), vars, zeroTrust: true });
}

const withSvid = (token: string, init: RequestInit = {}): RequestInit => ({
  ...init,
  headers: { ...(init.headers as Record<string, string>), "x-mesh-svid": token },
});

/**
 * The call was refused with `code` for `reason` — which is in the outcome (and the log), while
 * the response is the contract's error and nothing more: exactly `{error: {code, message}}`,
 * the message fixed, no header or body naming the reason.
 */
function expectRefused(answer: Answer, code: "unauthenticated" | "forbidden", reason: RegExp) {
  expect(answer).toMatchObject({ status: code === "unauthenticated" ? 401 : 403, error: code });
  expect(answer.outcome.refusal).toMatch(reason);
  expect(answer.errorBody).toStrictEqual({ error: { code, message: REFUSAL_MESSAGES[code] } });
  expect(JSON.stringify(answer.errorBody)).not.toMatch(reason);
  expect([...answer.headers].join("\n")).not.toMatch(reason);
}

/** A client certificate as Cloudflare reports it in `request.cf` (on the HTTP entry). */
const cert = (hex: string, verified = "SUCCESS", revoked = "0") => ({
  tlsClientAuth: {
    certPresented: "1",
    certVerified: verified,
    certRevoked: revoked,
    certFingerprintSHA256: hex,
    certSubjectDN: "CN=reports,O=Meshwork",
  },
});
const FINGERPRINT = "a1".repeat(32);
/** An SVID for orders bound to the certificate FINGERPRINT names. */
const boundSvid = () =>
  identity.svid("orders", { claims: { cnf: { "x5t#S256": thumbprintFromHex(FINGERPRINT) } } });

describe("callers", () => {
  it("a binding's props are the caller: echo is told who called, and gets a passport", async () => {
    const router = routerWith(zeroTrust());
    const answer = await router.call("payments", "/charge", {}, "orders");
    expect(answer.status).toBe(200);
    expect(answer.echo!.headers["x-mesh-caller"]).toBe(`spiffe://${TD}/orders`);
    expect(answer.echo!.headers["x-forwarded-client-cert"]).toBe(
      `By=spiffe://${TD}/payments;URI=spiffe://${TD}/orders`,
    );
    expect(answer.echo!.headers["x-mesh-passport"]).toMatch(/^ey/);
    expect(answer.outcome).toMatchObject({
      caller: "orders",
      principal: `spiffe://${TD}/orders`,
      authenticatedBy: "binding",
    });
  });

  it("a verified JWT-SVID over HTTP is the caller; the token itself goes no further", async () => {
    const router = routerWith(zeroTrust());
    const answer = await router.call(
      "payments",
      "/charge",
      withSvid(await identity.svid("orders")),
    );
    expect(answer.status).toBe(200);
    expect(answer.echo!.headers["x-mesh-caller"]).toBe(`spiffe://${TD}/orders`);
    expect(answer.echo!.headers["x-mesh-svid"]).toBeUndefined();
    expect(answer.outcome.authenticatedBy).toBe("svid");
  });

  it("STRICT (the default) refuses a call with no caller, saying only unauthenticated", async () => {
    const router = routerWith(zeroTrust());
    expectRefused(await router.call("echo", "/"), "unauthenticated", /STRICT/);
  });

  it("PERMISSIVE lets a call with no caller through, labelled, with no identity headers", async () => {
    const router = routerWith(
      zeroTrust(
        resource("PeerAuthentication", "echo-permissive", {
          targetRefs: [{ kind: "Service", name: "echo" }],
          mode: "PERMISSIVE",
        }),
      ),
    );
    const answer = await router.call("echo", "/", {
      headers: {
        "x-mesh-caller": `spiffe://${TD}/admin`,
        "x-forwarded-client-cert": `URI=spiffe://${TD}/admin`,
        "x-mesh-passport": "forged",
      },
    });
    expect(answer.status).toBe(200);
    expect(answer.echo!.headers["x-mesh-caller"]).toBeUndefined();
    expect(answer.echo!.headers["x-forwarded-client-cert"]).toBeUndefined();
    expect(answer.echo!.headers["x-mesh-passport"]).toBeUndefined();
    expect(answer.outcome).toMatchObject({ principal: undefined, authenticatedBy: undefined });
    // payments stays STRICT.
    expect((await router.call("payments", "/")).status).toBe(401);
  });

  it("attack: spoofed X-Mesh-Caller, XFCC and passport never reach the destination", async () => {
    const router = routerWith(zeroTrust());
    const answer = await router.call(
      "payments",
      "/",
      withSvid(await identity.svid("orders"), {
        headers: {
          "x-mesh-caller": `spiffe://${TD}/admin`,
          "x-forwarded-client-cert": `By=x;URI=spiffe://${TD}/admin`,
          "x-mesh-passport": "forged",
        },
      }),
    );
    expect(answer.status).toBe(200);
    expect(answer.echo!.headers["x-mesh-caller"]).toBe(`spiffe://${TD}/orders`);
    expect(answer.echo!.headers["x-forwarded-client-cert"]).toBe(
      `By=spiffe://${TD}/payments;URI=spiffe://${TD}/orders`,
    );
    expect(answer.echo!.headers["x-mesh-passport"]).not.toBe("forged");
  });
});

describe("attacks on the caller's token, each refused unauthenticated", () => {
  const refused = async (router: IsolatedRouter, init: RequestInit, reason: RegExp) => {
    expectRefused(await router.call("echo", "/", init), "unauthenticated", reason);
  };

  it("attack: a token that does not verify (here: unknown kid), even on a PERMISSIVE destination", async () => {
    const router = routerWith(
      zeroTrust(resource("PeerAuthentication", "open", { mode: "PERMISSIVE" })),
    );
    await refused(router, withSvid(await identity.svid("orders", { kid: "nope" })), /unknown kid/);
  });

  it("attack: two X-Mesh-SVID headers", async () => {
    const router = routerWith(zeroTrust());
    const headers = new Headers();
    headers.append("x-mesh-svid", await identity.svid("orders"));
    headers.append("x-mesh-svid", await identity.svid("admin"));
    await refused(router, { headers }, /more than one token/);
  });

  it("attack: expired", async () => {
    const router = routerWith(zeroTrust());
    await refused(
      router,
      withSvid(await identity.svid("orders", { issuedAt: -700, ttlSeconds: 300 })),
      /expired/,
    );
  });

  it("attack: revoked jti, and every token of a revoked subject", async () => {
    const revokedJti = await identity.svid("orders", { jti: "leaked-1" });
    const router = routerWith(
      zeroTrust(
        resource("Revocation", "leak", { jti: "leaked-1" }),
        resource("Revocation", "retire-reports", { subject: `spiffe://${TD}/reports` }),
        resource("Revocation", "rotate-billing", {
          subject: `spiffe://${TD}/billing`,
          issuedBefore: new Date(Date.now() + 60_000).toISOString(),
        }),
      ),
    );
    await refused(router, withSvid(revokedJti), /jti 'leaked-1' is revoked/);
    await refused(router, withSvid(await identity.svid("reports")), /reports' are revoked/);
    await refused(router, withSvid(await identity.svid("billing")), /issued before/);
    expect((await router.call("echo", "/", withSvid(await identity.svid("orders")))).status).toBe(
      200,
    );
  });

  it("attack: a token signed by a key the mesh has withdrawn, even one this isolate cached", async () => {
    const rotating = await FakeIdentity.create(TD);
    const router = isolatedRouter(zeroTrust(), { identity: rotating.binding(), zeroTrust: true });
    const token = await rotating.svid("orders");
    expect((await router.call("echo", "/", withSvid(token))).status).toBe(200);
    await rotating.addKey("key-2");
    rotating.removeKey("key-1");
    // A token under the new key makes the isolate fetch the JWKS (an unknown kid): key-1 is gone.
    expect((await router.call("echo", "/", withSvid(await rotating.svid("orders")))).status).toBe(
      200,
    );
    await refused(router, withSvid(token), /unknown kid/);
  });

  it("attack: a token valid for longer than a day", async () => {
    await refused(
      routerWith(zeroTrust()),
      withSvid(await identity.svid("orders", { ttlSeconds: 7 * 86_400 })),
      /at most 86400/,
    );
  });

  it("attack: a Worker whose subject is revoked calls through its binding", async () => {
    const router = routerWith(
      zeroTrust(resource("Revocation", "retire-orders", { subject: `spiffe://${TD}/orders` })),
    );
    expectRefused(
      await router.call("payments", "/", {}, "orders"),
      "unauthenticated",
      /'spiffe:\/\/meshwork.local\/orders' is revoked/,
    );
  });

  it("attack: the binding's props and the token disagree", async () => {
    const router = routerWith(zeroTrust());
    const answer = await router.call(
      "payments",
      "/",
      withSvid(await identity.svid("admin")),
      "orders",
    );
    expectRefused(answer, "unauthenticated", /props name caller 'orders'/);
    const agreeing = await router.call(
      "payments",
      "/",
      withSvid(await identity.svid("orders")),
      "orders",
    );
    expect(agreeing.status).toBe(200);
  });

  describe("a certificate-bound token", () => {
    const fingerprint = FINGERPRINT;
    const bound = boundSvid;

    it("attack: presented without the certificate", async () => {
      await refused(routerWith(zeroTrust()), withSvid(await bound()), /none was verified/);
    });

    it("attack: presented with another certificate, or one Cloudflare did not verify", async () => {
      const router = routerWith(zeroTrust());
      await refused(
        router,
        { ...withSvid(await bound()), cf: cert("b2".repeat(32)) } as RequestInit,
        /another client certificate/,
      );
      await refused(
        router,
        { ...withSvid(await bound()), cf: cert(fingerprint, "FAILED:self signed") } as RequestInit,
        /none was verified/,
      );
    });

    it("attack: presented with its certificate after Cloudflare reports it revoked", async () => {
      const router = routerWith(zeroTrust());
      await refused(
        router,
        { ...withSvid(await bound()), cf: cert(fingerprint, "SUCCESS", "1") } as RequestInit,
        /none was verified: the client certificate is revoked/,
      );
    });

    it("is accepted with its certificate, and XFCC carries the certificate's hash and subject", async () => {
      const router = routerWith(zeroTrust());
      const answer = await router.call("echo", "/", {
        ...withSvid(await bound()),
        cf: cert(fingerprint.toUpperCase()),
      } as RequestInit);
      expect(answer.status).toBe(200);
      expect(answer.echo!.headers["x-forwarded-client-cert"]).toBe(
        `By=spiffe://${TD}/echo;Hash=${fingerprint};Subject="CN=reports,O=Meshwork";URI=spiffe://${TD}/orders`,
      );
    });
  });
});

describe("authorization", () => {
  it("lets orders call payments, and nothing else", async () => {
    const router = routerWith(zeroTrust());
    expect((await router.call("payments", "/", {}, "orders")).status).toBe(200);
    const other = await router.call("payments", "/", {}, "reports");
    expectRefused(other, "forbidden", /^no ALLOW policy matched$/);
    expect(other.outcome.authorization?.allowed).toBe(false);
  });

  it("denies by default when no policy applies (MeshSettings DENY, the default)", async () => {
    const router = routerWith([service("echo", "ECHO_V1")]);
    const answer = await router.call("echo", "/", {}, "orders");
    expect(answer).toMatchObject({ status: 403, error: "forbidden" });
    expect(answer.outcome.refusal).toMatch(/default DENY/);
  });

  it("attack: no spelling of /admin gets past a DENY on /admin", async () => {
    const router = routerWith(
      zeroTrust(
        resource("AuthorizationPolicy", "no-admin", {
          targetRefs: [{ kind: "Service", name: "echo" }],
          action: "DENY",
          rules: [{ to: [{ operation: { paths: ["/admin"] } }] }],
        }),
      ),
    );
    const spellings = [
      "/admin",
      "/a/../admin",
      "/%2e%2e/admin",
      "/x/%2E%2E/admin",
      "//admin",
      "/%2Fadmin",
      "/ADMIN",
      "/admin/",
      "/admin;x",
      "/admin%00",
      "/%61dmin",
      "/Admin;jsessionid=1/",
    ];
    for (const path of spellings) {
      const answer = await router.call("echo", path, {}, "orders");
      expect([400, 403], `${path} answered ${answer.status}`).toContain(answer.status);
      expect(answer.echo, path).toBeUndefined();
    }
    expect((await router.call("echo", "/administrator", {}, "orders")).status).toBe(200);
  });

  it("attack: a lower-case method does not slip past a DENY on PATCH", async () => {
    const router = routerWith(
      zeroTrust(
        resource("AuthorizationPolicy", "no-patch", {
          action: "DENY",
          rules: [{ to: [{ operation: { methods: ["PATCH"] } }] }],
        }),
      ),
    );
    expect((await router.call("echo", "/", { method: "patch" }, "orders")).status).toBe(403);
  });

  it("records a dry-run DENY and an AUDIT without enforcing them", async () => {
    const router = routerWith(
      zeroTrust(
        resource("AuthorizationPolicy", "would-deny", {
          action: "DENY",
          dryRun: true,
          rules: [{ from: [{ source: { principals: [`spiffe://${TD}/orders`] } }] }],
        }),
        resource("AuthorizationPolicy", "audit-all", { action: "AUDIT", rules: [{}] }),
      ),
    );
    const answer = await router.call("echo", "/", {}, "orders");
    expect(answer.status).toBe(200);
    expect(answer.outcome.authorization?.audited).toEqual(["audit-all"]);
    expect(answer.outcome.authorization?.dryRun).toEqual([
      expect.objectContaining({ policy: "would-deny", matched: true, wouldDeny: true }),
    ]);
  });
});

describe("authorization where routing changes the call", () => {
  it("attack: a rewrite does not walk a path past a DENY (/v1/admin → /admin)", async () => {
    const router = routerWith(
      zeroTrust(
        resource("AuthorizationPolicy", "no-admin", {
          targetRefs: [{ kind: "Service", name: "echo" }],
          action: "DENY",
          rules: [{ to: [{ operation: { paths: ["/admin", "/admin/*"] } }] }],
        }),
        httpRoute("v1", "echo", [
          {
            matches: [{ path: { type: "PathPrefix", value: "/v1" } }],
            filters: [
              {
                type: "URLRewrite",
                urlRewrite: { path: { type: "ReplacePrefixMatch", replacePrefixMatch: "/" } },
              },
            ],
            backendRefs: [{ name: "echo" }],
          },
        ]),
      ),
    );
    const answer = await router.call("echo", "/v1/admin", {}, "orders");
    expect(answer).toMatchObject({ status: 403, error: "forbidden" });
    expect(answer.outcome.refusal).toMatch(/after the rewrite to \/admin/);
    const fine = await router.call("echo", "/v1/hello", {}, "orders");
    expect(fine.status).toBe(200);
    expect(fine.echo!.path).toBe("/hello");
  });

  it("a backend's own policies apply when a split sends it a call addressed to another Service", async () => {
    const router = routerWith([
      ...zeroTrust(
        service("echo-v2", "ECHO_V2"),
        allow("v2-from-orders-only", {
          targetRefs: [{ kind: "Service", name: "echo-v2" }],
          rules: [{ from: [{ source: { principals: [`spiffe://${TD}/orders`] } }] }],
        }),
        httpRoute("canary", "echo", [{ backendRefs: [{ name: "echo-v2" }] }]),
      ),
    ]);
    expect((await router.call("echo", "/", {}, "orders")).status).toBe(200);
    const reports = await router.call("echo", "/", {}, "reports");
    expect(reports).toMatchObject({ status: 403, error: "forbidden" });
    expect(reports.outcome.refusal).toMatch(/backend 'echo-v2'/);
  });

  it("a CORS preflight with no credentials is answered by the route's CORS filter, and nothing else gets through", async () => {
    const router = routerWith(
      zeroTrust(
        httpRoute("browser", "payments", [
          {
            filters: [
              {
                type: "CORS",
                cors: { allowOrigins: ["https://app.example.com"], allowMethods: ["POST"] },
              },
            ],
            backendRefs: [{ name: "payments" }],
          },
        ]),
      ),
    );
    const preflight = await router.call("payments", "/charge", {
      method: "OPTIONS",
      headers: { origin: "https://app.example.com", "access-control-request-method": "POST" },
    });
    expect(preflight.status).toBe(200);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    expect(preflight.echo).toBeUndefined();
    // The same OPTIONS without the preflight's headers is an ordinary call: refused.
    expect((await router.call("payments", "/charge", { method: "OPTIONS" })).status).toBe(401);
    // A preflight to a destination with no CORS filter is refused after all.
    const echoPreflight = await router.call("echo", "/", {
      method: "OPTIONS",
      headers: { origin: "https://app.example.com", "access-control-request-method": "GET" },
    });
    expect(echoPreflight.status).toBe(401);
  });
});

describe("passports", () => {
  const audience = `spiffe://${TD}/payments`;

  it("the destination verifies its passport with sdk/passport.ts; another audience fails", async () => {
    const router = routerWith(zeroTrust());
    const answer = await router.call("payments", "/charge", {}, "orders");
    const received = new Request("https://payments/charge", {
      headers: { "x-mesh-passport": answer.echo!.headers["x-mesh-passport"]! },
    });
    const verified = await verifyPassport(received, { identity: identity.binding(), audience });
    expect(verified).toMatchObject({
      subject: `spiffe://${TD}/orders`,
      service: "orders",
      perRequest: false,
    });
    // The split's backend Service is an audience too (payments → echo-v2's Service is payments).
    await expect(
      verifyPassport(received, { identity: identity.binding(), audience: `spiffe://${TD}/echo` }),
    ).rejects.toThrow(PassportError);
  });

  it("is reused for the same caller and destination, one per pair", async () => {
    const router = routerWith(zeroTrust());
    const first = await router.call("payments", "/a", {}, "orders");
    const second = await router.call("payments", "/b", {}, "orders");
    expect(second.echo!.headers["x-mesh-passport"]).toBe(first.echo!.headers["x-mesh-passport"]);
  });

  it("PerRequest: bound to method and path; replayed on another path, or twice, it fails", async () => {
    const router = routerWith(
      zeroTrust().map((r) =>
        (r as { kind: string; metadata: { name: string } }).kind === "Service" &&
        (r as { metadata: { name: string } }).metadata.name === "payments"
          ? {
              ...(r as object),
              spec: { endpoints: [{ binding: "ECHO_V2" }], passport: { mode: "PerRequest" } },
            }
          : r,
      ),
    );
    const first = await router.call("payments", "/charge", { method: "POST" }, "orders");
    const second = await router.call("payments", "/charge", { method: "POST" }, "orders");
    const passport = first.echo!.headers["x-mesh-passport"]!;
    expect(second.echo!.headers["x-mesh-passport"]).not.toBe(passport);
    const at = (path: string, method = "POST") =>
      new Request(`https://payments${path}`, { method, headers: { "x-mesh-passport": passport } });
    const options = { identity: identity.binding(), audience };
    await expect(verifyPassport(at("/refund"), options)).rejects.toThrow(/another path/);
    await expect(verifyPassport(at("/charge", "GET"), options)).rejects.toThrow(/another method/);
    const verified = await verifyPassport(at("/charge"), options);
    expect(verified.perRequest).toBe(true);
    await expect(verifyPassport(at("/charge"), options)).rejects.toThrow(/replay/);
  });

  it("with the identity Worker down, the call goes on without a passport, and status says why", async () => {
    const down = await FakeIdentity.create(TD);
    down.down = true;
    const router = isolatedRouter(zeroTrust(), { identity: down.binding(), zeroTrust: true });
    const answer = await router.call("payments", "/", {}, "orders");
    expect(answer.status).toBe(200);
    expect(answer.echo!.headers["x-mesh-passport"]).toBeUndefined();
    const status = (await router.status()) as unknown as {
      identity: { passports: { lastError: { message: string } | null } };
    };
    expect(status.identity.passports.lastError?.message).toMatch(/unreachable/);
  });
});

describe("what each entrypoint is trusted with", () => {
  const propless: MeshProps = {};

  it("attack: a Mesh binding with no props forges request.cf: its certificate-bound token is refused", async () => {
    const router = routerWith(zeroTrust());
    const forged = { ...withSvid(await boundSvid()), cf: cert(FINGERPRINT) } as RequestInit;
    const answer = await router.callThroughBinding(propless, "echo", "/", forged);
    expectRefused(
      answer,
      "unauthenticated",
      /through a service binding, where no client certificate/,
    );
    expect(answer.outcome.authenticatedBy).toBe("svid");
    // The same token and certificate over the HTTP entry, where Cloudflare sets request.cf: fine.
    const overHttp = await router.call("echo", "/", {
      ...withSvid(await boundSvid()),
      cf: cert(FINGERPRINT),
    } as RequestInit);
    expect(overHttp.status).toBe(200);
  });

  it("attack: a propless Mesh binding's forged certificate never reaches the destination as XFCC Hash or Subject", async () => {
    const router = routerWith(
      zeroTrust(resource("PeerAuthentication", "open", { mode: "PERMISSIVE" })),
    );
    const forged = cert("b2".repeat(32));
    const withToken = await router.callThroughBinding(propless, "echo", "/", {
      ...withSvid(await identity.svid("orders")),
      cf: forged,
    } as RequestInit);
    expect(withToken.status).toBe(200);
    expect(withToken.echo!.headers["x-forwarded-client-cert"]).toBe(
      `By=spiffe://${TD}/echo;URI=spiffe://${TD}/orders`,
    );
    const anonymous = await router.callThroughBinding(propless, "echo", "/", {
      cf: forged,
    } as RequestInit);
    expect(anonymous.status).toBe(200);
    expect(anonymous.echo!.headers["x-forwarded-client-cert"]).toBeUndefined();
    expect(anonymous.outcome).toMatchObject({ principal: undefined, authenticatedBy: undefined });
  });

  it("the router's own Mesh entrypoint, propless, ignores request.cf; its HTTP entry takes Cloudflare's", async () => {
    // The real entrypoints (workers/router/index.ts), in an open mesh: no caller, so the
    // destination's XFCC would carry only the certificate.
    await publish([service("echo", "ECHO_V1")]);
    const init = { cf: cert("c3".repeat(32)) } as RequestInit;
    const mesh = (exports as unknown as { Mesh(options: { props: MeshProps }): Fetcher }).Mesh({
      props: propless,
    });
    const throughBinding = await mesh.fetch(new Request("http://echo/", init));
    expect(throughBinding.status).toBe(200);
    const bindingEcho = (await throughBinding.json()) as Echoed;
    expect(bindingEcho.headers["x-forwarded-client-cert"]).toBeUndefined();
    const overHttp = await callHttp("echo", "/", init);
    expect(overHttp.status).toBe(200);
    expect(((await overHttp.json()) as Echoed).headers["x-forwarded-client-cert"]).toBe(
      `By=spiffe://${TD}/echo;Hash=${"c3".repeat(32)};Subject="CN=reports,O=Meshwork"`,
    );
  });
});

describe("the hot path", () => {
  it("a warm router makes no call to the identity Worker: one JWKS fetch, one certificate", async () => {
    const counted = await FakeIdentity.create(TD);
    const router = isolatedRouter(zeroTrust(), { identity: counted.binding(), zeroTrust: true });
    const tokens = await Promise.all(["orders", "reports", "billing"].map((s) => counted.svid(s)));
    await router.call("echo", "/", withSvid(tokens[0]!));
    const before = { jwks: counted.jwksFetches, certs: counted.certifications };
    expect(before).toEqual({ jwks: 1, certs: 1 });
    for (let i = 0; i < 60; i++) {
      const answer = await router.call("echo", `/${i}`, withSvid(tokens[i % 3]!));
      expect(answer.status).toBe(200);
    }
    expect({ jwks: counted.jwksFetches, certs: counted.certifications }).toEqual(before);
  });

  it("a warm caller costs a lookup, not a signature check: one verification per distinct token", async () => {
    const router = routerWith(zeroTrust());
    const tokens = await Promise.all(["orders", "reports", "billing"].map((s) => identity.svid(s)));
    for (let i = 0; i < 90; i++) {
      expect((await router.call("echo", `/${i}`, withSvid(tokens[i % 3]!))).status).toBe(200);
    }
    expect((await router.status()).identity.tokens).toEqual({
      cachedTokens: 3,
      verifications: 3,
      failures: 0,
    });
  });

  it("attack: a leaked token this isolate has cached is refused once its Revocation is published", async () => {
    const router = isolatedRouter(zeroTrust(), {
      identity: identity.binding(),
      zeroTrust: true,
      // Checks KV on every call, in the background; nothing else in waitUntil.
      vars: { CONFIG_REFRESH_SECONDS: "0" },
      policy: undefined,
      backendState: undefined,
    });
    const token = await identity.svid("orders", { jti: "leaked-after-use" });
    expect((await router.call("echo", "/", withSvid(token))).status).toBe(200);
    expect((await router.call("echo", "/", withSvid(token))).status).toBe(200);
    expect((await router.status()).identity.tokens).toMatchObject({ verifications: 1 });

    router.kv.publish(zeroTrust(resource("Revocation", "leak", { jti: "leaked-after-use" })), 2, {
      open: false,
    });
    // The next call is served on the version it has and checks KV in the background.
    await (await router.call("echo", "/", withSvid(token))).background();
    expect((await router.status()).version).toBe(2);

    expectRefused(
      await router.call("echo", "/", withSvid(token)),
      "unauthenticated",
      /jti 'leaked-after-use' is revoked/,
    );
    // Refused from the cache: the revocation is checked per request, not at verification.
    expect((await router.status()).identity.tokens).toMatchObject({
      cachedTokens: 1,
      verifications: 1,
    });
  });

  it("an unknown kid refreshes the JWKS once (a rotation), and a flood of forged kids no more", async () => {
    const rotating = await FakeIdentity.create(TD);
    const router = isolatedRouter(zeroTrust(), { identity: rotating.binding(), zeroTrust: true });
    await router.call("echo", "/", withSvid(await rotating.svid("orders")));
    await rotating.addKey("key-2");
    const answer = await router.call("echo", "/", withSvid(await rotating.svid("orders")));
    expect(answer.status).toBe(200);
    expect(rotating.jwksFetches).toBe(2);
    for (let i = 0; i < 20; i++) {
      const forged = await rotating.svid("orders", { kid: `forged-${i}` });
      expect((await router.call("echo", "/", withSvid(forged))).status).toBe(401);
    }
    expect(rotating.jwksFetches).toBe(2);
  });

  it("attack: a withdrawn key's cached tokens stop working once the JWKS max-age passes, though every caller is warm", async () => {
    const rotating = await FakeIdentity.create(TD);
    rotating.maxAgeSeconds = 60;
    let offsetMs = 0;
    const router = isolatedRouter(zeroTrust(), {
      identity: rotating.binding(),
      zeroTrust: true,
      now: () => Date.now() + offsetMs,
      policy: undefined,
      backendState: undefined,
    });
    const token = await rotating.svid("orders"); // signed with key-1
    expect((await router.call("echo", "/", withSvid(token))).status).toBe(200);
    // The mesh withdraws key-1 (say it leaked). Within the JWKS max-age the isolate keeps it.
    await rotating.addKey("key-2");
    rotating.removeKey("key-1");
    offsetMs = 59_000;
    const fresh = await router.call("echo", "/", withSvid(token));
    expect(fresh.status).toBe(200);
    await fresh.background();
    expect(rotating.jwksFetches).toBe(1);

    // Past it, a warm call is answered from the cache at once — the identity Worker is held
    // and the call still answers — and refreshes the JWKS in the background.
    offsetMs = 61_000;
    rotating.hold();
    const stale = await router.call("echo", "/", withSvid(token));
    expect(stale.status).toBe(200);
    expect(rotating.jwksFetches).toBe(2);
    rotating.resume();
    await stale.background();

    const status = await router.status();
    expect(status.identity.jwks).toMatchObject({
      keys: ["key-2"],
      awaitedFetches: 1,
      backgroundFetches: 1,
    });
    // The withdrawn key's tokens left the cache with it.
    expect(status.identity.tokens.cachedTokens).toBe(0);
    expectRefused(
      await router.call("echo", "/", withSvid(token)),
      "unauthenticated",
      /unknown kid 'key-1'/,
    );
    expect((await router.call("echo", "/", withSvid(await rotating.svid("orders")))).status).toBe(
      200,
    );
  });
});

describe("the router's own endpoints", () => {
  it("/.mesh/health is open and says only that the router is up", async () => {
    const router = routerWith(zeroTrust());
    const response = await router.get("/.mesh/health", {});
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ ok: true });
  });

  it("/.mesh/status answers an admin only: the bearer token, or an admin service's SVID", async () => {
    const router = routerWith(zeroTrust(), { ADMIN_SERVICES: "meshctl" });
    const refused = await router.get("/.mesh/status", {});
    expect(refused.status).toBe(401);
    expect(refused.headers.get("x-mesh-error")).toBe("unauthenticated");
    expect(
      (await router.get("/.mesh/status", { authorization: "Bearer wrong-token-0123456789" }))
        .status,
    ).toBe(401);
    expect(
      (await router.get("/.mesh/status", { authorization: `Bearer ${TEST_ADMIN_TOKEN}` })).status,
    ).toBe(200);
    const admin = await router.get("/.mesh/status", {
      "x-mesh-svid": await identity.svid("meshctl"),
    });
    expect(admin.status).toBe(200);
    const notAdmin = await router.get("/.mesh/status", {
      "x-mesh-svid": await identity.svid("orders"),
    });
    expect(notAdmin.status).toBe(401);
  });

  it("attack: /.mesh/status through a propless Mesh binding with a forged certificate: a certificate-bound admin SVID is refused", async () => {
    const router = routerWith(zeroTrust(), { ADMIN_SERVICES: "meshctl" });
    const bound = await identity.svid("meshctl", {
      claims: { cnf: { "x5t#S256": thumbprintFromHex(FINGERPRINT) } },
    });
    const status = () =>
      new Request("http://router/.mesh/status", {
        headers: { "x-mesh-svid": bound },
        cf: cert(FINGERPRINT),
      } as RequestInit);
    expect((await router.fetch(status(), "http")).status).toBe(200);
    const throughBinding = await router.fetch(status(), "binding");
    expect(throughBinding.status).toBe(401);
    expect(throughBinding.headers.get("x-mesh-error")).toBe("unauthenticated");
  });

  it("?refresh reads KV at most once a second per isolate; sooner is 429 rate_limited with Retry-After", async () => {
    let now = Date.now();
    const router = isolatedRouter(zeroTrust(), {
      identity: identity.binding(),
      zeroTrust: true,
      now: () => now,
    });
    expect((await router.get("/.mesh/status?refresh=1")).status).toBe(200);
    const reads = router.kv.reads;

    now += 999;
    const limited = await router.get("/.mesh/status?refresh=1");
    expect(limited.status).toBe(429);
    expect(limited.headers.get("x-mesh-error")).toBe("rate_limited");
    expect(limited.headers.get("retry-after")).toBe("1");
    expect(await limited.json()).toStrictEqual({
      error: { code: "rate_limited", message: expect.stringMatching(/at most one a second/) },
    });
    expect(router.kv.reads).toBe(reads);
    // Status without ?refresh answers from memory all along; a stranger is refused before the
    // limit, and spends none of it.
    expect((await router.get("/.mesh/status")).status).toBe(200);
    expect((await router.get("/.mesh/status?refresh=1", {})).status).toBe(401);

    now += 1;
    expect((await router.get("/.mesh/status?refresh=1")).status).toBe(200);
    expect(router.kv.reads).toBe(reads + 1);
    expect((await router.get("/.mesh/status?refresh")).status).toBe(429);
  });
});
