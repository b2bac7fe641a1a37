/**
 * Drift: whether KV's `mesh/index` is still the one the PolicyStore last published. Something
 * else may have written it (`wrangler kv key put`, `npm run publish`); the router serves whatever
 * validates, so the operator must be told. KV reaches every location within about a minute, so
 * right after a publish KV may still show the index before it: that is propagation, not drift.
 */

/** How long after a publish KV may still show the index it replaced. */
export const PROPAGATION_MS = 120_000;

/** What the store knows of its own publishes. */
export interface PublishedIndex {
  /** The version it last published, or null. */
  version: number | null;
  /** SHA-256 (hex) of the index text it wrote then. */
  hash: string | null;
  /** When, in ms since the epoch. */
  at: number | null;
  /**
   * Indexes this store wrote before that one, with when a later publish of its own replaced each
   * (ms since the epoch): KV may still show any replaced less than PROPAGATION_MS ago.
   */
  replaced: readonly { hash: string; at: number }[];
}

/** What KV holds: the index's hash and version (null when absent or unreadable as an index). */
export interface KvIndex {
  hash: string | null;
  version: number | null;
}

export interface Drift {
  kvVersion: number | null;
  publishedVersion: number | null;
  message: string;
}

/** True when `hash` is an index this store replaced so recently that KV may still show it. */
export function isPropagating(
  hash: string | null,
  published: Pick<PublishedIndex, "replaced">,
  now: number,
): boolean {
  return (
    hash !== null && published.replaced.some((r) => r.hash === hash && now - r.at < PROPAGATION_MS)
  );
}

/** The drift between KV and the store's last publish, or null when there is none. */
export function driftOf(kv: KvIndex, published: PublishedIndex, now: number): Drift | null {
  if (kv.hash === published.hash) return null;
  if (isPropagating(kv.hash, published, now)) return null;
  const drift = (message: string): Drift => ({
    kvVersion: kv.version,
    publishedVersion: published.version,
    message,
  });
  const held =
    kv.version === null ? "an index without a readable version" : `version ${kv.version}`;
  if (published.hash === null) {
    return drift(
      `KV holds ${held}, which this store did not publish (it has published nothing yet; npm run publish or a direct edit wrote it). The first version committed here is numbered above it and replaces it.`,
    );
  }
  if (kv.hash === null) {
    return drift(
      `KV holds no mesh/index, but this store published version ${published.version}: it was deleted outside the policy Worker. Routers keep the version they have; the next version committed here writes it again.`,
    );
  }
  return drift(
    `KV's mesh/index (${held}) is not the one this store published (version ${published.version}): something else wrote it (wrangler kv key put, npm run publish). Routers serve it if it validates; the next version committed here is numbered above it and replaces it.`,
  );
}
