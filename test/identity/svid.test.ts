// Issuing identities: JWT-SVIDs to Workers attested by their binding props and to workloads
// outside Workers attested by a bootstrap secret or a verified client certificate; key
// certificates to the router. Every token is checked the way a verifier would: against the JWKS
// the Worker serves. The credentials and revocations are published once, before the first
// request, as the control plane publishes them.
import { env } from "cloudflare:workers";
import { exportJWK } from "jose";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { MeshError } from "../../core/errors.ts";
import {
  identityIssuer,
  RESERVED_SERVICES,
  ROUTER_KEY_TYPE,
  routerId,
  spiffeId,
} from "../../core/identity/names.ts";
import { issueSvid, type IssueContext } from "../../workers/identity/issuer.ts";
import { readSettings } from "../../workers/identity/settings.ts";
import {
  base64urlOfHex,
  callHttp,
  identityAs,
  publish,
  resource,
  sha256Hex,
  TRUST_DOMAIN,
  verifyWithJwks,
} from "./helpers.ts";

const BATCH_FINGERPRINT = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const REPORTS_FINGERPRINT = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";
const REPORTS_SUBJECT = "CN=reports,OU=analytics,O=Example";
const HOUR = 3_600_000;

beforeAll(async () => {
  const credential = (name: string, spec: object) => resource("WorkloadCredential", name, spec);
  await publish([
    credential("billing", {
      service: "billing",
      bootstrap: { secretSha256: await sha256Hex("billing-secret") },
    }),
    credential("legacy", {
      service: "legacy",
      bootstrap: { secretSha256: await sha256Hex("legacy-secret") },
      expires: new Date(Date.now() - HOUR).toISOString(),
    }),
    credential("paused", {
      service: "paused",
      bootstrap: { secretSha256: await sha256Hex("paused-secret") },
      disabled: true,
    }),
    credential("banned", {
      service: "banned",
      bootstrap: { secretSha256: await sha256Hex("banned-secret") },
    }),
    credential("batch-cert", {
      service: "batch",
      certificate: { fingerprintSHA256: BATCH_FINGERPRINT },
    }),
    credential("reports-cert", { service: "reports", certificate: { subjectDN: REPORTS_SUBJECT } }),
    resource("Revocation", "ban", { subject: spiffeId(TRUST_DOMAIN, "banned") }),
    resource("Revocation", "ban-worker", { subject: spiffeId(TRUST_DOMAIN, "retired-worker") }),
    // Tokens of billing issued before a past instant: new ones are fine.
    resource("Revocation", "billing-old", {
      subject: spiffeId(TRUST_DOMAIN, "billing"),
      issuedBefore: new Date(Date.now() - HOUR).toISOString(),
    }),
    // Tokens of a Worker issued before an instant still ahead: a new one would be refused anyway.
    resource("Revocation", "rotating-soon", {
      subject: spiffeId(TRUST_DOMAIN, "rotating"),
      issuedBefore: new Date(Date.now() + HOUR).toISOString(),
    }),
  ]);
});

/** A request for an SVID over HTTP. */
function requestSvid(
  init: { headers?: Record<string, string>; body?: BodyInit; cf?: object } = {},
) {
  return callHttp("/v1/svid", { method: "POST", ...init } as RequestInit);
}

/** `request.cf.tlsClientAuth` as Cloudflare sets it for a presented certificate. */
function clientCert(fields: {
  fingerprint: string;
  subject: string;
  verified?: string;
  revoked?: "0" | "1";
}) {
  return {
    tlsClientAuth: {
      certPresented: "1",
      certVerified: fields.verified ?? "SUCCESS",
      certRevoked: fields.revoked ?? "0",
      certFingerprintSHA256: fields.fingerprint,
      certSubjectDN: fields.subject,
      certIssuerDN: "CN=Example Workload CA",
      certSerial: "01",
      certNotBefore: "Jan  1 00:00:00 2026 GMT",
      certNotAfter: "Jan  1 00:00:00 2027 GMT",
    },
  };
}

const base64url = /^[A-Za-z0-9_-]+$/;

