/**
 * A deadline around a promise: the mechanism behind both `timeouts.request` and
 * `timeouts.backendRequest`. On expiry it aborts the work (so the upstream request is
 * cancelled) and rejects with the error `onTimeout` makes; the timer is always cleared.
 */

/**
 * Runs `work(signal)` with at most `ms` milliseconds (0 or less: no deadline). The signal aborts
 * when time runs out, and the result rejects with `onTimeout()`.
 */
export async function withDeadline<T>(
  ms: number,
  work: (signal: AbortSignal | undefined) => Promise<T>,
  onTimeout: () => Error,
): Promise<T> {
  if (!(ms > 0) || !Number.isFinite(ms)) return work(undefined);
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | null = null;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = onTimeout();
      controller.abort(error);
      reject(error);
    }, ms);
  });
  try {
    return await Promise.race([work(controller.signal), expired]);
  } finally {
    clearTimeout(timer);
  }
}
