/**
 * The identity Worker's view of the published config: the workload credentials and revocations
 * of the identity entry (core/config/snapshot.ts), read from KV through the snapshot index,
 * validated, and cached in isolate memory.
 *
 * An isolate that has the config answers from memory and, at most once per refresh interval,
 * checks KV again in the background (through `waitUntil`), so a revocation or a new credential
 * reaches every isolate within seconds without a KV read on any request's path. Only a cold
 * isolate waits for KV. A read that fails, does not answer within `readTimeoutMs`, or finds an
 * invalid entry — or finds no index at all once a version was seen (a publish never deletes the
 * index) — keeps the last good config and is shown in `/health`.
 *
 * Fail closed: an isolate that never loaded a config, or has not loaded one for `maxStaleMs`,
 * issues nothing rather than issue without knowing what is revoked. Such an isolate waits for a
 * load of its own before each answer, as a cold one does (at most one per second).
 */
import type {
  RevocationResource,
  WorkloadCredentialResource,
} from "../../core/config/identity-schema.ts";
import { MAX_ENTRY_BYTES, MAX_INDEX_BYTES } from "../../core/config/limits.ts";
import { INDEX_KEY, parseIdentityEntry, parseIndex } from "../../core/config/snapshot.ts";
import type { ConfigIssue } from "../../core/config/validate.ts";
import { MeshError } from "../../core/errors.ts";

/** What the Worker needs of a KV namespace (tests may count reads). */
export interface IdentityConfigSource {
  get(key: string, type: "text"): Promise<string | null>;
}

/** The credentials and revocations of one config version. */
export interface IdentityConfig {
  /** The config version they come from; undefined when nothing was ever published. */
  readonly version: number | undefined;
  readonly credentials: readonly WorkloadCredentialResource[];
  readonly revocations: readonly RevocationResource[];
}