describe("SVIDs for Workers (Identity entrypoint)", () => {
  it("issues a JWT-SVID for the service the binding's props name, verifiable with the JWKS", async () => {
    const issued = await identityAs({ service: "orders" }).svid();
    const { header, payload } = await verifyWithJwks(issued.token, {
      issuer: identityIssuer(TRUST_DOMAIN),
      audience: routerId(TRUST_DOMAIN),
      typ: "JWT",
    });
    expect(Object.keys(header).sort()).toEqual(["alg", "kid", "typ"]);
    expect(header).toMatchObject({ alg: "ES256", typ: "JWT" });
    expect(payload.sub).toBe("spiffe://meshwork.local/orders");
    expect(payload.aud).toBe("spiffe://meshwork.local/meshwork-router");
    expect(payload.exp! - payload.iat!).toBe(300);
    expect(Math.abs(payload.iat! * 1000 - Date.now())).toBeLessThan(60_000);
    // 128 random bits: 22 base64url characters, different every time.
    expect(payload.jti).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(payload.cnf).toBeUndefined();
    expect(issued.spiffeId).toBe("spiffe://meshwork.local/orders");
    expect(issued.expiresAt).toBe(new Date(payload.exp! * 1000).toISOString());
    const again = await identityAs({ service: "orders" }).svid();
    expect((await verifyWithJwks(again.token)).payload.jti).not.toBe(payload.jti);
  });

  it("takes an audience and a lifetime, capped at SVID_MAX_TTL_SECONDS", async () => {
    const audience = ["spiffe://meshwork.local/payments", "https://api.example.com"];
    const issued = await identityAs({ service: "orders" }).svid({ audience, ttlSeconds: 86_400 });
    const { payload } = await verifyWithJwks(issued.token, { audience: audience[1] });
    expect(payload.aud).toEqual(audience);
    expect(payload.exp! - payload.iat!).toBe(3600);
  });

  it("refuses bad options, saying which and why", async () => {
    const orders = identityAs({ service: "orders" });
    await expect(orders.svid({ ttlSeconds: -5 })).rejects.toThrow(
      /^bad_request: invalid SVID request: ttlSeconds: must be at least 1/,
    );
    await expect(orders.svid({ ttlSeconds: 1.5 })).rejects.toThrow(
      /ttlSeconds: must be a whole number/,
    );
    await expect(orders.svid({ audience: "" })).rejects.toThrow(/audience/);
    await expect(orders.svid({ ttl: 60 } as never)).rejects.toThrow(/bad_request: .*ttl/);
  });

  it("refuses a binding whose props name no service, or not a service", async () => {
    await expect(identityAs({}).svid()).rejects.toThrow(
      /^unauthenticated: .*props.*service = "<your service>"/,
    );
    await expect(identityAs({ service: "Not A Name" }).svid()).rejects.toThrow(
      /^unauthenticated: .*not a service name/,
    );
  });

  it("attack: a binding's props name one of the mesh's own services — no SVID, the reason only in the log", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    for (const service of RESERVED_SERVICES) {
      await expect(identityAs({ service }).svid()).rejects.toThrow(
        /^forbidden: the identity Worker issues no token to this caller$/,
      );
    }
    const reasons = warn.mock.calls.map(([line]) => JSON.parse(String(line)).reason as string);
    warn.mockRestore();
    expect(reasons).toEqual(
      RESERVED_SERVICES.map(
        (s) => `'${s}' is one of the mesh's own services: no workload may have its identity`,
      ),
    );
    // The router's own binding still has its passport key certified (that is no SVID).
    const { publicKey } = (await crypto.subtle.generateKey(
      { name: "ECDSA", namedCurve: "P-256" },
      true,
      ["sign", "verify"],
    )) as CryptoKeyPair;
    const certified = await identityAs({ service: "meshwork-router" }).certifyRouterKey(
      await exportJWK(publicKey),
    );
    expect(certified.certificate).toMatch(/^ey/);
  });

  it("attack: a credential for one of the mesh's own services that reached KV unvalidated — issuing refuses it too", async () => {
    const signed: string[] = [];
    const context: IssueContext = {
      settings: readSettings(env),
      revocations: [],
      sign: async (typ) => {
        signed.push(typ);
        return "signed";
      },
      now: Date.now(),
    };
    for (const service of RESERVED_SERVICES) {
      const refused = await issueSvid(context, service, {}).catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(MeshError);
      expect(refused).toMatchObject({ code: "forbidden" });
    }
    expect(signed).toEqual([]);
    await issueSvid(context, "orders", {});
    expect(signed).toEqual(["JWT"]);
  });

  it("issues nothing to a revoked subject, nor to one whose revocation's issuedBefore is ahead", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    await expect(identityAs({ service: "retired-worker" }).svid()).rejects.toThrow(
      /^forbidden: the identity Worker issues no token to this caller$/,
    );
    await expect(identityAs({ service: "rotating" }).svid()).rejects.toThrow(/^forbidden: /);
    const reasons = warn.mock.calls.map(([line]) => JSON.parse(String(line)).reason as string);
    warn.mockRestore();
    // Which Revocation refused it is the operator's to know, in the log.
    expect(reasons).toEqual([
      "spiffe://meshwork.local/retired-worker is revoked by Revocation 'ban-worker'",
      "spiffe://meshwork.local/rotating is revoked by Revocation 'rotating-soon'",
    ]);
  });

  it("serves only the JWKS and health through the binding's fetch: no POST /v1/svid, whatever request.cf says", async () => {
    const orders = identityAs({ service: "orders" });
    const jwks = await orders.fetch(new Request("https://identity.example/.well-known/jwks.json"));
    expect(jwks.status).toBe(200);
    expect(((await jwks.json()) as { keys: unknown[] }).keys.length).toBeGreaterThanOrEqual(2);
    expect((await orders.fetch(new Request("https://identity.example/health"))).status).toBe(200);

    // A Worker writes request.cf itself over a binding: a "verified" certificate of another
    // service's must get it nothing (the same request is honoured on the HTTP entry).
    const forged = () =>
      new Request("https://identity.example/v1/svid", {
        method: "POST",
        cf: clientCert({ fingerprint: BATCH_FINGERPRINT, subject: "CN=batch" }),
      } as RequestInit);
    const refused = await orders.fetch(forged());
    expect(refused.status).toBe(404);
    expect(refused.headers.get("x-mesh-error")).toBe("no_route");
    expect(((await refused.json()) as { error: { message: string } }).error.message).toMatch(
      /^no endpoint POST \/v1\/svid: .*serves GET \/\.well-known\/jwks\.json and GET \/health; a Worker's SVID comes from the Identity entrypoint's svid\(\) RPC method/,
    );
    const bootstrap = await orders.fetch(
      new Request("https://identity.example/v1/svid", {
        method: "POST",
        headers: { authorization: "Bearer billing-secret" },
      }),
    );
    expect(bootstrap.status).toBe(404);
  });
});

