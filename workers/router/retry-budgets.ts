/**
 * The isolate's retry budgets, one per destination, created on first use and kept for the
 * isolate's life. The limits are Linkerd's defaults until a policy resource sets them.
 */
import { RetryBudget, type RetryBudgetPolicy } from "../../core/resilience/retry-budget.ts";

/** Retries may add 20% to the requests, plus 10 a second, over a 10 s window. */
export const DEFAULT_RETRY_BUDGET: RetryBudgetPolicy = {
  ratio: 0.2,
  minPerSecond: 10,
  windowMs: 10_000,
};

export class RetryBudgets {
  private readonly budgets = new Map<string, RetryBudget>();
  private readonly policy: RetryBudgetPolicy;

  constructor(policy: RetryBudgetPolicy = DEFAULT_RETRY_BUDGET) {
    this.policy = policy;
  }

  /** The budget of calls to `destination`. */
  for(destination: string, now: number): RetryBudget {
    let budget = this.budgets.get(destination);
    if (!budget) {
      budget = new RetryBudget(this.policy, now);
      this.budgets.set(destination, budget);
    }
    return budget;
  }
}
