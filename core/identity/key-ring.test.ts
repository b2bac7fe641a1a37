import {
  createLocalJWKSet,
  errors as joseErrors,
  exportJWK,
  jwtVerify,
  SignJWT,
  type JSONWebKeySet,
} from "jose";
import { describe, expect, it } from "vitest";
import {
  applyPlan,
  currentKey,
  effectivePeriodMs,
  keyRole,
  latestExpiryMs,
  leadTimeMs,
  plan,
  publishedKeys,
  type KeyRing,
  type RingKey,
  type RotationSettings,
} from "./key-ring.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 10, 1);

const SETTINGS: RotationSettings = {
  rotationPeriodMs: DAY,
  maxTokenLifetimeMs: HOUR,
  jwksMaxAgeMs: 5 * MINUTE,
  verifierSkewMs: 30_000,
  issuerSkewMs: 5_000,
};
// Both skews: the issuer's (5 s) and the verifiers' (30 s).
const SKEW = 35_000;
// Published an hour and 35 s before signing; kept an hour and 35 s after the last signature.
const LEAD = HOUR + SKEW;
const AFTERLIFE = HOUR + SKEW;

/** Steps the ring as the Durable Object does, naming generated keys k1, k2, … */
function stepper(settings: RotationSettings = SETTINGS) {
  let minted = 0;
  return (ring: KeyRing, now: number) => {
    const step = plan(ring, now, settings);
    return {
      step,
      ring: applyPlan(
        step,
        step.generate.map(() => `k${++minted}`),
      ),
    };
  };
}

/** The ring stepped at every alarm from `ring` (due at `alarmAt`) up to and at `until`. */
function runAlarms(
  step: ReturnType<typeof stepper>,
  state: { ring: KeyRing; alarmAt: number },
  until: number,
): { ring: KeyRing; alarmAt: number } {
  let { ring, alarmAt } = state;
  while (alarmAt <= until) {
    const next = step(ring, alarmAt);
    ring = next.ring;
    alarmAt = next.step.alarmAt;
  }
  const last = step(ring, until);
  return { ring: last.ring, alarmAt: last.step.alarmAt };
}

const kids = (keys: readonly RingKey[]) => keys.map((key) => key.kid);
const roles = (ring: KeyRing, now: number) =>
  Object.fromEntries(publishedKeys(ring, now).map((key) => [key.kid, keyRole(ring, key, now)]));

describe("the lead time", () => {
  it("is the longer of the token lifetime and the JWKS max-age, plus both skews", () => {
    expect(leadTimeMs(SETTINGS)).toBe(LEAD);
    expect(leadTimeMs({ ...SETTINGS, jwksMaxAgeMs: 2 * HOUR })).toBe(2 * HOUR + SKEW);
  });

  it("stretches a rotation period shorter than itself", () => {
    expect(effectivePeriodMs(SETTINGS)).toBe(DAY);
    expect(effectivePeriodMs({ ...SETTINGS, rotationPeriodMs: 10 * MINUTE })).toBe(LEAD);
  });
});

describe("the signer's cap and a key's stay", () => {
  it("caps exp at the longest lifetime plus the issuer's skew only", () => {
    expect(latestExpiryMs(T0, SETTINGS)).toBe(T0 + HOUR + 5_000);
  });

  it("keeps a key published past the latest exp it may have signed, by the verifiers' skew", () => {
    const { ring } = stepper()({ keys: [] }, T0);
    const [k1] = ring.keys;
    // The last instant k1 signs, with the latest exp the signer accepts then.
    const lastExp = latestExpiryMs(k1!.retiresAt - 1, SETTINGS);
    expect(k1!.expiresAt - lastExp).toBeGreaterThanOrEqual(SETTINGS.verifierSkewMs);
    expect(k1!.expiresAt).toBe(k1!.retiresAt + HOUR + 5_000 + 30_000);
  });
});