describe("router key certificates", () => {
  const routerKey = async () => {
    const pair = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
      "sign",
      "verify",
    ])) as CryptoKeyPair;
    return {
      pair,
      publicJwk: await exportJWK(pair.publicKey),
      privateJwk: await exportJWK(pair.privateKey),
    };
  };

  it("certifies the router's public key: typ, issuer, subject, lifetime and the key in cnf", async () => {
    const { publicJwk } = await routerKey();
    const router = identityAs({ service: "meshwork-router" });
    const { certificate, expiresAt } = await router.certifyRouterKey({
      ...publicJwk,
      alg: "ES256",
      key_ops: ["verify"],
    });
    const { header, payload } = await verifyWithJwks(certificate, {
      issuer: identityIssuer(TRUST_DOMAIN),
      subject: routerId(TRUST_DOMAIN),
      typ: ROUTER_KEY_TYPE,
    });
    expect(header.typ).toBe("mesh-router-key+jwt");
    expect(payload.exp! - payload.iat!).toBe(3600);
    expect(payload.jti).toMatch(/^[A-Za-z0-9_-]{22}$/);
    // Only what identifies the key: no alg, key_ops or ext from the request.
    expect(payload.cnf).toEqual({
      jwk: { kty: "EC", crv: "P-256", x: publicJwk.x, y: publicJwk.y },
    });
    expect(expiresAt).toBe(new Date(payload.exp! * 1000).toISOString());
  });

  it("refuses every Worker but the router", async () => {
    const { publicJwk } = await routerKey();
    await expect(identityAs({ service: "orders" }).certifyRouterKey(publicJwk)).rejects.toThrow(
      /^forbidden: only the router \(props.service = "meshwork-router"\).*'orders'/,
    );
    await expect(identityAs({}).certifyRouterKey(publicJwk)).rejects.toThrow(/^unauthenticated: /);
  });

  it("refuses a private key, and anything but a public P-256 point", async () => {
    const router = identityAs({ service: "meshwork-router" });
    const { publicJwk, privateJwk } = await routerKey();
    await expect(router.certifyRouterKey(privateJwk)).rejects.toThrow(
      /^bad_request: invalid router key: the JWK holds a private key \(d\)/,
    );
    await expect(router.certifyRouterKey({ ...publicJwk, crv: "P-384" })).rejects.toThrow(
      /crv must be "P-256"/,
    );
    await expect(router.certifyRouterKey({ kty: "oct", k: "c2VjcmV0" })).rejects.toThrow(
      /kty must be "EC"/,
    );
    const offCurve = { ...publicJwk, y: publicJwk.x };
    await expect(router.certifyRouterKey(offCurve)).rejects.toThrow(/not a point on P-256/);
    await expect(router.certifyRouterKey("not a key")).rejects.toThrow(/must be a JWK object/);
  });
});

