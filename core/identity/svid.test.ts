import { exportJWK, generateKeyPair, SignJWT, type JWK } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { identityIssuer, routerId } from "./names.ts";
import { SvidError, thumbprintFromHex, verifySvid, type SvidCheck } from "./svid.ts";

const TD = "meshwork.local";
const NOW = Date.parse("2026-11-26T12:00:00Z");
const KID = "mesh-key-1";

let privateKey: CryptoKey;
let publicKey: CryptoKey;
let publicJwk: JWK;

beforeAll(async () => {
  ({ privateKey, publicKey } = await generateKeyPair("ES256"));
  publicJwk = await exportJWK(publicKey);
});

const check = (overrides: Partial<SvidCheck> = {}): SvidCheck => ({
  trustDomain: TD,
  key: (kid) => (kid === KID ? publicKey : undefined),
  now: NOW,
  skewSeconds: 30,
  ...overrides,
});

interface TokenOptions {
  header?: Record<string, unknown>;
  claims?: Record<string, unknown>;
  iat?: number;
  exp?: number;
  key?: CryptoKey;
}

/** A JWT-SVID as the identity Worker signs it, with `options` changing any part of it. */
function svid(options: TokenOptions = {}): Promise<string> {
  const iat = options.iat ?? Math.floor(NOW / 1000) - 10;
  return new SignJWT({
    iss: identityIssuer(TD),
    sub: `spiffe://${TD}/orders`,
    aud: routerId(TD),
    jti: "jti-1",
    ...options.claims,
  })
    .setProtectedHeader({ alg: "ES256", kid: KID, typ: "JWT", ...options.header })
    .setIssuedAt(iat)
    .setExpirationTime(options.exp ?? iat + 300)
    .sign(options.key ?? privateKey);
}

async function refusedWith(token: string, pattern: RegExp, overrides?: Partial<SvidCheck>) {
  const error = await verifySvid(token, check(overrides)).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(SvidError);
  expect((error as SvidError).reason).toMatch(pattern);
}

