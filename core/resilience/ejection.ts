/**
 * Outlier ejection over a weighted split, as pure arithmetic: which backends whose breakers are
 * open leave the split (their weight goes to the others), which stay in although open, and what
 * happens when none is healthy. The router's traffic split (workers/router/layers/
 * traffic-split.ts) asks each backend's breaker and does the failover substitution first; this
 * decides the rest, so its bounds are unit-tested here.
 *
 * The rules, as Envoy's `max_ejection_percent` and Istio's outlier detection have them:
 *  - at most `maxEjectionPercent` of the split's weighted backends are ejected, rounded down but
 *    at least one (0 turns ejection off); those that stay open longest go first;
 *  - open backends beyond the cap stay in the split and are called past their breakers — a cap
 *    that still refused them would be no cap;
 *  - a split of one weighted backend ejects nothing: its breaker answers `circuit_open`;
 *  - when the ejected are all there was: `none-healthy` (`no_healthy_backend`), or with
 *    `failOpen` the backend that reopens first, called past its breaker.
 */

export interface OutlierPolicy {
  /** At most this share (0–100) of a split's backends leaves it. */
  readonly maxEjectionPercent: number;
  /** With every backend open, call the one that reopens first instead of refusing. */
  readonly failOpen: boolean;
}

/** One backend of a split, as its breaker stands. */
export interface SplitEntry<B> {
  readonly backend: B;
  readonly weight: number;
  /** When its breaker would admit a try again; undefined when it admits one now. */
  readonly openUntil: number | undefined;
}

export type Ejection<B> =
  | {
      readonly kind: "split";
      /** The backends left in the split, in their order. */
      readonly kept: readonly B[];
      readonly ejected: readonly B[];
      /** Kept although open (beyond the cap): their tries skip the breaker. */
      readonly bypass: readonly B[];
    }
  | { readonly kind: "none-healthy"; readonly ejected: readonly B[] }
  | {
      readonly kind: "fail-open";
      /** The one backend called, past its breaker. */
      readonly backend: B;
      readonly ejected: readonly B[];
    };

/** How many of `weighted` backends may leave a split. */
export function ejectionCap(weighted: number, maxEjectionPercent: number): number {
  if (maxEjectionPercent <= 0 || weighted <= 0) return 0;
  return Math.max(1, Math.floor((weighted * maxEjectionPercent) / 100));
}

/** Applies outlier ejection to a split's `entries` (see the module comment). */
export function ejectOutliers<B>(
  entries: readonly SplitEntry<B>[],
  policy: OutlierPolicy,
): Ejection<B> {
  const weighted = entries.filter((e) => e.weight > 0);
  const open = weighted.filter((e) => e.openUntil !== undefined);
  if (open.length === 0 || weighted.length < 2) {
    return { kind: "split", kept: entries.map((e) => e.backend), ejected: [], bypass: [] };
  }
  // Longest open first; a stable sort keeps the split's order among equals.
  const worstFirst = [...open].sort((a, b) => b.openUntil! - a.openUntil!);
  const cap = ejectionCap(weighted.length, policy.maxEjectionPercent);
  const ejected = worstFirst.slice(0, cap);
  const bypass = worstFirst.slice(cap);
  const out = new Set<SplitEntry<B>>(ejected);
  const kept = entries.filter((e) => !out.has(e));
  const ejectedBackends = ejected.map((e) => e.backend);
  if (kept.some((e) => e.weight > 0)) {
    return {
      kind: "split",
      kept: kept.map((e) => e.backend),
      ejected: ejectedBackends,
      bypass: bypass.map((e) => e.backend),
    };
  }
  if (!policy.failOpen) return { kind: "none-healthy", ejected: ejectedBackends };
  const leastBad = worstFirst.at(-1)!;
  return {
    kind: "fail-open",
    backend: leastBad.backend,
    ejected: ejectedBackends.filter((b) => b !== leastBad.backend),
  };
}
