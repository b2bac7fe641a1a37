/**
 * The router's view of the published config: read from KV, validated, compiled, cached in
 * isolate memory and refreshed in the background.
 *
 * A request never awaits KV once its destination is warm: `tableFor` answers from memory and, at
 * most once per refresh interval, hands a background refresh to `waitUntil`. Only a cold isolate's
 * first request for a destination reads KV on the request path (the index once, then that
 * destination's entry), so cold start stays small with 10 or 10,000 services.
 *
 * A new snapshot version is applied whole or not at all: the index and the entries of every
 * destination this isolate serves must all validate, or the isolate keeps serving the last good
 * version and `/.mesh/status` shows why the new one was refused. A destination this isolate
 * first serves under a version whose entry for it is missing or invalid falls back to the
 * entry of the version before (when there is one), and status reports the error at the top.
 * Index and entries are size-checked before they are parsed.
 */
import { RevocationList } from "./identity/authenticator.ts";
import { MAX_ENTRY_BYTES, MAX_INDEX_BYTES } from "../../core/config/limits.ts";
import { utf8Length, type ConfigIssue } from "../../core/config/validate.ts";
import {
  INDEX_KEY,
  parseEntry,
  parseIndex,
  type SnapshotIndex,
} from "../../core/config/snapshot.ts";
import {
  compileRouteTable,
  type CompileOptions,
  type RouteTable,
} from "../../core/routing/route-table.ts";

/** What the cache needs of a KV namespace (so tests can count reads). */
export interface ConfigSource {
  get(key: string, type: "text"): Promise<string | null>;
}

/** A refused config version and why. */
export interface LoadError {
  /** The version that was refused, when its index could be read. */
  version: number | undefined;
  at: string;
  message: string;
  issues: ConfigIssue[];
}

interface LoadedDestination {
  key: string;
  table: RouteTable;
  loadedAt: number;
  /** Set when this is the previous version's entry, served because `fallbackFor` failed. */
  fallbackFor?: string | undefined;
  /** The version whose entry a fallback serves. */
  fallbackVersion?: number | undefined;
}

export interface ConfigCacheOptions extends CompileOptions {
  refreshMs: number;
  now: () => number;
}

/** How long an isolate without any config waits before reading KV again after a failure. */
const COLD_RETRY_MS = 1000;

/** Refuses `text` (the value of `key`) when it is larger than `limit` bytes, before parsing. */
function checkSize(key: string, text: string, limit: number): void {
  // UTF-8 takes 1 to 3 bytes per UTF-16 unit: count exactly only when it could matter.
  if (text.length * 3 <= limit) return;
  const bytes = text.length > limit ? text.length : utf8Length(text);
  if (bytes > limit) {
    throw new LoadFailure(`KV key ${key} is at least ${bytes} bytes; the limit is ${limit}`);
  }
}

/** Raised inside a load to abandon it with a recorded reason. */
class LoadFailure extends Error {
  readonly issues: ConfigIssue[];
  /**
   * True when reading again may succeed (KV failed, or a key is not there yet — KV takes up to a
   * minute to reach every location); false when the value itself is refused.
   */
  readonly transient: boolean;
  constructor(message: string, issues: ConfigIssue[] = [], transient = false) {
    super(message);
    this.issues = issues;
    this.transient = transient;
  }
}

/** Per-isolate cache of compiled destinations for one KV namespace. */
export class ConfigCache {
  private index: SnapshotIndex | undefined;
  /** The index's revocations, compiled for lookups per request. */
  private revoked: RevocationList = RevocationList.EMPTY;
  /** The index the current one replaced: where a destination falls back to. */
  private previousIndex: SnapshotIndex | undefined;
  /** The applied index's text: an unchanged index is not applied again. */
  private indexText: string | undefined;
  private indexLoadedAt = 0;
  private readonly destinations = new Map<string, LoadedDestination>();
  private readonly coldLoads = new Map<string, Promise<LoadedDestination | undefined>>();
  private indexLoad: Promise<void> | undefined;
  private refreshing: Promise<void> | undefined;
  private lastCheckAt = 0;
  private lastError: LoadError | undefined;
  /** Index text of the last refused version, so it is not re-validated every interval. */
  private refusedIndexText: string | undefined;
  private readonly destinationErrors = new Map<string, LoadError>();
  private readonly destinationFailedAt = new Map<string, number>();
  /** KV reads made on a request's path (cold loads) and in the background. */
  readonly kvReads = { awaited: 0, background: 0 };

