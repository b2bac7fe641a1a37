/**
 * The rotation schedule of the mesh's signing keys, as data: which key signs, which is published
 * ahead of signing, and which are kept only so that tokens they signed still verify. Pure (no
 * Workers APIs, the clock passed in), so the rules are tested in plain Node; the SigningKeys
 * Durable Object loads the ring, applies `plan` and stores the result, generating the key
 * material the plan asks for itself.
 *
 * A key's life is four instants: `createdAt` (it enters the JWKS), `activatesAt` (it starts
 * signing), `retiresAt` (it stops; always its successor's `activatesAt`) and `expiresAt` (it
 * leaves the JWKS). Two rules keep every token verifiable for its whole life:
 *  - a key is published at least `leadTimeMs` before it signs: longer than a verifier caches the
 *    JWKS (so every verifier has the key before it meets the key's first token) and longer than
 *    a token lives (so a verifier that refetches keys only once per token it holds has it too);
 *  - a retired key stays published until the last token it signed has expired, with the clock
 *    skew verifiers tolerate on top. The signer caps every token's `exp` (`latestExpiryMs`), so
 *    "the last token it signed" is bounded by the key's retirement, not by what a caller asked.
 *
 * Two clock differences are allowed for, once each: the issuer's (the Worker that sets `iat`
 * and `exp` reads another clock than the signer; `issuerSkewMs`, in the signer's cap) and the
 * verifiers' (they accept a token `verifierSkewMs` past its `exp`; in the key's stay).
 *
 * Which key signs at `now` is a property of the times alone: the key with the latest
 * `activatesAt` ≤ `now`. So a successor takes over exactly on time even when the alarm that
 * should have stepped the ring runs late; the alarm only publishes the next successor and drops
 * keys whose tokens are all gone. An object that slept through several periods wakes with a
 * sane ring: the published successor signs (it took over when due), a new successor is
 * published, and the current key keeps signing until that one has been published long enough.
 * A key that has never been published never signs (except the very first, when nothing was).
 */

/** The instants of one key's life, in ms since the epoch. */
export interface KeyTimes {
  /** Published from (the key enters the JWKS). */
  readonly createdAt: number;
  /** Signs from. */
  readonly activatesAt: number;
  /** Stops signing (its successor's `activatesAt`; planned, while it has none). */
  readonly retiresAt: number;
  /** Leaves the JWKS: the last token it signed has expired, plus the verifiers' clock skew. */
  readonly expiresAt: number;
}

/** A key of the ring: its id and its schedule (the key material lives with the caller). */
export interface RingKey extends KeyTimes {
  readonly kid: string;
}

/** The keys the mesh signs with or publishes, in activation order. */
export interface KeyRing {
  readonly keys: readonly RingKey[];
}

/** What drives the schedule, all in ms. */
export interface RotationSettings {
  /** How long a key signs before its successor takes over. */
  readonly rotationPeriodMs: number;
  /** The longest lifetime of anything the keys sign. */
  readonly maxTokenLifetimeMs: number;
  /** The JWKS answer's `Cache-Control: max-age`. */
  readonly jwksMaxAgeMs: number;
  /** How long past a token's `exp` verifiers still accept it (their clocks may run behind). */
  readonly verifierSkewMs: number;
  /**
   * How far past signing time plus `maxTokenLifetimeMs` the signer accepts a token's `exp`: the
   * issuer sets `exp` by its own clock, which may run a little ahead of the signer's.
   */
  readonly issuerSkewMs: number;
}

/**
 * The clock skew verifiers tolerate: the router's CLOCK_SKEW_SECONDS
 * (workers/router/identity/authenticator.ts) and sdk/passport.ts's default, 30 s.
 */
export const VERIFIER_CLOCK_SKEW_MS = 30_000;
/**
 * How far the issuing Worker's clock may run ahead of the signing Durable Object's. Both are
 * Cloudflare machines' synchronised clocks, and `exp` is rounded down to whole seconds.
 */
export const ISSUER_CLOCK_SKEW_MS = 5_000;

/** The role of a key at an instant. */
export type KeyRole = "next" | "current" | "previous";

