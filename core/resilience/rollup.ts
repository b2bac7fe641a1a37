/**
 * Rolling a Service's state up from location shards to its root object, as pure data.
 *
 * One Durable Object per Service would see a report a second from every isolate that calls it —
 * thousands at scale, past what one object serves. So isolates report to their location's shard
 * of the Service (`<service>@<colo>`), and each shard rolls what its isolates told it up to the
 * Service's root object (`<service>`) at most once a second, only with news. The root sees one
 * report a second per location, whatever the number of isolates; a shard sees its location's.
 *
 * A shard keeps the news it has not rolled up yet as one accumulated report (`mergeReports`), and
 * answers its isolates with the root's last view plus that news (`withPending`), so the counts
 * an isolate adopts — budget, rate-limit demand, latency — are the mesh's, at most one rollup
 * round old. Breakers merge by `mergeFromRoot` (breaker.ts). What crossing a second level costs:
 * a change seen in one location reaches another in about two report rounds (isolate → shard →
 * root, and back down at the next rounds), not one.
 */
import type { Outcomes } from "./breaker.ts";
import type { SparseCounts } from "./latency.ts";
import type { BackendReport, BackendView } from "./report.ts";

/** Outcomes of two batches, in order: `b` came after `a`. */
export function mergeOutcomes(a: Outcomes, b: Outcomes): Outcomes {
  return {
    successes: a.successes + b.successes,
    failures: a.failures + b.failures,
    // A success in the later batch ends the earlier streak.
    trailingFailures:
      b.successes > 0 ? b.trailingFailures : a.trailingFailures + b.trailingFailures,
    probeSuccesses: a.probeSuccesses + b.probeSuccesses,
  };
}

function mergeSparse(a: SparseCounts, b: SparseCounts): SparseCounts {
  const byBucket = new Map<number, number>();
  for (const [bucket, n] of [...a, ...b]) {
    if (bucket === undefined || n === undefined) continue;
    byBucket.set(bucket, (byBucket.get(bucket) ?? 0) + n);
  }
  return [...byBucket].sort((x, y) => x[0] - y[0]);
}

function addCounts(
  a: Readonly<Record<string, number>>,
  b: Readonly<Record<string, number>>,
): Record<string, number> {
  const out: Record<string, number> = { ...a };
  for (const [key, n] of Object.entries(b)) out[key] = (out[key] ?? 0) + n;
  return out;
}

/**
 * Two reports as one: what an isolate said (`b`) added to what the shard holds (`a`). Counts
 * add up; the breaker policy and the budget's window are the later report's (isolates on a newer
 * config version), and budget counts over another window than that are dropped. Probe requests
 * are not carried: a shard grants its isolates' probes itself.
 */
export function mergeReports(a: BackendReport | undefined, b: BackendReport): BackendReport {
  const breaker = b.breaker
    ? {
        policy: b.breaker.policy,
        outcomes: a?.breaker
          ? mergeOutcomes(a.breaker.outcomes, b.breaker.outcomes)
          : b.breaker.outcomes,
      }
    : a?.breaker;
  const budget = b.budget
    ? a?.budget && a.budget.windowMs === b.budget.windowMs
      ? {
          windowMs: b.budget.windowMs,
          requests: a.budget.requests + b.budget.requests,
          retries: a.budget.retries + b.budget.retries,
        }
      : b.budget
    : a?.budget;
  const latency = b.latency
    ? a?.latency
      ? mergeSparse(a.latency, b.latency)
      : b.latency
    : a?.latency;
  const limits = b.limits ? (a?.limits ? addCounts(a.limits, b.limits) : b.limits) : a?.limits;
  return {
    ...(breaker ? { breaker: { policy: breaker.policy, outcomes: breaker.outcomes } } : {}),
    ...(budget ? { budget } : {}),
    ...(latency ? { latency } : {}),
    ...(limits ? { limits } : {}),
  };
}

/**
 * What a shard answers an isolate for the windows it asked about: the root's last view (`root`)
 * plus what the shard has not rolled up yet (`pending`) — the mesh's counts as closely as the
 * shard knows them. `local` is the shard's own answer, used for what the root's view lacks.
 * Budget counts are combined only over one window: the one the isolate asked about
 * (`budgetWindowMs`), which the root's view must be of (`rootBudgetWindowMs`) and the pending
 * counts too.
 */
export function withPending(
  root: BackendView,
  pending: BackendReport | undefined,
  local: BackendView,
  windows: { budgetWindowMs: number | undefined; rootBudgetWindowMs: number | undefined },
): Omit<BackendView, "breaker" | "probes" | "at"> {
  const sameWindow =
    windows.budgetWindowMs !== undefined && windows.budgetWindowMs === windows.rootBudgetWindowMs;
  const unsent =
    pending?.budget && pending.budget.windowMs === windows.budgetWindowMs
      ? pending.budget
      : undefined;
  const budget = local.budget
    ? root.budget && sameWindow
      ? {
          requests: root.budget.requests + (unsent?.requests ?? 0),
          retries: root.budget.retries + (unsent?.retries ?? 0),
        }
      : local.budget
    : undefined;
  const latency = local.latency
    ? root.latency
      ? pending?.latency
        ? mergeSparse(root.latency, pending.latency)
        : root.latency
      : local.latency
    : undefined;
  let limits: Record<string, number> | undefined;
  if (local.limits) {
    limits = {};
    for (const [key, own] of Object.entries(local.limits)) {
      const mesh = root.limits?.[key];
      limits[key] = mesh === undefined ? own : mesh + (pending?.limits?.[key] ?? 0);
    }
  }
  return {
    ...(budget ? { budget } : {}),
    ...(latency ? { latency } : {}),
    ...(limits ? { limits } : {}),
  };
}

/**
 * A shard's rollup report: its news, asking the root for every window the shard serves — its
 * newest budget window, latency, each rate-limit key — even those without news this round, so
 * the root's answer covers whatever its isolates ask about until the next rollup.
 */
export function rollupReport(
  pending: BackendReport,
  tracked: {
    budgetWindowMs: number | undefined;
    latency: boolean;
    limitKeys: readonly string[];
  },
): BackendReport {
  const budget =
    pending.budget ??
    (tracked.budgetWindowMs !== undefined
      ? { windowMs: tracked.budgetWindowMs, requests: 0, retries: 0 }
      : undefined);
  const latency = pending.latency ?? (tracked.latency ? [] : undefined);
  const limits: Record<string, number> = {};
  for (const key of tracked.limitKeys) limits[key] = 0;
  Object.assign(limits, pending.limits);
  return {
    ...(pending.breaker ? { breaker: pending.breaker } : {}),
    ...(budget ? { budget } : {}),
    ...(latency ? { latency } : {}),
    ...(Object.keys(limits).length > 0 ? { limits } : {}),
  };
}
