// The mesh's signing keys as verifiers see them: the JWKS (with its cache headers), the health
// endpoint, and the SigningKeys Durable Object rotating on its alarm as core/identity/key-ring.ts
// plans. Time is not waited for: the test sets the object's clock (its `now` field, through
// runInDurableObject) and runs its alarm when the schedule says it is due.
import { env } from "cloudflare:workers";
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import {
  calculateJwkThumbprint,
  createLocalJWKSet,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type JSONWebKeySet,
} from "jose";
import { describe, expect, it } from "vitest";
import { VERIFIER_CLOCK_SKEW_MS } from "../../core/identity/key-ring.ts";
import {
  identityIssuer,
  PASSPORT_TYPE,
  ROUTER_KEY_TYPE,
  SVID_TYPE,
} from "../../core/identity/names.ts";
import { SIGNING_KEYS_NAME, SigningKeys } from "../../durable-objects/signing-keys.ts";
import { CLOCK_SKEW_SECONDS } from "../../workers/router/identity/authenticator.ts";
import { readSettings } from "../../workers/identity/settings.ts";
import { callHttp, fetchJwks, identityAs, TRUST_DOMAIN } from "./helpers.ts";

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
// With the defaults (tokens of at most an hour, a 5-minute max-age, 30 s of verifiers' skew and
// 5 s of the issuer's), a key is published an hour and 35 s before it signs and kept an hour and
// 35 s after it stops; the signer takes an `exp` at most an hour and 5 s ahead.
const LEAD = HOUR + 35 * SECOND;
const AFTERLIFE = HOUR + 35 * SECOND;
const LONGEST = HOUR + 5 * SECOND;
const ISSUER = identityIssuer(TRUST_DOMAIN);

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

/**
 * Gives the object a clock the test moves, starting at a whole second of real time (so its
 * alarms are all ahead of the real clock and none fires on its own).
 */
async function injectClock(stub: ReturnType<typeof signingKeys>) {
  const clock = { now: Math.ceil(Date.now() / SECOND) * SECOND };
  await runInDurableObject(stub, (instance: SigningKeys) => {
    instance.now = () => clock.now;
  });
  return clock;
}

/** Claims the identity Worker would sign at `now` (ms), living `lifetimeMs`. */
function claimsAt(now: number, lifetimeMs: number, sub = "spiffe://meshwork.local/orders") {
  const iat = now / SECOND;
  return { iss: ISSUER, sub, iat, exp: iat + lifetimeMs / SECOND };
}

/** Verifies `token` as a verifier would at `now`: against `jwks`, with the router's skew. */
function verifyAt(token: string, jwks: JSONWebKeySet, now: number) {
  return jwtVerify(token, createLocalJWKSet(jwks), {
    algorithms: ["ES256"],
    issuer: ISSUER,
    currentDate: new Date(now),
    clockTolerance: CLOCK_SKEW_SECONDS,
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
        new RegExp(
          `^KEY_ROTATION_SECONDS=600 is shorter than .* keys rotate every ${LEAD / SECOND} s$`,
        ),
      ),
    ]);
  });
});