  private readonly source: ConfigSource;
  private readonly options: ConfigCacheOptions;

  constructor(source: ConfigSource, options: ConfigCacheOptions) {
    this.source = source;
    this.options = options;
  }

  /**
   * The compiled table for `destination`: from memory when warm (no I/O), else loaded from KV.
   * Undefined when the destination is not in the published config.
   */
  tableFor(
    destination: string,
    waitUntil: (promise: Promise<unknown>) => void,
  ): RouteTable | undefined | Promise<RouteTable | undefined> {
    const loaded = this.destinations.get(destination);
    if (loaded && this.index) {
      this.maybeRefresh(waitUntil);
      return loaded.table;
    }
    return this.loadCold(destination, waitUntil);
  }

  /** True once a config version has been applied in this isolate. */
  /** The JWT-SVIDs the applied version revokes. */
  get revocations(): RevocationList {
    return this.revoked;
  }

  get loaded(): boolean {
    return this.index !== undefined;
  }

  /** The error that keeps `destination` from loading, if any. */
  errorFor(destination: string): LoadError | undefined {
    return this.destinationErrors.get(destination) ?? (this.index ? undefined : this.lastError);
  }

  /** The error status reports at the top: a refused version, else a destination's. */
  private topError(): LoadError | undefined {
    if (this.lastError) return this.lastError;
    for (const error of this.destinationErrors.values()) return error;
    return undefined;
  }

  private maybeRefresh(waitUntil: (promise: Promise<unknown>) => void): void {
    if (this.refreshing || this.options.now() - this.lastCheckAt < this.options.refreshMs) return;
    this.lastCheckAt = this.options.now();
    waitUntil(this.refresh());
  }

  private async loadCold(
    destination: string,
    waitUntil: (promise: Promise<unknown>) => void,
  ): Promise<RouteTable | undefined> {
    if (!this.index) {
      // With no config yet and a failed read just now, answer at once rather than have every
      // request wait on KV again (a KV outage or a bad first publish must not pile up calls).
      if (this.lastError && this.options.now() - this.lastCheckAt < COLD_RETRY_MS) return undefined;
      this.indexLoad ??= this.refreshNow("awaited").finally(() => (this.indexLoad = undefined));
      await this.indexLoad;
      const warm = this.destinations.get(destination);
      if (warm) return warm.table;
    } else if (this.options.now() - this.lastCheckAt >= this.options.refreshMs) {
      // A cold destination waits for KV anyway: check the index first, so an isolate that sat
      // idle does not look up an entry of a version long since replaced (and perhaps collected).
      await this.refreshNow("awaited");
    } else {
      this.maybeRefresh(waitUntil);
    }
    const index = this.index;
    const key = index?.destinations[destination];
    if (!index || !key) return undefined;
    // The same back-off for a destination whose entry just failed to load.
    const failedAt = this.destinationFailedAt.get(destination);
    if (failedAt !== undefined && this.options.now() - failedAt < COLD_RETRY_MS) return undefined;
    let pending = this.coldLoads.get(destination);
    if (!pending) {
      pending = this.loadDestination(destination, key, "awaited").finally(() =>
        this.coldLoads.delete(destination),
      );
      this.coldLoads.set(destination, pending);
    }
    return (await pending)?.table;
  }

  private async loadDestination(
    destination: string,
    key: string,
    mode: "awaited" | "background",
  ): Promise<LoadedDestination | undefined> {
    const version = this.index?.version;
    try {
      const loaded = await this.readDestination(key, mode);
      this.adopt(destination, key, loaded);
      return loaded;
    } catch (error) {
      const failure = this.toLoadError(error, version);
      const fallback = await this.loadFallback(destination, key, mode);
      if (fallback) {
        failure.message += `; '${destination}' keeps the entry of version ${fallback.fallbackVersion}`;
      }
      this.destinationErrors.set(destination, failure);
      this.destinationFailedAt.set(destination, this.options.now());
      return fallback;
    }
  }

