/**
 * When the PolicyStore publishes: KV takes about one write a second per key (the index is
 * rewritten by every publish), so a publish starts at least PUBLISH_SPACING_MS after the one
 * before, and the versions committed in between are published together, as the latest. A failed
 * publish is tried again later and later, up to MAX_BACKOFF_MS apart.
 */

/** Least time between the starts of two publishes. */
export const PUBLISH_SPACING_MS = 1000;
/** Longest wait before trying a failed publish again. */
export const MAX_BACKOFF_MS = 30_000;

/** When to publish a version just committed: now, unless a publish started less than the spacing ago. */
export function publishAt(now: number, lastAttemptAt: number | null): number {
  return lastAttemptAt === null ? now : Math.max(now, lastAttemptAt + PUBLISH_SPACING_MS);
}

/** How long to wait after the `failures`-th publish in a row failed: 1 s, 2 s, 4 s … 30 s. */
export function retryDelayMs(failures: number): number {
  const exponent = Math.min(Math.max(failures - 1, 0), 16);
  return Math.min(MAX_BACKOFF_MS, PUBLISH_SPACING_MS * 2 ** exponent);
}