/** One step of the ring at `now`: what to keep, what to generate, when to step again. */
export interface RotationPlan {
  /** The keys kept, with their schedules brought up to date, in activation order. */
  readonly keep: readonly RingKey[];
  /** Keys to generate, in activation order (two when bootstrapping, at most one otherwise). */
  readonly generate: readonly KeyTimes[];
  /** Kids of the keys dropped: their tokens have all expired, their material can go. */
  readonly drop: readonly string[];
  /** When the ring needs its next step (the Durable Object's alarm). */
  readonly alarmAt: number;
  /** Whether the step changed anything (the caller writes only then). */
  readonly changed: boolean;
}

/**
 * How long before it signs a key is published: longer than a JWKS is cached and longer than a
 * token lives, with both skews on top so a verifier whose clock runs behind is covered too.
 */
export function leadTimeMs(settings: RotationSettings): number {
  return (
    Math.max(settings.maxTokenLifetimeMs, settings.jwksMaxAgeMs) +
    settings.verifierSkewMs +
    settings.issuerSkewMs
  );
}

/**
 * The latest `exp` (in ms) the signer accepts for a token signed at `now`: the longest lifetime,
 * plus the issuer's skew. A key's stay in the JWKS is planned from this bound.
 */
export function latestExpiryMs(now: number, settings: RotationSettings): number {
  return now + settings.maxTokenLifetimeMs + settings.issuerSkewMs;
}

/**
 * How long a key actually signs: the rotation period, stretched to the lead time when shorter
 * (a successor cannot take over before it has been published that long).
 */
export function effectivePeriodMs(settings: RotationSettings): number {
  return Math.max(settings.rotationPeriodMs, leadTimeMs(settings));
}

/**
 * When a key that stops signing at `retiresAt` may leave the JWKS: the last token it signed
 * expires by `latestExpiryMs(retiresAt)`, and verifiers accept it for their skew after that.
 */
function expiryAfter(retiresAt: number, settings: RotationSettings): number {
  return latestExpiryMs(retiresAt, settings) + settings.verifierSkewMs;
}

const byActivation = (a: RingKey, b: RingKey) => a.activatesAt - b.activatesAt;

/** The key signing at `now`: the latest to have activated. Undefined for an empty ring. */
export function currentKey(ring: KeyRing, now: number): RingKey | undefined {
  let current: RingKey | undefined;
  for (const key of ring.keys) {
    if (key.activatesAt <= now && (!current || key.activatesAt >= current.activatesAt)) {
      current = key;
    }
  }
  return current;
}

/** What `key` is at `now`, or undefined when it is no longer published. */
export function keyRole(ring: KeyRing, key: RingKey, now: number): KeyRole | undefined {
  if (key.activatesAt > now) return "next";
  if (currentKey(ring, now)?.kid === key.kid) return "current";
  return key.expiresAt > now ? "previous" : undefined;
}

/** The keys a JWKS at `now` holds: next, current, then previous ones (newest first). */
export function publishedKeys(ring: KeyRing, now: number): RingKey[] {
  return ring.keys
    .filter((key) => keyRole(ring, key, now) !== undefined)
    .sort((a, b) => b.activatesAt - a.activatesAt);
}

/**
 * One step of the ring at `now` under `settings`: the first call bootstraps it (a current key
 * signing at once and a published successor); later ones publish a successor when the previous
 * one has taken over, re-plan an unactivated successor when the settings changed, and drop the
 * keys whose every token has expired. Idempotent: stepping the result again at the same `now`
 * changes nothing.
 */