  /**
   * Serves `loaded` for `destination`, loaded for the index's `key`, unless a refresh moved the
   * index on while it was read (then the newer state stands). A real entry ends any error.
   */
  private adopt(destination: string, key: string, loaded: LoadedDestination): void {
    if (this.index?.destinations[destination] !== key) return;
    this.destinations.set(destination, loaded);
    if (loaded.fallbackFor === undefined) {
      this.destinationErrors.delete(destination);
      this.destinationFailedAt.delete(destination);
    }
  }

  /** The previous version's entry for `destination`, when it differs from the failed `key`. */
  private async loadFallback(
    destination: string,
    key: string,
    mode: "awaited" | "background",
  ): Promise<LoadedDestination | undefined> {
    const previous = this.previousIndex?.destinations[destination];
    if (previous === undefined || previous === key) return undefined;
    try {
      const loaded = {
        ...(await this.readDestination(previous, mode)),
        fallbackFor: key,
        fallbackVersion: this.previousIndex?.version,
      };
      this.adopt(destination, key, loaded);
      return loaded;
    } catch {
      return undefined;
    }
  }

  /** Retries the entries of destinations served from a fallback (the index did not change). */
  private async retryFallbacks(mode: "awaited" | "background"): Promise<void> {
    for (const [name, loaded] of this.destinations) {
      const key = loaded.fallbackFor;
      if (key === undefined || this.index?.destinations[name] !== key) continue;
      try {
        this.adopt(name, key, await this.readDestination(key, mode));
      } catch (error) {
        const failure = this.toLoadError(error, this.index?.version);
        failure.message += `; '${name}' keeps the entry of version ${loaded.fallbackVersion}`;
        this.destinationErrors.set(name, failure);
      }
    }
  }

