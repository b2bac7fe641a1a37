/**
 * The mesh's verification keys, in isolate memory: fetched from the identity Worker's
 * `/.well-known/jwks.json` through the router's service binding, imported once per key, and
 * refreshed in the background (through `waitUntil`) when the answer's max-age has passed — by
 * any request that uses a key or a cached token, so a key the mesh withdrew leaves every busy
 * isolate within about one max-age, and the tokens it signed with it (`onWithdrawn`). Only
 * two things await a fetch: an isolate's first token (it has no keys yet) and a `kid` the isolate
 * does not know — one such fetch per `minRefreshMs`, so a stream of forged kids costs one fetch,
 * not one per request. The identity Worker publishes a key long before it signs with it, so a warm
 * isolate meets an unknown kid only when someone forged one.
 */
import { importJWK } from "jose";
import { ALGORITHM } from "../../../core/identity/names.ts";
import { withDeadline } from "../../../core/timeout.ts";

export interface JwksOptions {
  readonly now: () => number;
  /** Least time between two fetches that a request waits for (unknown kids). */
  readonly minRefreshMs: number;
  /** How long keys are fresh when the answer carries no max-age. */
  readonly defaultMaxAgeMs: number;
}

export interface JwksView {
  keys: string[];
  fetchedAt: string | null;
  /** Fetches a request waited for (first token, unknown kid). */
  awaitedFetches: number;
  /** Background refreshes. */
  backgroundFetches: number;
  lastError: { at: string; message: string } | null;
}

const MAX_KEYS = 16;
/** How long a fetch of the JWKS may take (a request may be waiting for it). */
const FETCH_TIMEOUT_MS = 2_000;
/** With no keys yet, least time between two fetches after one failed. */
const COLD_RETRY_MS = 1000;

export class JwksCache {
  private keys = new Map<string, CryptoKey>();
  private fetchedAt = 0;
  private freshUntil = 0;
  private lastAttempt = -Infinity;
  /** When a request last made the isolate fetch for a kid it did not know. */
  private lastUnknownKid = -Infinity;
  private inFlight: Promise<void> | undefined;
  private awaitedFetches = 0;
  private backgroundFetches = 0;
  private lastError: { at: number; message: string } | undefined;
  private readonly withdrawnListeners: ((kids: ReadonlySet<string>) => void)[] = [];

  private readonly fetchJwks: () => Promise<Response>;
  private readonly options: JwksOptions;

  constructor(fetchJwks: () => Promise<Response>, options: JwksOptions) {
    this.fetchJwks = fetchJwks;
    this.options = options;
  }

  /** The key with this kid, if the isolate has it (no I/O). */
  get(kid: string): CryptoKey | undefined {
    return this.keys.get(kid);
  }

  /** Calls `listener` with the kids a refresh found withdrawn (held before, published no more). */
  onWithdrawn(listener: (kids: ReadonlySet<string>) => void): void {
    this.withdrawnListeners.push(listener);
  }

  /**
   * Starts a background refresh (through `waitUntil`, never awaited) when the keys' max-age has
   * passed, at most one per `minRefreshMs`. Costs a comparison while they are fresh.
   */
  refreshIfStale(now: number, waitUntil: (promise: Promise<unknown>) => void): void {
    if (now < this.freshUntil || now - this.lastAttempt < this.options.minRefreshMs) return;
    if (this.inFlight) return;
    waitUntil(this.refresh(false));
  }