describe("health and unknown paths", () => {
  it("says it is up, with the trust domain, the config held, no problems, and nothing secret", async () => {
    // An SVID makes this isolate load the config; nothing is published in this file.
    await identityAs({ service: "orders" }).svid();
    const response = await callHttp("/health");
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(await response.json()).toEqual({
      ok: true,
      trustDomain: "meshwork.local",
      config:
        "nothing published: KV holds no snapshot index, so no WorkloadCredential is registered and nothing is revoked",
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

  it("signs only SVIDs and router key certificates of the identity issuer, expiring within the ring's plan", async () => {
    const keys = signingKeys("sign-limits");
    const clock = await injectClock(keys);
    const attempt = async (typ: string, claims: Record<string, unknown>) =>
      await keys.sign(typ, claims);
    const claims = claimsAt(clock.now, HOUR);
    await expect(attempt(SVID_TYPE, { ...claims, exp: undefined })).rejects.toThrow(
      /claims.exp must be a number/,
    );
    // The longest lifetime plus the issuer's 5 s of skew, and not a second more.
    await expect(attempt(SVID_TYPE, claimsAt(clock.now, LONGEST + SECOND))).rejects.toThrow(
      /keeps keys for tokens of at most 3600 s/,
    );
    await expect(attempt("", claims)).rejects.toThrow(
      /typ must be one of "JWT", "mesh-router-key\+jwt"/,
    );
    // A passport is the router's to sign, never the mesh keys'.
    await expect(attempt(PASSPORT_TYPE, claims)).rejects.toThrow(/typ must be one of/);
    await expect(attempt(SVID_TYPE, { ...claims, iss: undefined })).rejects.toThrow(
      /claims.iss must be "spiffe:\/\/meshwork.local\/meshwork-identity"/,
    );
    await expect(
      attempt(SVID_TYPE, { ...claims, iss: "spiffe://meshwork.local/orders" }),
    ).rejects.toThrow(/claims.iss must be/);

    const longest = await attempt(SVID_TYPE, claimsAt(clock.now, LONGEST));
    expect(decodeProtectedHeader(longest)).toEqual({
      alg: "ES256",
      kid: expect.any(String),
      typ: "JWT",
    });
    const certificate = await attempt(ROUTER_KEY_TYPE, claims);
    expect(decodeProtectedHeader(certificate).typ).toBe("mesh-router-key+jwt");
  });

  it("exposes only jwks(), sign() and alarm() to RPC: not its clock, not its internals", async () => {
    const keys = signingKeys("rpc-surface");
    await keys.jwks();
    const call = async (method: string) =>
      await (keys as unknown as Record<string, () => Promise<unknown>>)[method]!();
    for (const method of ["now", "loadRing", "ringNow", "signerFor", "rotation"]) {
      await expect(call(method)).rejects.toThrow(/does not implement/);
    }
  });

  it("rotates on its alarm: tokens signed before, during and after a hand-over verify until they expire; a retired key's tokens fail once it leaves", async () => {
    const keys = signingKeys("rotation");
    const clock = await injectClock(keys);
    const t0 = clock.now;
    const jwks = async () => (await keys.jwks()) as JSONWebKeySet;

    // Bootstrap at t0: k1 signs, k2 is published ahead of it; the alarm is at the hand-over.
    const [k2, k1] = (await jwks()).keys.map((key) => key.kid!);
    const booted = await stored(keys);
    expect(booted.alarm).toBe(t0 + DAY);

    // Before: ten minutes ahead of the hand-over, k1 signs A, as long-lived as allowed.
    clock.now = t0 + DAY - 10 * MINUTE;
    const signedA = clock.now;
    const tokenA = await keys.sign(SVID_TYPE, claimsAt(signedA, LONGEST));
    expect(decodeProtectedHeader(tokenA).kid).toBe(k1);
    await expect(verifyAt(tokenA, await jwks(), clock.now)).resolves.toBeDefined();

    // The hand-over: the alarm publishes k3 and keeps k1 for A's sake; it is re-armed for when
    // k1's last token has expired.
    clock.now = t0 + DAY;
    const handOver = clock.now;
    expect(await runDurableObjectAlarm(keys)).toBe(true);
    const rotated = await stored(keys);
    const k3 = rotated.keys[2]!.kid;
    expect(rotated.keys.map((key) => key.kid)).toEqual([k1, k2, k3]);
    expect(rotated.keys[0]).toMatchObject({
      retires_at: handOver,
      expires_at: handOver + AFTERLIFE,
    });
    expect(rotated.keys[2]).toMatchObject({ created_at: handOver, activates_at: handOver + DAY });
    expect(rotated.alarm).toBe(handOver + AFTERLIFE);
    expect((await jwks()).keys.map((key) => key.kid)).toEqual([k3, k2, k1]);

    // During: at the hand-over instant k2 signs B.
    const tokenB = await keys.sign(SVID_TYPE, claimsAt(handOver, LONGEST));
    expect(decodeProtectedHeader(tokenB).kid).toBe(k2);
    // After: half an hour on, k2 signs C.
    clock.now = handOver + 30 * MINUTE;
    const signedC = clock.now;
    const tokenC = await keys.sign(SVID_TYPE, claimsAt(signedC, LONGEST));
    expect(decodeProtectedHeader(tokenC).kid).toBe(k2);
    for (const token of [tokenA, tokenB, tokenC]) {
      await expect(verifyAt(token, await jwks(), clock.now)).resolves.toBeDefined();
    }

    // A verifies, against the JWKS served then, until its exp (and the verifiers' skew)...
    const lastOfA = signedA + LONGEST + VERIFIER_CLOCK_SKEW_MS - SECOND;
    clock.now = lastOfA;
    await expect(verifyAt(tokenA, await jwks(), clock.now)).resolves.toBeDefined();
    clock.now = lastOfA + 2 * SECOND;
    await expect(verifyAt(tokenA, await jwks(), clock.now)).rejects.toBeInstanceOf(
      joseErrors.JWTExpired,
    );
    // ... and so does B, signed at the hand-over, until the very end of k1's stay.
    clock.now = handOver + LONGEST + VERIFIER_CLOCK_SKEW_MS - SECOND;
    await expect(verifyAt(tokenB, await jwks(), clock.now)).resolves.toBeDefined();
    expect((await jwks()).keys.map((key) => key.kid)).toContain(k1);

    // k1's stay is over: the alarm drops it, from the JWKS and from storage, and A fails for
    // want of its key; C, of the current key, still verifies. The alarm is re-armed for k3.
    clock.now = handOver + AFTERLIFE;
    expect(await runDurableObjectAlarm(keys)).toBe(true);
    const cleaned = await stored(keys);
    expect(cleaned.keys.map((key) => key.kid)).toEqual([k2, k3]);
    expect(cleaned.alarm).toBe(handOver + DAY);
    const after = await jwks();
    expect(after.keys.map((key) => key.kid)).toEqual([k3, k2]);
    await expect(verifyAt(tokenA, after, clock.now)).rejects.toBeInstanceOf(
      joseErrors.JWKSNoMatchingKey,
    );
    await expect(verifyAt(tokenC, after, clock.now)).resolves.toBeDefined();
  });

  it("signs with the right key when the alarm is late, and re-arms it", async () => {
    const keys = signingKeys("late-alarm");
    const clock = await injectClock(keys);
    const t0 = clock.now;
    const [k2, k1] = (await keys.jwks()).keys.map((key) => key.kid);
    expect((await stored(keys)).alarm).toBe(t0 + DAY);

    // Two hours past the hand-over, and the alarm has not run: k2 signs all the same.
    clock.now = t0 + DAY + 2 * HOUR;
    const token = await keys.sign(SVID_TYPE, claimsAt(clock.now, HOUR));
    expect(decodeProtectedHeader(token).kid).toBe(k2);
    // That call stepped the ring: k1 is gone (its tokens all expired), k3 published, and the
    // alarm moved to k3's hand-over.
    const stepped = await stored(keys);
    expect(stepped.keys.map((key) => key.kid)).not.toContain(k1);
    expect(stepped.keys).toHaveLength(2);
    expect(stepped.alarm).toBe(t0 + 2 * DAY);
    const jwks = (await keys.jwks()) as JSONWebKeySet;
    expect(jwks.keys.map((key) => key.kid)).toEqual([stepped.keys[1]!.kid, k2]);
    await expect(verifyAt(token, jwks, clock.now)).resolves.toBeDefined();

    // The late alarm then runs: nothing left to do, and it is re-armed all the same.
    expect(await runDurableObjectAlarm(keys)).toBe(true);
    expect(await stored(keys)).toEqual(stepped);
  });

  it("plans for the skew the router's verifier allows", () => {
    expect(VERIFIER_CLOCK_SKEW_MS).toBe(CLOCK_SKEW_SECONDS * 1000);
  });
});