export function plan(ring: KeyRing, now: number, settings: RotationSettings): RotationPlan {
  const lead = leadTimeMs(settings);
  const period = effectivePeriodMs(settings);
  if (ring.keys.length === 0) {
    // Nothing was ever published, so no verifier can hold a JWKS without this key: it signs at
    // once. Its successor follows the ordinary rules.
    const nextAt = now + period;
    const first = { createdAt: now, activatesAt: now, retiresAt: nextAt };
    const second = { createdAt: now, activatesAt: nextAt, retiresAt: nextAt + period };
    return {
      keep: [],
      generate: [
        { ...first, expiresAt: expiryAfter(first.retiresAt, settings) },
        { ...second, expiresAt: expiryAfter(second.retiresAt, settings) },
      ],
      drop: [],
      alarmAt: nextAt,
      changed: true,
    };
  }

  const keys = [...ring.keys].sort(byActivation);
  const drop: string[] = [];
  let changed = false;
  const active = keys.filter((key) => key.activatesAt <= now);
  const upcoming = keys.filter((key) => key.activatesAt > now);
  let current = active.at(-1);
  let next = upcoming[0];
  // More than one unactivated key is not a ring this code writes; the extras never signed.
  for (const extra of upcoming.slice(1)) {
    drop.push(extra.kid);
    changed = true;
  }
  if (!current) {
    // Only a clock that moved backwards gets here: the published successor signs from now.
    current = { ...next!, activatesAt: now };
    next = undefined;
    changed = true;
  }
  let previous = active.slice(0, -1);

  if (next) {
    // Settings may have changed since it was planned: a longer lead time must be honoured, a
    // shorter period may bring it forward, but never to before now (its predecessor signed
    // until now, and its `retiresAt` must say so).
    const due = Math.max(next.createdAt + lead, current.activatesAt + period);
    if (due <= now) {
      const expiresAt = Math.max(current.expiresAt, expiryAfter(now, settings));
      previous = [...previous, { ...current, retiresAt: now, expiresAt }];
      current = { ...next, activatesAt: now };
      next = undefined;
      changed = true;
    } else if (due !== next.activatesAt) {
      next = { ...next, activatesAt: due };
      changed = true;
    }
  }

  const generate: KeyTimes[] = [];
  let successorAt: number;
  if (next) {
    successorAt = next.activatesAt;
  } else {
    // The current key has taken over: publish its successor now. After a long sleep the
    // planned hand-over is long past and the successor needs the full lead time from now.
    successorAt = Math.max(now + lead, current.activatesAt + period);
    generate.push({
      createdAt: now,
      activatesAt: successorAt,
      retiresAt: successorAt + period,
      expiresAt: expiryAfter(successorAt + period, settings),
    });
    changed = true;
  }

  // The current key signs until its successor takes over. It may have signed tokens already,
  // so its expiry only ever moves later.
  const currentRetires = successorAt;
  const currentExpires = Math.max(current.expiresAt, expiryAfter(currentRetires, settings));
  if (current.retiresAt !== currentRetires || current.expiresAt !== currentExpires) {
    current = { ...current, retiresAt: currentRetires, expiresAt: currentExpires };
    changed = true;
  }
  if (next) {
    // It has signed nothing, so its planned retirement and expiry simply follow the plan.
    const retiresAt = next.activatesAt + period;
    const expiresAt = expiryAfter(retiresAt, settings);
    if (next.retiresAt !== retiresAt || next.expiresAt !== expiresAt) {
      next = { ...next, retiresAt, expiresAt };
      changed = true;
    }
  }

  const kept: RingKey[] = [];
  for (const key of previous) {
    if (key.expiresAt <= now) {
      drop.push(key.kid);
      changed = true;
    } else {
      kept.push(key);
    }
  }
  kept.push(current);
  if (next) kept.push(next);

  const expiries = kept.filter((key) => key.activatesAt <= now).map((key) => key.expiresAt);
  const alarmAt = Math.min(successorAt, ...expiries.filter((at) => at > now));
  return { keep: kept, generate, drop, alarmAt, changed };
}

/** The ring after `step`, with `kids` naming the keys it generated (in its `generate` order). */
export function applyPlan(step: RotationPlan, kids: readonly string[]): KeyRing {
  if (kids.length !== step.generate.length) {
    throw new Error(
      `the plan generates ${step.generate.length} keys but ${kids.length} kids were given`,
    );
  }
  const generated = step.generate.map((times, i) => ({ kid: kids[i]!, ...times }));
  return { keys: [...step.keep, ...generated].sort(byActivation) };
}