  /**
   * The key with this kid: from memory when the isolate has it (refreshing stale keys in the
   * background), else after one fetch when the rate limit allows it.
   */
  resolve(
    kid: string,
    waitUntil: (promise: Promise<unknown>) => void,
  ): CryptoKey | undefined | Promise<CryptoKey | undefined> {
    const now = this.options.now();
    const key = this.keys.get(kid);
    if (key) {
      this.refreshIfStale(now, waitUntil);
      return key;
    }
    // A fetch under way (the isolate's first) may bring it; otherwise one fetch for unknown
    // kids per `minRefreshMs`, however many arrive.
    if (this.inFlight) return this.inFlight.then(() => this.keys.get(kid));
    if (this.fetchedAt > 0) {
      // The isolate has keys: this is a kid it does not know, not its first load.
      if (now - this.lastUnknownKid < this.options.minRefreshMs) return undefined;
      this.lastUnknownKid = now;
    } else if (now - this.lastAttempt < COLD_RETRY_MS) {
      // No keys yet and the last fetch failed just now: do not make every request wait for it.
      return undefined;
    }
    return this.refresh(true).then(() => this.keys.get(kid));
  }

  /** Fetches the JWKS now (one fetch at a time); keeps the keys it had when the fetch fails. */
  refresh(awaited: boolean): Promise<void> {
    if (this.inFlight) return this.inFlight;
    this.lastAttempt = this.options.now();
    if (awaited) this.awaitedFetches++;
    else this.backgroundFetches++;
    this.inFlight = this.load()
      .catch((error: unknown) => {
        this.lastError = {
          at: this.options.now(),
          message: `fetching the mesh's JWKS failed: ${error instanceof Error ? error.message : String(error)}`,
        };
      })
      .finally(() => {
        this.inFlight = undefined;
      });
    return this.inFlight;
  }

  private async load(): Promise<void> {
    const response = await withDeadline(
      FETCH_TIMEOUT_MS,
      () => this.fetchJwks(),
      () => new Error(`no answer within ${FETCH_TIMEOUT_MS} ms`),
    );
    if (!response.ok) {
      await response.body?.cancel();
      throw new Error(`the identity Worker answered ${response.status}`);
    }
    const body = (await response.json()) as { keys?: unknown };
    if (!Array.isArray(body.keys)) throw new Error("the answer holds no keys array");
    const keys = new Map<string, CryptoKey>();
    for (const jwk of body.keys.slice(0, MAX_KEYS) as Record<string, unknown>[]) {
      // Only the mesh's kind of key; a private part or another algorithm is ignored, not used.
      if (
        typeof jwk?.kid !== "string" ||
        jwk.kty !== "EC" ||
        jwk.crv !== "P-256" ||
        "d" in jwk ||
        (jwk.alg !== undefined && jwk.alg !== ALGORITHM)
      ) {
        continue;
      }
      const existing = this.keys.get(jwk.kid);
      keys.set(
        jwk.kid,
        existing ??
          ((await importJWK(
            { kty: "EC", crv: "P-256", x: jwk.x as string, y: jwk.y as string },
            ALGORITHM,
          )) as CryptoKey),
      );
    }
    if (keys.size === 0) throw new Error("the answer holds no ES256 keys");
    const now = this.options.now();
    const withdrawn = new Set([...this.keys.keys()].filter((kid) => !keys.has(kid)));
    this.keys = keys;
    this.fetchedAt = now;
    this.freshUntil =
      now + maxAgeMs(response.headers.get("cache-control"), this.options.defaultMaxAgeMs);
    this.lastError = undefined;
    if (withdrawn.size > 0) for (const listener of this.withdrawnListeners) listener(withdrawn);
  }

  view(): JwksView {
    return {
      keys: [...this.keys.keys()],
      fetchedAt: this.fetchedAt ? new Date(this.fetchedAt).toISOString() : null,
      awaitedFetches: this.awaitedFetches,
      backgroundFetches: this.backgroundFetches,
      lastError: this.lastError
        ? { at: new Date(this.lastError.at).toISOString(), message: this.lastError.message }
        : null,
    };
  }
}

function maxAgeMs(cacheControl: string | null, fallback: number): number {
  const match = /(?:^|,)\s*max-age=(\d+)/i.exec(cacheControl ?? "");
  if (!match) return fallback;
  // Never trust a key set for more than a day, whatever the header says.
  return Math.min(Number(match[1]) * 1000, 86_400_000);
}