export interface IdentityConfigOptions {
  /** Least time between two KV checks of a warm isolate, in ms. */
  readonly refreshMs: number;
  /** Longest a load (the index and the entry it names) may take before it counts as failed, in ms. */
  readonly readTimeoutMs: number;
  /** How long a config is issued against after its last successful load, in ms. */
  readonly maxStaleMs: number;
  readonly now: () => number;
  /** Resolves after `ms` (default: a timer); tests pass one they fire themselves. */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** How long an isolate with no usable config waits before reading KV again after a failure. */
const COLD_RETRY_MS = 1000;

const EMPTY: Omit<IdentityConfig, "version"> = { credentials: [], revocations: [] };

/** What one load found: the config, and the index and entry texts it was built from. */
interface Loaded {
  readonly config: IdentityConfig;
  readonly indexText: string | undefined;
  readonly entryKey: string | undefined;
}

/** Why a load failed, for `/health`. */
class LoadFailure extends Error {
  constructor(message: string, issues: readonly ConfigIssue[] = []) {
    super(issues.length === 0 ? message : `${message}: ${formatIssues(issues)}`);
  }
}

function formatIssues(issues: readonly ConfigIssue[]): string {
  const shown = issues.slice(0, 5).map((issue) => `${issue.path}: ${issue.message}`);
  if (issues.length > shown.length) shown.push(`and ${issues.length - shown.length} more`);
  return shown.join("; ");
}

const timer = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class IdentityConfigCache {
  #loaded: Loaded | undefined;
  /** When the last load succeeded. */
  #loadedAt = -Infinity;
  /** When the last load started. */
  #lastCheckAt = -Infinity;
  #loading: Promise<void> | undefined;
  #lastError: { at: number; message: string } | undefined;
  readonly #source: IdentityConfigSource;
  readonly #options: IdentityConfigOptions;

  constructor(source: IdentityConfigSource, options: IdentityConfigOptions) {
    this.#source = source;
    this.#options = options;
  }

  /**
   * The config: from memory when this isolate has a fresh one (with a background check when
   * due), else after one load. Throws `internal_error` when no config was loaded within
   * `maxStaleMs`.
   */
  get(waitUntil: (promise: Promise<unknown>) => void): IdentityConfig | Promise<IdentityConfig> {
    const now = this.#options.now();
    if (this.#loaded && !this.#stale(now)) {
      if (!this.#loading && now - this.#lastCheckAt >= this.#options.refreshMs) {
        waitUntil(this.#load());
      }
      return this.#loaded.config;
    }
    return this.#loadBeforeAnswering(now);
  }

  /** What `/health` says of the config: the version held, or that there is none. */
  describe(): string {
    if (!this.#loaded) return "not loaded yet";
    const { version } = this.#loaded.config;
    return version === undefined
      ? "nothing published: KV holds no snapshot index, so no WorkloadCredential is registered and nothing is revoked"
      : `version ${version}`;
  }

  /** What `/health` reports as wrong with the config: a failed load, issuance refused. */
  problems(): string[] {
    const problems: string[] = [];
    const now = this.#options.now();
    if (this.#lastError) {
      const kept = this.#loaded
        ? `keeping version ${this.#loaded.config.version ?? "(none published)"}`
        : "no config loaded yet: no token is issued until one is";
      problems.push(
        `the identity config could not be loaded at ${new Date(this.#lastError.at).toISOString()}: ${this.#lastError.message}; ${kept}`,
      );
    }
    if (this.#loaded && this.#stale(now)) {
      problems.push(
        `the identity config was last loaded at ${new Date(this.#loadedAt).toISOString()}, over ${this.#options.maxStaleMs / 1000} s ago: no token is issued until a load succeeds (revocations may have been missed)`,
      );
    }
    return problems;
  }

  /** Whether the config is too old to issue against. */
  #stale(now: number): boolean {
    return now - this.#loadedAt >= this.#options.maxStaleMs;
  }

  async #loadBeforeAnswering(now: number): Promise<IdentityConfig> {
    // After a failure just now, answer at once instead of piling every request onto KV.
    if (!this.#loading && this.#lastError && now - this.#lastCheckAt < COLD_RETRY_MS) {
      throw this.#unavailable();
    }
    await this.#load();
    if (!this.#loaded || this.#stale(this.#options.now())) throw this.#unavailable();
    return this.#loaded.config;
  }

  #unavailable(): MeshError {
    return new MeshError(
      "internal_error",
      "the identity Worker could not read the mesh's credentials and revocations; try again shortly",
    );
  }

  /**
   * One check of KV at a time, given up after `readTimeoutMs` (a read that answers later is
   * ignored); a failure is recorded and the last good config kept.
   */
  #load(): Promise<void> {
    if (this.#loading) return this.#loading;
    this.#lastCheckAt = this.#options.now();
    const timeoutMs = this.#options.readTimeoutMs;
    const timedOut = (this.#options.sleep ?? timer)(timeoutMs).then(() => {
      throw new LoadFailure(`KV did not answer within ${timeoutMs / 1000} s`);
    });
    this.#loading = Promise.race([this.#read(), timedOut])
      .then((loaded) => {
        this.#loaded = loaded;
        this.#loadedAt = this.#options.now();
        this.#lastError = undefined;
      })
      .catch((error: unknown) => {
        this.#lastError = {
          at: this.#options.now(),
          message: error instanceof Error ? error.message : String(error),
        };
      })
      .finally(() => {
        this.#loading = undefined;
      });
    return this.#loading;
  }

  /** Reads the index and, when it names a new one, the identity entry. */
  async #read(): Promise<Loaded> {
    const previous = this.#loaded;
    const indexText = await this.#readText(INDEX_KEY, MAX_INDEX_BYTES);
    if (indexText === null) {
      if (previous?.config.version !== undefined) {
        // A publish replaces the index, never deletes it: a missing one is a read gone wrong
        // (or a wiped namespace), not a mesh that stopped revoking.
        throw new LoadFailure(
          `KV holds no ${INDEX_KEY}, though version ${previous.config.version} was published`,
        );
      }
      // Nothing published yet: no credentials, nothing revoked.
      return {
        config: { version: undefined, ...EMPTY },
        indexText: undefined,
        entryKey: undefined,
      };
    }
    if (previous && indexText === previous.indexText) return previous;
    const index = parseIndex(parseJson(INDEX_KEY, indexText));
    if (!index.ok) throw new LoadFailure("the snapshot index failed validation", index.issues);
    const { version } = index.value;
    const key = index.value.identity;
    if (key === undefined) return { config: { version, ...EMPTY }, indexText, entryKey: undefined };
    if (previous && key === previous.entryKey) {
      // Entry keys are content hashes: the same key is the same credentials and revocations.
      return { config: { ...previous.config, version }, indexText, entryKey: key };
    }
    const entryText = await this.#readText(key, MAX_ENTRY_BYTES);
    // KV takes up to a minute to reach every location: an index may arrive before its entry.
    if (entryText === null) {
      throw new LoadFailure(`KV key ${key} (named by ${INDEX_KEY}) is missing`);
    }
    const entry = parseIdentityEntry(parseJson(key, entryText), key);
    if (!entry.ok) throw new LoadFailure("the identity entry failed validation", entry.issues);
    const { credentials, revocations } = entry.value;
    return { config: { version, credentials, revocations }, indexText, entryKey: key };
  }

  async #readText(key: string, limit: number): Promise<string | null> {
    let text: string | null;
    try {
      text = await this.#source.get(key, "text");
    } catch (error) {
      throw new LoadFailure(`reading ${key} from KV failed: ${(error as Error).message}`);
    }
    // Characters bound bytes from below: enough to refuse an oversized value before parsing.
    if (text !== null && text.length > limit) {
      throw new LoadFailure(`KV key ${key} is over ${limit} bytes`);
    }
    return text;
  }
}

function parseJson(key: string, text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new LoadFailure(`KV key ${key} is not valid JSON: ${(error as Error).message}`);
  }
}