describe("SVIDs for workloads outside Workers (POST /v1/svid)", () => {
  it("accepts a registered bootstrap secret and honours the requested lifetime", async () => {
    const response = await requestSvid({
      headers: { authorization: "Bearer billing-secret", "content-type": "application/json" },
      body: JSON.stringify({ ttlSeconds: 60 }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("no-store");
    const body = (await response.json()) as { token: string; spiffeId: string; expiresAt: string };
    expect(body.spiffeId).toBe("spiffe://meshwork.local/billing");
    const { payload } = await verifyWithJwks(body.token, {
      issuer: identityIssuer(TRUST_DOMAIN),
      audience: routerId(TRUST_DOMAIN),
    });
    expect(payload.sub).toBe("spiffe://meshwork.local/billing");
    expect(payload.exp! - payload.iat!).toBe(60);
    expect(payload.cnf).toBeUndefined();
    expect(body.expiresAt).toBe(new Date(payload.exp! * 1000).toISOString());
  });

  it("refuses a wrong, disabled or expired secret, or none, alike: 401 with no detail", async () => {
    // The reason goes to the operator's log, never to the caller.
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const headerSets: Record<string, string>[] = [
      { authorization: "Bearer not-the-secret" },
      { authorization: "Bearer paused-secret" },
      { authorization: "Bearer legacy-secret" },
      { authorization: "Basic YmlsbGluZzpiaWxsaW5nLXNlY3JldA==" },
      {},
    ];
    const refusals = await Promise.all(
      headerSets.map(async (headers) => {
        const response = await requestSvid({ headers });
        return {
          status: response.status,
          error: response.headers.get("x-mesh-error"),
          challenge: response.headers.get("www-authenticate"),
          body: await response.text(),
        };
      }),
    );
    const first = refusals[0]!;
    expect(first.status).toBe(401);
    expect(first.error).toBe("unauthenticated");
    expect(first.challenge).toMatch(/^Bearer /);
    expect(JSON.parse(first.body)).toEqual({
      error: {
        code: "unauthenticated",
        message: expect.stringMatching(/^no valid workload credential/),
      },
    });
    for (const refusal of refusals) expect(refusal).toEqual(first);
    const reasons = warn.mock.calls.map(([line]) => JSON.parse(String(line)).reason as string);
    warn.mockRestore();
    expect(reasons).toEqual(
      expect.arrayContaining([
        "the bootstrap secret matches no WorkloadCredential",
        "WorkloadCredential 'paused' is disabled or expired",
        "WorkloadCredential 'legacy' is disabled or expired",
        "the Authorization header is not 'Bearer <bootstrap secret>'",
        "no verified client certificate and no Authorization header",
      ]),
    );
  });

  it("checks who is asking before what they ask: no 400 for an anonymous caller", async () => {
    const response = await requestSvid({ body: "{not json" });
    expect(response.status).toBe(401);
  });

  it("answers 400 naming what is wrong with the body", async () => {
    const headers = { authorization: "Bearer billing-secret" };
    const notJson = await requestSvid({ headers, body: "{not json" });
    expect(notJson.status).toBe(400);
    expect(notJson.headers.get("x-mesh-error")).toBe("bad_request");
    expect(((await notJson.json()) as { error: { message: string } }).error.message).toMatch(
      /^the body is not JSON/,
    );
    const badTtl = await requestSvid({ headers, body: JSON.stringify({ ttlSeconds: "60" }) });
    expect(badTtl.status).toBe(400);
    expect(((await badTtl.json()) as { error: { message: string } }).error.message).toMatch(
      /ttlSeconds: must be a number of seconds/,
    );
    const notObject = await requestSvid({ headers, body: "[]" });
    expect(((await notObject.json()) as { error: { message: string } }).error.message).toMatch(
      /must be a JSON object/,
    );
  });

  it("answers 403 to a revoked subject with a valid credential, the reason only in the log", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const response = await requestSvid({ headers: { authorization: "Bearer banned-secret" } });
    const logged = warn.mock.calls.map(([line]) => JSON.parse(String(line)) as object);
    warn.mockRestore();
    expect(response.status).toBe(403);
    expect(response.headers.get("x-mesh-error")).toBe("forbidden");
    expect(await response.json()).toEqual({
      error: { code: "forbidden", message: "the identity Worker issues no token to this caller" },
    });
    expect(logged).toEqual([
      expect.objectContaining({
        event: "identity_refused",
        code: "forbidden",
        reason: "spiffe://meshwork.local/banned is revoked by Revocation 'ban'",
      }),
    ]);
  });

  it("reads at most 4 KiB of body, counting bytes, and stops reading there", async () => {
    const headers = { authorization: "Bearer billing-secret" };
    const message = async (response: Response) =>
      ((await response.json()) as { error: { message: string } }).error.message;
    // 2,100 characters of 'é' are 4,200 bytes: over the limit though under 4,096 characters.
    // Streamed, so no Content-Length says so up front.
    const accents = new TextEncoder().encode(JSON.stringify({ audience: "é".repeat(2100) }));
    const streamed = await requestSvid({
      headers,
      body: new ReadableStream({
        start(controller) {
          controller.enqueue(accents);
          controller.close();
        },
      }),
    });
    expect(streamed.status).toBe(400);
    expect(await message(streamed)).toBe("the body is over 4096 bytes");

    // An endless body is refused once it passes the limit, not read to its end.
    let pulled = 0;
    const endless = await requestSvid({
      headers,
      body: new ReadableStream({
        pull(controller) {
          pulled++;
          controller.enqueue(new Uint8Array(1024).fill(0x20));
        },
      }),
    });
    expect(endless.status).toBe(400);
    expect(await message(endless)).toBe("the body is over 4096 bytes");
    expect(pulled).toBeLessThan(64);

    const declared = await requestSvid({ headers, body: " ".repeat(4097) });
    expect(await message(declared)).toBe("the body is over 4096 bytes");
    // Exactly the limit is fine.
    const padded = JSON.stringify({ ttlSeconds: 60 }).padEnd(4096, " ");
    expect((await requestSvid({ headers, body: padded })).status).toBe(200);
  });

  it("binds the token to a verified client certificate registered by fingerprint (RFC 8705 cnf)", async () => {
    // Cloudflare reports the fingerprint in hex; the credential holds it in lower case.
    const response = await requestSvid({
      cf: clientCert({ fingerprint: BATCH_FINGERPRINT.toUpperCase(), subject: "CN=batch-7" }),
    });
    expect(response.status).toBe(200);
    const { token } = (await response.json()) as { token: string };
    const { payload } = await verifyWithJwks(token);
    expect(payload.sub).toBe("spiffe://meshwork.local/batch");
    expect(payload.cnf).toEqual({ "x5t#S256": base64urlOfHex(BATCH_FINGERPRINT) });
    expect((payload.cnf as Record<string, string>)["x5t#S256"]).toMatch(base64url);
  });

  it("binds the token to a verified client certificate registered by subject DN", async () => {
    const response = await requestSvid({
      cf: clientCert({ fingerprint: REPORTS_FINGERPRINT, subject: REPORTS_SUBJECT }),
    });
    expect(response.status).toBe(200);
    const { payload } = await verifyWithJwks(((await response.json()) as { token: string }).token);
    expect(payload.sub).toBe("spiffe://meshwork.local/reports");
    expect(payload.cnf).toEqual({ "x5t#S256": base64urlOfHex(REPORTS_FINGERPRINT) });
  });

  it("refuses a certificate that failed verification, is revoked, or is not registered (401)", async () => {
    const cases = [
      clientCert({
        fingerprint: BATCH_FINGERPRINT,
        subject: "CN=batch",
        verified: "FAILED:self signed certificate",
      }),
      clientCert({ fingerprint: BATCH_FINGERPRINT, subject: "CN=batch", revoked: "1" }),
      clientCert({ fingerprint: REPORTS_FINGERPRINT, subject: "CN=someone-else" }),
    ];
    for (const cf of cases) {
      const response = await requestSvid({ cf });
      expect(response.status).toBe(401);
      expect(response.headers.get("x-mesh-error")).toBe("unauthenticated");
    }
  });

  it("falls back to the bootstrap secret when the certificate proves nothing", async () => {
    const response = await requestSvid({
      cf: clientCert({ fingerprint: REPORTS_FINGERPRINT, subject: "CN=someone-else" }),
      headers: { authorization: "Bearer billing-secret" },
    });
    expect(response.status).toBe(200);
    const { payload } = await verifyWithJwks(((await response.json()) as { token: string }).token);
    expect(payload.sub).toBe("spiffe://meshwork.local/billing");
    expect(payload.cnf).toBeUndefined();
  });
});
