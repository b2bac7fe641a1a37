/**
 * The identity Worker's view of the published config: the workload credentials and revocations
 * of the identity entry (core/config/snapshot.ts), read from KV through the snapshot index,
 * validated, and cached in isolate memory.
 *
 * An isolate that has the config answers from memory and, at most once per refresh interval,
 * checks KV again in the background (through `waitUntil`), so a revocation or a new credential
 * reaches every isolate within seconds without a KV read on any request's path. Only a cold
 * isolate waits for KV. A read or validation failure keeps the last good config (and is shown in
 * `/health`); an isolate that never loaded one fails closed — it issues nothing rather than issue
 * without knowing what is revoked.
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
  readonly now: () => number;
}

/** How long an isolate with no config waits before reading KV again after a failure. */
const COLD_RETRY_MS = 1000;

const EMPTY: Omit<IdentityConfig, "version"> = { credentials: [], revocations: [] };

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

export class IdentityConfigCache {
  private config: IdentityConfig | undefined;
  /** The index and entry texts the config was built from: unchanged ones are not re-parsed. */
  private indexText: string | undefined;
  private entryKey: string | undefined;
  private lastCheckAt = -Infinity;
  private loading: Promise<void> | undefined;
  private lastError: { at: number; message: string } | undefined;
  private readonly source: IdentityConfigSource;
  private readonly options: IdentityConfigOptions;

  constructor(source: IdentityConfigSource, options: IdentityConfigOptions) {
    this.source = source;
    this.options = options;
  }

  /**
   * The config: from memory when this isolate has one (with a background check when due), else
   * after one load. Throws `internal_error` when no config could ever be read.
   */
  get(waitUntil: (promise: Promise<unknown>) => void): IdentityConfig | Promise<IdentityConfig> {
    const now = this.options.now();
    if (this.config) {
      if (!this.loading && now - this.lastCheckAt >= this.options.refreshMs) {
        waitUntil(this.load());
      }
      return this.config;
    }
    return this.loadCold(now);
  }

  /** What `/health` reports of the config: the failure of the last load, if it failed. */
  problem(): string | undefined {
    if (!this.lastError) return undefined;
    const kept =
      this.config === undefined
        ? "no config loaded yet: no token is issued until one is"
        : `keeping version ${this.config.version ?? "(none published)"}`;
    return `the identity config could not be loaded at ${new Date(this.lastError.at).toISOString()}: ${this.lastError.message}; ${kept}`;
  }

  private async loadCold(now: number): Promise<IdentityConfig> {
    // After a failure just now, answer at once instead of piling every request onto KV.
    if (!this.loading && this.lastError && now - this.lastCheckAt < COLD_RETRY_MS) {
      throw this.unavailable();
    }
    await this.load();
    if (!this.config) throw this.unavailable();
    return this.config;
  }

  private unavailable(): MeshError {
    return new MeshError(
      "internal_error",
      "the identity Worker could not read the mesh's credentials and revocations; try again shortly",
    );
  }

  /** One check of KV at a time; a failure is recorded and the last good config kept. */
  private load(): Promise<void> {
    this.loading ??= this.read()
      .then(() => {
        this.lastError = undefined;
      })
      .catch((error: unknown) => {
        this.lastError = {
          at: this.options.now(),
          message: error instanceof Error ? error.message : String(error),
        };
      })
      .finally(() => {
        this.loading = undefined;
      });
    this.lastCheckAt = this.options.now();
    return this.loading;
  }

  private async read(): Promise<void> {
    const indexText = await this.readText(INDEX_KEY, MAX_INDEX_BYTES);
    if (indexText === null) {
      // Nothing published yet: no credentials, nothing revoked.
      this.adopt({ version: undefined, ...EMPTY }, undefined, undefined);
      return;
    }
    if (indexText === this.indexText && this.config) return;
    const index = parseIndex(parseJson(INDEX_KEY, indexText));
    if (!index.ok) throw new LoadFailure("the snapshot index failed validation", index.issues);
    const key = index.value.identity;
    if (key === undefined) {
      this.adopt({ version: index.value.version, ...EMPTY }, indexText, undefined);
      return;
    }
    if (key === this.entryKey && this.config) {
      // Entry keys are content hashes: the same key is the same credentials and revocations.
      this.adopt({ ...this.config, version: index.value.version }, indexText, key);
      return;
    }
    const entryText = await this.readText(key, MAX_ENTRY_BYTES);
    // KV takes up to a minute to reach every location: an index may arrive before its entry.
    if (entryText === null)
      throw new LoadFailure(`KV key ${key} (named by ${INDEX_KEY}) is missing`);
    const entry = parseIdentityEntry(parseJson(key, entryText), key);
    if (!entry.ok) throw new LoadFailure("the identity entry failed validation", entry.issues);
    this.adopt(
      {
        version: index.value.version,
        credentials: entry.value.credentials,
        revocations: entry.value.revocations,
      },
      indexText,
      key,
    );
  }

  private adopt(config: IdentityConfig, indexText: string | undefined, key: string | undefined) {
    this.config = config;
    this.indexText = indexText;
    this.entryKey = key;
  }

  private async readText(key: string, limit: number): Promise<string | null> {
    let text: string | null;
    try {
      text = await this.source.get(key, "text");
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
