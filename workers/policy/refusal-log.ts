/**
 * Refused requests go to the audit log — but every such record is a write to the one PolicyStore,
 * so a stream of anonymous requests could keep the mesh's single writer busy. Each isolate
 * therefore records refusals at a bounded rate (a token bucket); those over it are counted and
 * the count is written with the next refusal recorded, so the log still says how many there were.
 */
import { TokenBucket } from "../../core/resilience/token-bucket.ts";
import type { RefusalEntry } from "../../durable-objects/policy-store.ts";

/** Refusals recorded one by one, per isolate: a burst of 20, then 2 a second. */
const POLICY = { ratePerSecond: 2, burst: 20 };

export class RefusalLog {
  readonly #bucket: TokenBucket;
  readonly #now: () => number;
  #unrecorded = 0;

  constructor(now: () => number) {
    this.#now = now;
    this.#bucket = new TokenBucket(POLICY, now());
  }

  /**
   * The entry to record for this refusal (with the count of those left out before it), or
   * undefined when it is one too many and is only counted.
   */
  admit(entry: RefusalEntry): RefusalEntry | undefined {
    if (!this.#bucket.tryTake(this.#now())) {
      this.#unrecorded++;
      return undefined;
    }
    const skipped = this.#unrecorded;
    this.#unrecorded = 0;
    return skipped === 0
      ? entry
      : {
          ...entry,
          detail: `${entry.detail} (and ${skipped} earlier refusal${skipped === 1 ? "" : "s"} from this isolate, not recorded one by one)`,
        };
  }
}