describe("bootstrap", () => {
  it("starts with a key that signs at once and a successor published a period ahead", () => {
    const { step, ring } = stepper()({ keys: [] }, T0);
    expect(step.generate).toHaveLength(2);
    expect(step.changed).toBe(true);
    expect(step.alarmAt).toBe(T0 + DAY);
    expect(ring.keys).toEqual([
      {
        kid: "k1",
        createdAt: T0,
        activatesAt: T0,
        retiresAt: T0 + DAY,
        expiresAt: T0 + DAY + AFTERLIFE,
      },
      {
        kid: "k2",
        createdAt: T0,
        activatesAt: T0 + DAY,
        retiresAt: T0 + 2 * DAY,
        expiresAt: T0 + 2 * DAY + AFTERLIFE,
      },
    ]);
    expect(currentKey(ring, T0)?.kid).toBe("k1");
    expect(roles(ring, T0)).toEqual({ k2: "next", k1: "current" });
  });

  it("is idempotent: stepping the new ring again at once changes nothing", () => {
    const step = stepper();
    const first = step({ keys: [] }, T0);
    const again = step(first.ring, T0 + 5 * MINUTE);
    expect(again.step).toMatchObject({ changed: false, generate: [], drop: [], alarmAt: T0 + DAY });
    expect(again.ring).toEqual(first.ring);
  });
});

describe("rotation", () => {
  it("hands over at the period, publishes a new successor and keeps the old key while its tokens live", () => {
    const step = stepper();
    const boot = step({ keys: [] }, T0);
    const rotated = step(boot.ring, T0 + DAY);
    expect(rotated.step.generate).toEqual([
      {
        createdAt: T0 + DAY,
        activatesAt: T0 + 2 * DAY,
        retiresAt: T0 + 3 * DAY,
        expiresAt: T0 + 3 * DAY + AFTERLIFE,
      },
    ]);
    expect(currentKey(rotated.ring, T0 + DAY)?.kid).toBe("k2");
    expect(roles(rotated.ring, T0 + DAY)).toEqual({ k3: "next", k2: "current", k1: "previous" });
    // The next alarm drops k1, whose last token expires an hour after it stopped signing.
    expect(rotated.step.alarmAt).toBe(T0 + DAY + AFTERLIFE);
    const cleaned = step(rotated.ring, rotated.step.alarmAt);
    expect(cleaned.step.drop).toEqual(["k1"]);
    expect(kids(cleaned.ring.keys)).toEqual(["k2", "k3"]);
    expect(cleaned.step.alarmAt).toBe(T0 + 2 * DAY);
  });

  it("hands over on time even when the alarm runs late", () => {
    const { ring } = stepper()({ keys: [] }, T0);
    // No step ran at T0 + DAY: the times alone say who signs.
    expect(currentKey(ring, T0 + DAY - 1)?.kid).toBe("k1");
    expect(currentKey(ring, T0 + DAY)?.kid).toBe("k2");
    expect(roles(ring, T0 + DAY + MINUTE)).toEqual({ k2: "current", k1: "previous" });
  });

  it("publishes every key at least the lead time before it signs, over weeks of alarms", () => {
    const step = stepper();
    const boot = step({ keys: [] }, T0);
    const seen = new Map<string, RingKey>();
    let state = { ring: boot.ring, alarmAt: boot.step.alarmAt };
    for (let t = T0; t <= T0 + 21 * DAY; t += 37 * MINUTE) {
      state = runAlarms(step, state, t);
      for (const key of state.ring.keys) seen.set(key.kid, key);
      const published = publishedKeys(state.ring, t);
      const rolesNow = published.map((key) => keyRole(state.ring, key, t));
      expect(rolesNow.filter((r) => r === "current")).toHaveLength(1);
      expect(rolesNow.filter((r) => r === "next").length).toBeLessThanOrEqual(1);
      expect(published.length).toBeLessThanOrEqual(3);
    }
    // k1 and k2 at bootstrap, then one successor a day: the last published on day 20.
    expect(seen.size).toBe(22);
    for (const key of [...seen.values()].slice(1)) {
      expect(key.activatesAt - key.createdAt).toBeGreaterThanOrEqual(LEAD);
    }
  });
});

