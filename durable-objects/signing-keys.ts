/**
 * SigningKeys: the mesh's signing keys, in one Durable Object (by name "mesh") of the identity
 * Worker. A thin shell around core/identity/key-ring.ts: it loads the ring from its SQLite
 * storage, steps it (on every call and on its alarm), generates the ECDSA P-256 keys the step
 * asks for, and stores the result. The rotation rules live in the pure code; this file only
 * holds key material and does I/O.
 *
 * Private keys are generated here, stored here and used here: no method returns one, and the
 * Worker reaches this object only through `jwks()` (public keys) and `sign()`; everything else is
 * `#private`, so RPC cannot reach it. `sign()` signs only the identity Worker's two kinds of
 * token (its `typ` and `iss`), and caps their `exp` so none outlives its key's stay in the JWKS.
 * Every call steps the ring before answering, so a late or lost alarm never makes it sign with
 * the wrong key or publish a stale set; the alarm is what steps it when nobody calls.
 */
import { DurableObject } from "cloudflare:workers";
import { calculateJwkThumbprint, CompactSign } from "jose";
import {
  applyPlan,
  currentKey,
  latestExpiryMs,
  plan,
  publishedKeys,
  type KeyRing,
  type RingKey,
  type RotationSettings,
} from "../core/identity/key-ring.ts";
import { ALGORITHM, identityIssuer, ROUTER_KEY_TYPE, SVID_TYPE } from "../core/identity/names.ts";
import { readSettings, rotationSettings, type IdentityVars } from "../workers/identity/settings.ts";

/** The name of the one SigningKeys object (`env.SIGNING_KEYS.getByName(SIGNING_KEYS_NAME)`). */
export const SIGNING_KEYS_NAME = "mesh";

const EC_P256 = { name: "ECDSA", namedCurve: "P-256" } as const;
/** The token types the mesh's keys sign: JWT-SVIDs and router key certificates, nothing else. */
const SIGNED_TYPES: ReadonlySet<string> = new Set([SVID_TYPE, ROUTER_KEY_TYPE]);

interface KeyRow extends Record<string, SqlStorageValue> {
  kid: string;
  created_at: number;
  activates_at: number;
  retires_at: number;
  expires_at: number;
}

const toRingKey = (row: KeyRow): RingKey => ({
  kid: row.kid,
  createdAt: row.created_at,
  activatesAt: row.activates_at,
  retiresAt: row.retires_at,
  expiresAt: row.expires_at,
});

/** A public key as the JWKS publishes it. */
export interface PublishedJwk extends JsonWebKey {
  kid: string;
  alg: string;
  use: string;
}

/** A new key pair: its kid (the RFC 7638 thumbprint), public JWK and private JWK. */
interface GeneratedKey {
  kid: string;
  publicJwk: PublishedJwk;
  privateJwk: JsonWebKey;
}

