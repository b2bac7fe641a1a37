/**
 * Weighted backend choice, plain and sticky.
 *
 * Plain picks walk a cumulative-weight table built once per rule, so a request costs one random
 * number and a short scan. Sticky picks use weighted rendezvous hashing: each backend scores the
 * session key as `weight / -ln(h(key, backend))` and the highest score wins. Every backend then
 * receives its weighted share, and when weights move only the keys that must change backend do —
 * a key on a backend whose weight grew never leaves it, which is what lets one user stay on one
 * version while a canary ramps up.
 */
import { hashUnit } from "../hash.ts";
import type { RandomSource } from "../random.ts";

/** Anything with a name and a weight (weight 0 is never chosen). */
export interface Weighted {
  readonly name: string;
  readonly weight: number;
}

/** A precomputed table for weighted choice among `items`. */
export interface SplitTable<T extends Weighted> {
  readonly items: readonly T[];
  /** Running sums of the weights, aligned with `items`. */
  readonly cumulative: readonly number[];
  readonly total: number;
}

/** Builds the cumulative table once, at compile time. */
export function buildSplitTable<T extends Weighted>(items: readonly T[]): SplitTable<T> {
  const cumulative: number[] = [];
  let total = 0;
  for (const item of items) {
    total += item.weight;
    cumulative.push(total);
  }
  return { items, cumulative, total };
}

/** Picks an item with probability weight/total; undefined when every weight is 0. */
export function pickWeighted<T extends Weighted>(
  table: SplitTable<T>,
  random: RandomSource,
): T | undefined {
  if (table.total <= 0) return undefined;
  if (table.items.length === 1) return table.items[0];
  const point = random() * table.total;
  for (let i = 0; i < table.items.length; i++) {
    if (point < (table.cumulative[i] ?? 0)) return table.items[i];
  }
  return table.items[table.items.length - 1];
}

/**
 * Picks an item for a session key by weighted rendezvous hashing: the same key and weights always
 * give the same item, and shares follow the weights. Undefined when every weight is 0.
 */
export function pickSticky<T extends Weighted>(table: SplitTable<T>, key: string): T | undefined {
  let best: T | undefined;
  let bestScore = -Infinity;
  for (const item of table.items) {
    if (item.weight <= 0) continue;
    const score = item.weight / -Math.log(hashUnit(`${key}\u0000${item.name}`));
    if (score > bestScore) {
      bestScore = score;
      best = item;
    }
  }
  return best;
}