describe("missed alarms", () => {
  it("wakes after three periods with a sane ring: the published successor signs, a new one is published", () => {
    const step = stepper();
    const boot = step({ keys: [] }, T0);
    const wake = T0 + 3 * DAY + 5 * HOUR;
    const woken = step(boot.ring, wake);
    // k2 took over on time at T0 + DAY and has signed since; k1's tokens are long gone.
    expect(woken.step.drop).toEqual(["k1"]);
    expect(woken.step.generate).toEqual([
      {
        createdAt: wake,
        activatesAt: wake + LEAD,
        retiresAt: wake + LEAD + DAY,
        expiresAt: wake + LEAD + DAY + AFTERLIFE,
      },
    ]);
    expect(roles(woken.ring, wake)).toEqual({ k3: "next", k2: "current" });
    // k2 signs until k3 has been published for the lead time, and stays for its tokens' sake.
    expect(woken.ring.keys.find((k) => k.kid === "k2")).toMatchObject({
      retiresAt: wake + LEAD,
      expiresAt: wake + LEAD + AFTERLIFE,
    });
    expect(woken.step.alarmAt).toBe(wake + LEAD);
    // From there, the ordinary schedule.
    const rotated = step(woken.ring, wake + LEAD);
    expect(rotated.step.generate[0]).toMatchObject({ activatesAt: wake + LEAD + DAY });
    expect(roles(rotated.ring, wake + LEAD)).toEqual({ k4: "next", k3: "current", k2: "previous" });
  });

  it("never signs with a key nobody has seen, even with every key past its planned retirement", () => {
    const step = stepper();
    const boot = step({ keys: [] }, T0);
    const woken = step(boot.ring, T0 + 30 * DAY);
    expect(currentKey(woken.ring, T0 + 30 * DAY)?.kid).toBe("k2");
    expect(kids(woken.ring.keys)).toEqual(["k2", "k3"]);
  });
});

describe("settings changes", () => {
  it("brings a pending successor forward to a shorter period, but not before its lead time", () => {
    const step = stepper();
    const boot = step({ keys: [] }, T0);
    const shorter = { ...SETTINGS, rotationPeriodMs: 30 * MINUTE };
    const replanned = plan(boot.ring, T0 + 10 * MINUTE, shorter);
    expect(replanned.generate).toEqual([]);
    expect(replanned.keep.map((k) => [k.kid, k.activatesAt])).toEqual([
      ["k1", T0],
      ["k2", T0 + LEAD],
    ]);
    expect(replanned.keep[0]?.retiresAt).toBe(T0 + LEAD);
    expect(replanned.alarmAt).toBe(T0 + LEAD);
  });

  it("hands over at once when a shorter period is already due and the successor was published long enough", () => {
    const step = stepper();
    const boot = step({ keys: [] }, T0);
    const now = T0 + 3 * HOUR;
    const shorter = stepper({ ...SETTINGS, rotationPeriodMs: 2 * HOUR });
    const result = shorter(boot.ring, now);
    expect(currentKey(result.ring, now)?.kid).toBe("k2");
    expect(result.ring.keys.find((k) => k.kid === "k1")).toMatchObject({
      retiresAt: now,
      // Expiry never moves earlier: k1 may have signed a token lasting until its old plan.
      expiresAt: T0 + DAY + AFTERLIFE,
    });
  });

  it("delays a pending successor when the lead time grows", () => {
    const step = stepper();
    const boot = step({ keys: [] }, T0);
    const longTokens = { ...SETTINGS, maxTokenLifetimeMs: 2 * DAY };
    const replanned = plan(boot.ring, T0 + HOUR, longTokens);
    const successor = replanned.keep.find((k) => k.kid === "k2");
    expect(successor?.activatesAt).toBe(T0 + 2 * DAY + SKEW);
    // The current key now signs two-day tokens: it stays published for two days after it stops.
    expect(replanned.keep[0]?.expiresAt).toBe(T0 + 4 * DAY + 2 * SKEW);
  });

  it("never shortens the current key's stay when the token lifetime shrinks", () => {
    const step = stepper();
    const boot = step({ keys: [] }, T0);
    const before = boot.ring.keys[0]!.expiresAt;
    const shortTokens = { ...SETTINGS, maxTokenLifetimeMs: 5 * MINUTE };
    const replanned = plan(boot.ring, T0 + HOUR, shortTokens);
    expect(replanned.keep[0]?.expiresAt).toBe(before);
  });
});

