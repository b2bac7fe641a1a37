// The mesh's signing keys as verifiers see them: the JWKS (with its cache headers), the health
// endpoint, and the SigningKeys Durable Object rotating on its alarm as core/identity/key-ring.ts
// plans. Time is not waited for: the test moves the object's stored schedule back, which is what
// the passing of that much time looks like to it, then runs its alarm.
import { env } from "cloudflare:workers";
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { calculateJwkThumbprint, decodeProtectedHeader } from "jose";
import { describe, expect, it } from "vitest";
import { SIGNING_KEYS_NAME } from "../../durable-objects/signing-keys.ts";
import { readSettings } from "../../workers/identity/settings.ts";
import { callHttp, fetchJwks, identityAs, verifyWithJwks } from "./helpers.ts";

const MINUTE = 60_000;
const DAY = 86_400_000;
// With the defaults (tokens of at most an hour, a 5-minute max-age, a minute of skew), a key is
// published 61 minutes before it signs and kept 61 minutes after it stops.
const LEAD = 61 * MINUTE;

type StoredKey = {
  kid: string;
  created_at: number;
  activates_at: number;
  retires_at: number;
  expires_at: number;
};

const signingKeys = (name = SIGNING_KEYS_NAME) => env.SIGNING_KEYS.getByName(name);

/** The keys as the object stores them, oldest first, and its alarm. */
function stored(stub = signingKeys()) {
  return runInDurableObject(stub, async (_instance, state) => ({
    keys: state.storage.sql
      .exec<StoredKey>(
        "SELECT kid, created_at, activates_at, retires_at, expires_at FROM signing_keys ORDER BY activates_at",
      )
      .toArray(),
    alarm: await state.storage.getAlarm(),
  }));
}

/** Makes `ms` pass for the object's schedule: every stored instant moves back by `ms`. */
function elapse(ms: number) {
  return runInDurableObject(signingKeys(), (_instance, state) => {
    state.storage.sql.exec(
      "UPDATE signing_keys SET created_at = created_at - ?1, activates_at = activates_at - ?1, retires_at = retires_at - ?1, expires_at = expires_at - ?1",
      ms,
    );
  });
}

describe("the JWKS", () => {
  it("serves the current and next public keys, cacheable for JWKS_MAX_AGE_SECONDS", async () => {
    const response = await callHttp("/.well-known/jwks.json");
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("public, max-age=300");
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    const { keys } = (await response.json()) as { keys: Record<string, string>[] };
    expect(keys).toHaveLength(2);
    for (const key of keys) {
      // Public only, and named by its RFC 7638 thumbprint.
      expect(Object.keys(key).sort()).toEqual(["alg", "crv", "kid", "kty", "use", "x", "y"]);
      expect(key).toMatchObject({ kty: "EC", crv: "P-256", alg: "ES256", use: "sig" });
      expect(key.kid).toBe(
        await calculateJwkThumbprint({ kty: "EC", crv: "P-256", x: key.x!, y: key.y! }),
      );
    }
    // Next first, then current: the current one signs.
    const { token } = await identityAs({ service: "orders" }).svid();
    expect(decodeProtectedHeader(token).kid).toBe(keys[1]!.kid);
  });

  it("is the same set for every caller at the same time (one ring, not one per isolate)", async () => {
    const [a, b] = await Promise.all([fetchJwks(), fetchJwks()]);
    expect(a).toEqual(b);
  });
});

describe("settings", () => {
  it("uses the default for a bad var and reports it, as /health shows", () => {
    const settings = readSettings({
      TRUST_DOMAIN: "Mesh Work",
      SVID_TTL_SECONDS: "5m",
      SVID_MAX_TTL_SECONDS: "600",
      KEY_ROTATION_SECONDS: "0",
    });
    expect(settings).toMatchObject({
      trustDomain: "meshwork.local",
      svidTtlSeconds: 300,
      svidMaxTtlSeconds: 600,
      routerKeyTtlSeconds: 3600,
      keyRotationSeconds: 86_400,
      jwksMaxAgeSeconds: 300,
    });
    expect(settings.problems).toEqual([
      "TRUST_DOMAIN=\"Mesh Work\" is not a trust domain (lower-case letters, digits, '.', '_' and '-'); using \"meshwork.local\"",
      'SVID_TTL_SECONDS="5m" is not a whole number of seconds from 1 to 86400; using 300',
      'KEY_ROTATION_SECONDS="0" is not a whole number of seconds from 60 to 31536000; using 86400',
    ]);
  });

  it("caps the default lifetime at the maximum, and says when the rotation period is stretched", () => {
    const settings = readSettings({
      SVID_TTL_SECONDS: "900",
      SVID_MAX_TTL_SECONDS: "600",
      KEY_ROTATION_SECONDS: "600",
    });
    expect(settings.svidTtlSeconds).toBe(600);
    expect(settings.problems).toEqual([
      "SVID_TTL_SECONDS=900 is more than SVID_MAX_TTL_SECONDS=600; using 600",
      expect.stringMatching(
        /^KEY_ROTATION_SECONDS=600 is shorter than .* keys rotate every 3660 s$/,
      ),
    ]);
  });
});