  private async readJson(key: string, mode: "awaited" | "background"): Promise<unknown> {
    this.kvReads[mode]++;
    let text: string | null;
    try {
      text = await this.source.get(key, "text");
    } catch (error) {
      throw new LoadFailure(`reading ${key} from KV failed: ${(error as Error).message}`, [], true);
    }
    if (text === null) throw new LoadFailure(`KV key ${key} does not exist`, [], true);
    checkSize(key, text, MAX_ENTRY_BYTES);
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      throw new LoadFailure(`KV key ${key} is not valid JSON: ${(error as Error).message}`);
    }
  }

  private async readDestination(
    key: string,
    mode: "awaited" | "background",
  ): Promise<LoadedDestination> {
    const parsed = parseEntry(await this.readJson(key, mode), key);
    if (!parsed.ok) throw new LoadFailure(`${key} failed validation`, parsed.issues);
    return {
      key,
      table: compileRouteTable(parsed.value, this.options),
      loadedAt: this.options.now(),
    };
  }

  /** Checks KV now (awaited by the caller); used by `/.mesh/status?refresh=1` and cold starts. */
  refreshNow(mode: "awaited" | "background" = "awaited"): Promise<void> {
    this.lastCheckAt = this.options.now();
    this.refreshing ??= this.applyLatest(mode).finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private refresh(): Promise<void> {
    return this.refreshNow("background");
  }

  /** Reads the index and, if it moved, every entry this isolate serves; applies all or none. */
  private async applyLatest(mode: "awaited" | "background"): Promise<void> {
    let refusedVersion: number | undefined;
    try {
      this.kvReads[mode]++;
      let text: string | null;
      try {
        text = await this.source.get(INDEX_KEY, "text");
      } catch (error) {
        throw new LoadFailure(`reading ${INDEX_KEY} from KV failed: ${(error as Error).message}`);
      }
      if (text === null)
        throw new LoadFailure(`no config published yet (KV key ${INDEX_KEY} is absent)`);
      if (text === this.refusedIndexText) return;
      if (text === this.indexText) {
        // The applied version, unchanged (any earlier failure to read or apply is over): only
        // destinations on a fallback have work to do.
        this.lastError = undefined;
        await this.retryFallbacks(mode);
        return;
      }
      try {
        checkSize(INDEX_KEY, text, MAX_INDEX_BYTES);
      } catch (error) {
        this.refusedIndexText = text;
        throw error;
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (error) {
        this.refusedIndexText = text;
        throw new LoadFailure(`KV key ${INDEX_KEY} is not valid JSON: ${(error as Error).message}`);
      }
      const parsed = parseIndex(json);
      if (!parsed.ok) {
        this.refusedIndexText = text;
        throw new LoadFailure(`${INDEX_KEY} failed validation`, parsed.issues);
      }
      const next = parsed.value;
      // Revocations take effect as soon as a valid index carries them, even while its entries
      // are still being read (or are refused): they only ever refuse more.
      this.revoked = next.revocations ? new RevocationList(next.revocations) : RevocationList.EMPTY;
      refusedVersion = next.version;
      const changed = new Map<string, LoadedDestination>();
      for (const [name, loaded] of this.destinations) {
        const key = next.destinations[name];
        if (key === undefined) continue;
        if (key === loaded.key) {
          // A rollback to the entry a fallback serves ends the fallback.
          if (loaded.fallbackFor !== undefined)
            changed.set(name, { ...loaded, fallbackFor: undefined });
          continue;
        }
        // Still the entry that failed: keep the fallback rather than refuse every later version.
        if (key === loaded.fallbackFor) continue;
        try {
          changed.set(name, await this.readDestination(key, mode));
        } catch (error) {
          // A refused entry refuses this index text for good; a read that may succeed later
          // (KV failing, an entry not propagated yet) is tried again at the next check.
          if (!(error instanceof LoadFailure && error.transient)) this.refusedIndexText = text;
          throw error;
        }
      }
      // Everything validated: swap in the new version at once.
      for (const name of this.destinations.keys()) {
        if (next.destinations[name] === undefined) this.destinations.delete(name);
      }
      for (const [name, loaded] of changed) this.destinations.set(name, loaded);
      if (this.index) this.previousIndex = this.index;
      this.index = next;
      this.indexText = text;
      this.indexLoadedAt = this.options.now();
      this.lastError = undefined;
      this.refusedIndexText = undefined;
      for (const name of this.destinationErrors.keys()) {
        if (this.destinations.get(name)?.fallbackFor === undefined) {
          this.destinationErrors.delete(name);
          this.destinationFailedAt.delete(name);
        }
      }
    } catch (error) {
      this.lastError = this.toLoadError(error, refusedVersion);
    }
  }

  private toLoadError(error: unknown, version: number | undefined): LoadError {
    const failure =
      error instanceof LoadFailure ? error : new LoadFailure(`unexpected: ${String(error)}`);
    return {
      version,
      at: new Date(this.options.now()).toISOString(),
      message: failure.message,
      issues: failure.issues,
    };
  }

  /** The state `/.mesh/status` reports. */
  /** The applied version (null: none yet). */
  get currentVersion(): number | null {
    return this.index?.version ?? null;
  }

  /** The applied version, when it was applied, and the top-level error, for version reports. */
  appliedVersion(): { version: number | null; appliedAt: string | null; error: string | null } {
    const error = this.topError();
    return {
      version: this.index?.version ?? null,
      appliedAt: this.index ? new Date(this.indexLoadedAt).toISOString() : null,
      error: error ? error.message : null,
    };
  }

  status(): Record<string, unknown> {
    const now = this.options.now();
    return {
      version: this.index?.version ?? null,
      publishedAt: this.index?.publishedAt ?? null,
      appliedAt: this.index ? new Date(this.indexLoadedAt).toISOString() : null,
      ageSeconds: this.index ? Math.round((now - Date.parse(this.index.publishedAt)) / 1000) : null,
      lastCheckAt: this.lastCheckAt ? new Date(this.lastCheckAt).toISOString() : null,
      refreshSeconds: this.options.refreshMs / 1000,
      error: this.topError() ?? null,
      destinations: Object.fromEntries(
        [...new Set([...this.destinations.keys(), ...this.destinationErrors.keys()])]
          .sort()
          .map((name) => {
            const loaded = this.destinations.get(name);
            return [
              name,
              {
                entry: loaded?.key ?? null,
                ...(loaded?.fallbackFor ? { fallbackFor: loaded.fallbackFor } : {}),
                matches: loaded?.table.hasRoutes ? loaded.table.matches.length : 0,
                warnings: loaded?.table.warnings ?? [],
                error: this.destinationErrors.get(name) ?? null,
              },
            ];
          }),
      ),
      knownDestinations: this.index ? Object.keys(this.index.destinations).length : 0,
      kvReads: { ...this.kvReads },
    };
  }
}