const b64 = (value: unknown) =>
  btoa(JSON.stringify(value)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

describe("verifySvid", () => {
  it("accepts the identity Worker's token and says who it names", async () => {
    const verified = await verifySvid(await svid(), check());
    expect(verified).toMatchObject({
      subject: "spiffe://meshwork.local/orders",
      service: "orders",
      jti: "jti-1",
      certificateThumbprint: undefined,
    });
    expect(verified.expiresAt - verified.issuedAt).toBe(300_000);
  });

  it("attack: alg none", async () => {
    const [, payload] = (await svid()).split(".");
    await refusedWith(
      `${b64({ alg: "none", kid: KID, typ: "JWT" })}.${payload}.`,
      /empty|base64url/,
    );
    await refusedWith(`${b64({ alg: "none", kid: KID, typ: "JWT" })}.${payload}.AAAA`, /alg none/);
  });

  it("attack: HS256 signed with the public key as the HMAC secret", async () => {
    const secret = new TextEncoder().encode(JSON.stringify(publicJwk));
    const token = await new SignJWT({ sub: `spiffe://${TD}/orders` })
      .setProtectedHeader({ alg: "HS256", kid: KID, typ: "JWT" })
      .sign(secret);
    await refusedWith(token, /alg HS256 is not ES256/);
  });

  it("attack: unknown kid", async () => {
    await refusedWith(await svid({ header: { kid: "attacker-key" } }), /unknown kid/);
  });

  it("attack: signed by a key that is not the mesh's, under the mesh's kid", async () => {
    const { privateKey: other } = await generateKeyPair("ES256");
    await refusedWith(await svid({ key: other }), /bad signature/);
  });

  it("attack: expired", async () => {
    const iat = Math.floor(NOW / 1000) - 600;
    await refusedWith(await svid({ iat, exp: iat + 300 }), /expired/);
  });

  it("tolerates 30 s of clock skew, not more", async () => {
    const iat = Math.floor(NOW / 1000) - 320;
    await expect(verifySvid(await svid({ iat, exp: iat + 300 }), check())).resolves.toBeDefined();
    await refusedWith(await svid({ iat: iat - 20, exp: iat + 280 }), /expired/);
  });

  it("attack: not yet valid (nbf in the future)", async () => {
    await refusedWith(
      await svid({ claims: { nbf: Math.floor(NOW / 1000) + 120 } }),
      /not yet valid/,
    );
  });

  it("attack: issued in the future", async () => {
    await refusedWith(await svid({ iat: Math.floor(NOW / 1000) + 120 }), /future|iat/);
  });

  it("attack: wrong aud", async () => {
    await refusedWith(await svid({ claims: { aud: `spiffe://${TD}/payments` } }), /claim aud/);
  });

  it("attack: wrong iss", async () => {
    await refusedWith(await svid({ claims: { iss: "https://attacker.example" } }), /claim iss/);
  });

  it("attack: foreign trust domain", async () => {
    await refusedWith(
      await svid({ claims: { sub: "spiffe://evil.example/orders" } }),
      /not a service of this trust domain/,
    );
    await refusedWith(
      await svid({ claims: { sub: `spiffe://${TD}/a/b` } }),
      /not a service of this trust domain/,
    );
  });

  it("attack: tampered payload", async () => {
    const [header, , signature] = (await svid()).split(".");
    const forged = b64({
      iss: identityIssuer(TD),
      sub: `spiffe://${TD}/admin`,
      aud: routerId(TD),
      jti: "x",
      iat: Math.floor(NOW / 1000),
      exp: Math.floor(NOW / 1000) + 300,
    });
    await refusedWith(`${header}.${forged}.${signature}`, /bad signature/);
  });

  it("attack: stripped signature", async () => {
    const [header, payload] = (await svid()).split(".");
    await refusedWith(`${header}.${payload}.`, /empty|stripped/);
    await refusedWith(`${header}.${payload}`, /three parts/);
  });

  it("attack: oversized token", async () => {
    await refusedWith(await svid({ claims: { pad: "x".repeat(5000) } }), /limit is 4096/);
  });

  it("attack: unknown crit", async () => {
    // jose will not sign an unknown crit, so this token is signed by hand (validly).
    const now = Math.floor(NOW / 1000);
    const signingInput = `${b64({ alg: "ES256", kid: KID, typ: "JWT", crit: ["exp-policy"], "exp-policy": 1 })}.${b64(
      {
        iss: identityIssuer(TD),
        sub: `spiffe://${TD}/orders`,
        aud: routerId(TD),
        jti: "j",
        iat: now,
        exp: now + 300,
      },
    )}`;
    const signature = await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-256" },
      privateKey,
      new TextEncoder().encode(signingInput),
    );
    const encoded = btoa(String.fromCharCode(...new Uint8Array(signature)))
      .replace(/\+/g, "-")
      .replace(/\//g, "_")
      .replace(/=+$/, "");
    await refusedWith(`${signingInput}.${encoded}`, /'crit' is not accepted/);
  });

  it("attack: injected jku, x5u and jwk", async () => {
    const { privateKey: attacker, publicKey: attackerPublic } = await generateKeyPair("ES256");
    const jwk = await exportJWK(attackerPublic);
    for (const header of [
      { jku: "https://attacker.example/jwks.json" },
      { x5u: "https://attacker.example/cert.pem" },
      { jwk },
      { x5c: ["MIIB"] },
    ]) {
      const token = await svid({ header: { ...header, kid: "attacker" }, key: attacker });
      await refusedWith(token, /is not accepted/);
      // Under the mesh's own kid the key is the mesh's, and the signature fails.
      await refusedWith(await svid({ header, key: attacker }), /is not accepted/);
    }
  });

  it("attack: two X-Mesh-SVID headers (joined by a comma)", async () => {
    const token = await svid();
    await refusedWith(`${token}, ${token}`, /more than one token/);
  });

  it("attack: another kind of token (a passport's typ)", async () => {
    await refusedWith(await svid({ header: { typ: "mesh-passport+jwt" } }), /typ/);
  });

  it("takes the certificate a token is bound to from cnf", async () => {
    const fingerprint = "ab".repeat(32);
    const thumbprint = thumbprintFromHex(fingerprint)!;
    const verified = await verifySvid(
      await svid({ claims: { cnf: { "x5t#S256": thumbprint } } }),
      check(),
    );
    expect(verified.certificateThumbprint).toBe(thumbprint);
    await refusedWith(await svid({ claims: { cnf: { jkt: "x" } } }), /cnf holds no x5t#S256/);
  });
});

describe("thumbprintFromHex", () => {
  it("turns a hex SHA-256 fingerprint into RFC 8705's base64url thumbprint", () => {
    expect(thumbprintFromHex("00".repeat(32))).toBe("A".repeat(43));
    expect(thumbprintFromHex("FF".repeat(32))).toBe(thumbprintFromHex("ff".repeat(32)));
    expect(thumbprintFromHex("abc")).toBeUndefined();
  });
});