describe("health and unknown paths", () => {
  it("says it is up, with the trust domain and no problems, and nothing secret", async () => {
    const response = await callHttp("/health");
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      ok: true,
      trustDomain: "meshwork.local",
      problems: [],
    });
  });

  it("answers 404 listing the endpoints for anything else", async () => {
    const response = await callHttp("/v1/token");
    expect(response.status).toBe(404);
    expect(response.headers.get("x-mesh-error")).toBe("no_route");
    expect(((await response.json()) as { error: { message: string } }).error.message).toMatch(
      /GET \/\.well-known\/jwks\.json, GET \/health and POST \/v1\/svid/,
    );
  });
});

describe("the SigningKeys Durable Object", () => {
  it("bootstraps once, however many first calls arrive together", async () => {
    const fresh = signingKeys("bootstrap-race");
    const answers = await Promise.all(Array.from({ length: 8 }, () => fresh.jwks()));
    for (const answer of answers) expect(answer).toEqual(answers[0]);
    const { keys, alarm } = await stored(fresh);
    expect(keys).toHaveLength(2);
    const [current, next] = keys;
    expect(next!.activates_at - current!.activates_at).toBe(DAY);
    expect(alarm).toBe(next!.activates_at);
    // An alarm with nothing due changes nothing, and leaves the next one scheduled.
    expect(await runDurableObjectAlarm(fresh)).toBe(true);
    expect(await stored(fresh)).toEqual({ keys, alarm });
  });

  it("refuses to sign a token without exp, or one outliving what the ring keeps keys for", async () => {
    const keys = signingKeys();
    const now = Math.floor(Date.now() / 1000);
    const attempt = async (claims: Record<string, unknown>) => await keys.sign("JWT", claims);
    await expect(attempt({ sub: "x" })).rejects.toThrow(/claims.exp must be a number/);
    await expect(attempt({ sub: "x", exp: now + 7200 })).rejects.toThrow(
      /keeps keys for tokens of at most 3600 s/,
    );
    await expect(async () => await keys.sign("", { exp: now + 60 })).rejects.toThrow(/typ/);
    const token = await keys.sign("mesh-test+jwt", { sub: "x", exp: now + 60 });
    expect(decodeProtectedHeader(token)).toEqual({
      alg: "ES256",
      kid: expect.any(String),
      typ: "mesh-test+jwt",
    });
  });

  it("rotates on its alarm as the key ring says: hand-over, a new successor, the old key kept then dropped", async () => {
    const before = (await fetchJwks()).keys.map((key) => key.kid);
    expect(before).toHaveLength(2);
    const [next, current] = before;
    const { token: oldToken } = await identityAs({ service: "orders" }).svid();
    expect(decodeProtectedHeader(oldToken).kid).toBe(current);

    // A day later, the successor's hand-over is due: the alarm publishes the next one.
    await elapse(DAY);
    expect(await runDurableObjectAlarm(signingKeys())).toBe(true);
    const rotated = await stored();
    expect(rotated.keys.map((key) => key.kid).slice(0, 2)).toEqual([current, next]);
    expect(rotated.keys).toHaveLength(3);
    const [old, signing, successor] = rotated.keys;
    expect(old!.retires_at).toBe(signing!.activates_at);
    expect(old!.expires_at - old!.retires_at).toBe(LEAD);
    // Published now, signing a period after the key it succeeds started.
    expect(successor!.activates_at).toBe(signing!.activates_at + DAY);
    expect(successor!.activates_at - successor!.created_at).toBeGreaterThanOrEqual(LEAD);
    // The next alarm is when the old key's last token has expired.
    expect(rotated.alarm).toBe(old!.expires_at);

    const during = (await fetchJwks()).keys.map((key) => key.kid);
    expect(during).toEqual([successor!.kid, next, current]);
    const { token: newToken } = await identityAs({ service: "orders" }).svid();
    expect(decodeProtectedHeader(newToken).kid).toBe(next);
    // Tokens of the old key still verify while it is published.
    await expect(verifyWithJwks(oldToken)).resolves.toBeDefined();

    // Past that instant, the alarm drops the old key: it leaves the JWKS and storage.
    await elapse(LEAD);
    expect(await runDurableObjectAlarm(signingKeys())).toBe(true);
    const cleaned = await stored();
    expect(cleaned.keys.map((key) => key.kid)).toEqual([next, successor!.kid]);
    // Next, the successor's hand-over (its stored time moved back with the rest).
    expect(cleaned.alarm).toBe(cleaned.keys[1]!.activates_at);
    expect(cleaned.keys[1]!.activates_at).toBe(successor!.activates_at - LEAD);
    expect((await fetchJwks()).keys.map((key) => key.kid)).toEqual([successor!.kid, next]);
  });
});