describe("the JWKS over time", () => {
  it("holds current and next, then current, next and previous after a hand-over, then drops the previous", () => {
    const step = stepper();
    const boot = step({ keys: [] }, T0);
    let state = { ring: boot.ring, alarmAt: boot.step.alarmAt };
    const at = (t: number) => {
      state = runAlarms(step, state, t);
      return kids(publishedKeys(state.ring, t));
    };
    expect(at(T0 + HOUR)).toEqual(["k2", "k1"]);
    expect(at(T0 + DAY + MINUTE)).toEqual(["k3", "k2", "k1"]);
    expect(at(T0 + DAY + AFTERLIFE - 1)).toEqual(["k3", "k2", "k1"]);
    expect(at(T0 + DAY + AFTERLIFE)).toEqual(["k3", "k2"]);
    expect(at(T0 + 2 * DAY)).toEqual(["k4", "k3", "k2"]);
  });
});

describe("tokens across rotations", () => {
  // A short period, so a day holds several hand-overs.
  const settings: RotationSettings = { ...SETTINGS, rotationPeriodMs: 3 * HOUR };
  const skewSeconds = settings.verifierSkewMs / 1000;

  it("every token verifies against the JWKS of its verification time until it expires, and no longer", async () => {
    const step = stepper(settings);
    const material = new Map<string, CryptoKeyPair>();
    const publicJwks = new Map<string, Record<string, unknown>>();
    const materialise = async (ring: KeyRing) => {
      for (const key of ring.keys) {
        if (material.has(key.kid)) continue;
        const pair = (await crypto.subtle.generateKey(
          { name: "ECDSA", namedCurve: "P-256" },
          true,
          ["sign", "verify"],
        )) as CryptoKeyPair;
        material.set(key.kid, pair);
        publicJwks.set(key.kid, {
          ...(await exportJWK(pair.publicKey)),
          kid: key.kid,
          alg: "ES256",
          use: "sig",
        });
      }
    };
    const jwksAt = (ring: KeyRing, t: number): JSONWebKeySet => ({
      keys: publishedKeys(ring, t).map((key) => publicJwks.get(key.kid)!),
    });

    const boot = step({ keys: [] }, T0);
    let state = { ring: boot.ring, alarmAt: boot.step.alarmAt };
    await materialise(state.ring);
    interface Token {
      jwt: string;
      kid: string;
      exp: number;
    }
    const tokens: Token[] = [];
    const published = new Map<number, JSONWebKeySet>();
    let verified = 0;
    let expired = 0;
    let keyGone = 0;
    let outlived = 0;
    let staleChecks = 0;
    for (let t = T0; t <= T0 + 24 * HOUR; t += 5 * MINUTE) {
      state = runAlarms(step, state, t);
      await materialise(state.ring);
      const jwks = jwksAt(state.ring, t);
      published.set(t, jwks);
      const verifier = createLocalJWKSet(jwks);

      // Every ten minutes, sign as the identity Worker would: with the key current now, for the
      // longest lifetime the signer accepts (every half hour) or a short one.
      if ((t - T0) % (10 * MINUTE) === 0) {
        const signer = currentKey(state.ring, t)!;
        const lifetime =
          (t - T0) % (30 * MINUTE) === 0 ? latestExpiryMs(t, settings) - t : 5 * MINUTE;
        const iat = Math.floor(t / 1000);
        const exp = iat + lifetime / 1000;
        const jwt = await new SignJWT({ sub: "spiffe://meshwork.local/orders" })
          .setProtectedHeader({ alg: "ES256", kid: signer.kid, typ: "JWT" })
          .setIssuedAt(iat)
          .setExpirationTime(exp)
          .sign(material.get(signer.kid)!.privateKey);
        tokens.push({ jwt, kid: signer.kid, exp });

        // A verifier whose JWKS is as old as the max-age allows knows the key already.
        const stale = published.get(t - settings.jwksMaxAgeMs);
        if (stale) {
          await expect(
            jwtVerify(jwt, createLocalJWKSet(stale), { currentDate: new Date(t) }),
          ).resolves.toBeDefined();
          staleChecks++;
        }
      }

      // Every token that expired less than 70 minutes ago (a key leaves an hour and 35 s after it
      // stops signing), against the JWKS published now.
      for (const token of tokens.filter((tk) => tk.exp * 1000 > t - 70 * MINUTE)) {
        const alive = t < (token.exp + skewSeconds) * 1000;
        const inJwks = jwks.keys.some((key) => key.kid === token.kid);
        const outcome = await jwtVerify(token.jwt, verifier, {
          currentDate: new Date(t),
          clockTolerance: skewSeconds,
        }).then(
          () => "verified",
          (error: unknown) => error,
        );
        if (alive) {
          expect(outcome).toBe("verified");
          verified++;
          if (currentKey(state.ring, t)?.kid !== token.kid) outlived++;
        } else if (inJwks) {
          expect(outcome).toBeInstanceOf(joseErrors.JWTExpired);
          expired++;
        } else {
          // Its key left the JWKS, and only after the token had expired.
          expect(outcome).toBeInstanceOf(joseErrors.JWKSNoMatchingKey);
          keyGone++;
        }
      }
    }
    // The day held hand-overs, tokens outliving their signing key, and keys leaving.
    expect(new Set(tokens.map((tk) => tk.kid)).size).toBeGreaterThanOrEqual(8);
    expect(verified).toBeGreaterThan(600);
    expect(outlived).toBeGreaterThan(20);
    expect(expired).toBeGreaterThan(1000);
    expect(keyGone).toBeGreaterThan(30);
    expect(staleChecks).toBe(tokens.length - 1);
  });

  it("a retired key's token verifies after its key stopped signing, and fails once the key left the JWKS", async () => {
    const step = stepper(settings);
    const boot = step({ keys: [] }, T0);
    const pair = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
      "sign",
      "verify",
    ])) as CryptoKeyPair;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "ES256" };
    // k1 signs an hour-long token a minute before the hand-over.
    const handOver = T0 + 3 * HOUR;
    const iat = (handOver - MINUTE) / 1000;
    const jwt = await new SignJWT({ sub: "spiffe://meshwork.local/orders" })
      .setProtectedHeader({ alg: "ES256", kid: "k1", typ: "JWT" })
      .setIssuedAt(iat)
      .setExpirationTime(iat + 3600)
      .sign(pair.privateKey);
    let state = { ring: boot.ring, alarmAt: boot.step.alarmAt };
    const verifyAt = async (t: number) => {
      state = runAlarms(step, state, t);
      const keys = publishedKeys(state.ring, t).some((k) => k.kid === "k1") ? [jwk] : [];
      return jwtVerify(jwt, createLocalJWKSet({ keys }), { currentDate: new Date(t) });
    };
    await expect(verifyAt(handOver + 30 * MINUTE)).resolves.toBeDefined();
    expect(keyRole(state.ring, state.ring.keys[0]!, handOver + 30 * MINUTE)).toBe("previous");
    await expect(verifyAt(handOver + HOUR - MINUTE - 1000)).resolves.toBeDefined();
    await expect(verifyAt(handOver + AFTERLIFE)).rejects.toBeInstanceOf(
      joseErrors.JWKSNoMatchingKey,
    );
  });
});
