/**
 * Smooth weighted round robin (as nginx balances upstreams): each pick, every eligible item's
 * running score grows by its weight, the highest score wins and gives back the total. Over any
 * stretch of picks each item gets its weighted share, interleaved — weights 5:1:1 give
 * a a b a c a a, not a a a a a b c — and with equal weights it is plain round robin.
 */
import type { Weighted } from "./pick-backend.ts";

export class SmoothRoundRobin {
  private scores: number[] = [];

  /**
   * Index of the next item, skipping weight-0 items and those `eligible` refuses; −1 when none
   * is left.
   */
  pick(items: readonly Weighted[], eligible: (index: number) => boolean = () => true): number {
    if (this.scores.length !== items.length) this.scores = new Array<number>(items.length).fill(0);
    let best = -1;
    let total = 0;
    for (let i = 0; i < items.length; i++) {
      const weight = items[i]!.weight;
      if (weight <= 0 || !eligible(i)) continue;
      this.scores[i]! += weight;
      total += weight;
      if (best < 0 || this.scores[i]! > this.scores[best]!) best = i;
    }
    if (best >= 0) this.scores[best]! -= total;
    return best;
  }
}