async function generateKey(): Promise<GeneratedKey> {
  // Extractable only so the private half can be stored; it is re-imported non-extractable.
  const pair = (await crypto.subtle.generateKey(EC_P256, true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
  const exported = (await crypto.subtle.exportKey("jwk", pair.publicKey)) as JsonWebKey;
  const point = { kty: "EC", crv: "P-256", x: exported.x!, y: exported.y! };
  const kid = await calculateJwkThumbprint(point, "sha256");
  return {
    kid,
    publicJwk: { ...point, kid, alg: ALGORITHM, use: "sig" },
    privateJwk: (await crypto.subtle.exportKey("jwk", pair.privateKey)) as JsonWebKey,
  };
}

export class SigningKeys extends DurableObject<IdentityVars> {
  /**
   * The object's clock, in ms since the epoch. Tests replace it (through `runInDurableObject`) to
   * move time without waiting; it is an instance field, not a method, so RPC cannot reach it.
   */
  now: () => number = () => Date.now();
  readonly #rotation: RotationSettings;
  /** `iss` of everything the keys sign. */
  readonly #issuer: string;
  /** Private keys imported for signing, by kid (import once per object, not per token). */
  readonly #signers = new Map<string, Promise<CryptoKey>>();
  /** Set once this instance has made sure an alarm is scheduled. */
  #alarmChecked = false;

  constructor(ctx: DurableObjectState, env: IdentityVars) {
    super(ctx, env);
    const settings = readSettings(env);
    this.#rotation = rotationSettings(settings);
    this.#issuer = identityIssuer(settings.trustDomain);
    ctx.storage.sql.exec(`CREATE TABLE IF NOT EXISTS signing_keys (
      kid TEXT PRIMARY KEY,
      created_at INTEGER NOT NULL,
      activates_at INTEGER NOT NULL,
      retires_at INTEGER NOT NULL,
      expires_at INTEGER NOT NULL,
      public_jwk TEXT NOT NULL,
      private_jwk TEXT NOT NULL
    )`);
  }

  /** The public keys a verifier needs now: next, current and previous (newest first). */
  async jwks(): Promise<{ keys: PublishedJwk[] }> {
    const { ring, now } = await this.#ringNow();
    const rows = new Map(
      this.ctx.storage.sql
        .exec<{ kid: string; public_jwk: string }>("SELECT kid, public_jwk FROM signing_keys")
        .toArray()
        .map((row) => [row.kid, row.public_jwk]),
    );
    return {
      keys: publishedKeys(ring, now).map((key) => JSON.parse(rows.get(key.kid)!) as PublishedJwk),
    };
  }

  /**
   * A compact JWS of `claims` by the current key, with the protected header `{ alg: ES256, kid,
   * typ }`. Signs only a JWT-SVID or a router key certificate (`typ`) of the identity Worker
   * (`iss`), and refuses claims without `exp` or living longer than the key ring keeps keys for
   * (the longest lifetime plus the issuer's clock skew): such a token would outlive its key in
   * the JWKS.
   */
  async sign(typ: string, claims: Record<string, unknown>): Promise<string> {
    if (typeof typ !== "string" || !SIGNED_TYPES.has(typ)) {
      throw new Error(`typ must be one of ${[...SIGNED_TYPES].map((t) => `"${t}"`).join(", ")}`);
    }
    if (claims === null || typeof claims !== "object" || Array.isArray(claims)) {
      throw new Error("claims must be a JSON object");
    }
    if (claims.iss !== this.#issuer) {
      throw new Error(
        `claims.iss must be "${this.#issuer}": these keys sign the identity Worker's tokens only`,
      );
    }
    const { exp } = claims;
    if (typeof exp !== "number" || !Number.isFinite(exp)) {
      throw new Error("claims.exp must be a number (seconds since the epoch): every token expires");
    }
    const { ring, now } = await this.#ringNow();
    if (exp * 1000 > latestExpiryMs(now, this.#rotation)) {
      throw new Error(
        `claims.exp is ${Math.round(exp - now / 1000)} s from now; the key ring keeps keys for tokens of at most ${this.#rotation.maxTokenLifetimeMs / 1000} s (max of SVID_MAX_TTL_SECONDS and ROUTER_KEY_TTL_SECONDS)`,
      );
    }
    const key = currentKey(ring, now);
    if (!key) throw new Error("the key ring has no current key (this is a bug)");
    const signer = await this.#signerFor(key.kid);
    return new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
      .setProtectedHeader({ alg: ALGORITHM, kid: key.kid, typ })
      .sign(signer);
  }

  override async alarm(): Promise<void> {
    const { ring, now } = await this.#ringNow();
    // This alarm is spent: schedule the next step even when this one changed nothing (an alarm
    // that fired early). The stepped ring plans no change, only when to look again.
    await this.ctx.storage.setAlarm(plan(ring, now, this.#rotation).alarmAt);
  }

  #loadRing(): KeyRing {
    const rows = this.ctx.storage.sql
      .exec<KeyRow>(
        "SELECT kid, created_at, activates_at, retires_at, expires_at FROM signing_keys ORDER BY activates_at",
      )
      .toArray();
    return { keys: rows.map(toRingKey) };
  }

  /**
   * The ring stepped to now, and the instant it was stepped to (which roles are judged at):
   * stored when the step changed it, with the alarm moved along.
   */
  async #ringNow(): Promise<{ ring: KeyRing; now: number }> {
    const now = this.now();
    const ring = this.#loadRing();
    const step = plan(ring, now, this.#rotation);
    if (!step.changed) {
      if (!this.#alarmChecked) {
        // An object whose alarm was lost would otherwise step only when called.
        this.#alarmChecked = true;
        if ((await this.ctx.storage.getAlarm()) === null) {
          await this.ctx.storage.setAlarm(step.alarmAt);
        }
      }
      return { ring, now };
    }
    // Generating keys awaits, and other calls may run meanwhile: hold them until the new ring
    // is stored, so two calls never both generate a successor.
    return this.ctx.blockConcurrencyWhile(async () => {
      // Time moved while this call waited, and another call may have stepped the ring.
      const at = this.now();
      const fresh = plan(this.#loadRing(), at, this.#rotation);
      if (!fresh.changed) return { ring: this.#loadRing(), now: at };
      const generated = await Promise.all(fresh.generate.map(() => generateKey()));
      const next = applyPlan(
        fresh,
        generated.map((key) => key.kid),
      );
      const sql = this.ctx.storage.sql;
      this.ctx.storage.transactionSync(() => {
        for (const kid of fresh.drop) {
          sql.exec("DELETE FROM signing_keys WHERE kid = ?", kid);
          this.#signers.delete(kid);
        }
        for (const key of fresh.keep) {
          sql.exec(
            "UPDATE signing_keys SET activates_at = ?, retires_at = ?, expires_at = ? WHERE kid = ?",
            key.activatesAt,
            key.retiresAt,
            key.expiresAt,
            key.kid,
          );
        }
        fresh.generate.forEach((times, i) => {
          const key = generated[i]!;
          sql.exec(
            "INSERT INTO signing_keys (kid, created_at, activates_at, retires_at, expires_at, public_jwk, private_jwk) VALUES (?, ?, ?, ?, ?, ?, ?)",
            key.kid,
            times.createdAt,
            times.activatesAt,
            times.retiresAt,
            times.expiresAt,
            JSON.stringify(key.publicJwk),
            JSON.stringify(key.privateJwk),
          );
        });
      });
      await this.ctx.storage.setAlarm(fresh.alarmAt);
      this.#alarmChecked = true;
      return { ring: next, now: at };
    });
  }

  /** The private key `kid`, imported for signing only (not extractable). */
  #signerFor(kid: string): Promise<CryptoKey> {
    let signer = this.#signers.get(kid);
    if (!signer) {
      const row = this.ctx.storage.sql
        .exec<{ private_jwk: string }>("SELECT private_jwk FROM signing_keys WHERE kid = ?", kid)
        .one();
      signer = crypto.subtle.importKey(
        "jwk",
        JSON.parse(row.private_jwk) as JsonWebKey,
        EC_P256,
        false,
        ["sign"],
      );
      this.#signers.set(kid, signer);
    }
    return signer;
  }
}
