import { describe, expect, it } from "vitest";
import { RetryBudget } from "./retry-budget.ts";

const policy = { ratio: 0.2, minPerSecond: 1, windowMs: 10_000 };

/** Sends `requests` originals at `now`, each retried while the budget allows; returns retries. */
function outage(budget: RetryBudget, requests: number, now: number): number {
  let retries = 0;
  for (let i = 0; i < requests; i++) {
    budget.deposit(now);
    while (budget.tryWithdraw(now)) retries++;
  }
  return retries;
}

describe("retry budget", () => {
  it("allows the minimum per second with no traffic at all", () => {
    const budget = new RetryBudget(policy, 0);
    let allowed = 0;
    while (budget.tryWithdraw(0)) allowed++;
    expect(allowed).toBe(10); // 1 per second over a 10 s window
  });

  it("under a total outage sends at most ratio × requests + the allowance over the window", () => {
    const budget = new RetryBudget(policy, 0);
    const retries = outage(budget, 1000, 500);
    expect(retries).toBe(Math.floor(0.2 * 1000 + 10));
    // Amplification: what the backend received over what the mesh received.
    expect((1000 + retries) / 1000).toBeLessThanOrEqual(1 + 0.2 + 10 / 1000);
  });

  it("earns retries back as the window slides, and forgets old requests", () => {
    const budget = new RetryBudget(policy, 0);
    outage(budget, 100, 0); // spends 30 (20 earned + 10 floor)
    expect(budget.tryWithdraw(5_000)).toBe(false); // same window, still spent
    // 10.5 s later the first requests and retries have left the window.
    expect(budget.localCounts(10_500)).toEqual({ requests: 0, retries: 0 });
    expect(budget.tryWithdraw(10_500)).toBe(true);
  });

  it("spends what the rest of the mesh left: remote retries count against this isolate", () => {
    const budget = new RetryBudget(policy, 0);
    for (let i = 0; i < 100; i++) budget.deposit(0);
    // The other isolates saw 100 requests and already retried 60 times.
    budget.adoptRemote({ requests: 100, retries: 60 }, 0);
    // Mesh-wide: 200 requests → 40 + 10 allowed, 60 spent: nothing left here.
    expect(budget.tryWithdraw(1)).toBe(false);
    // Once the remote share expires (one window), the local view alone decides again.
    for (let i = 0; i < 100; i++) budget.deposit(10_001);
    expect(budget.tryWithdraw(10_001)).toBe(true);
  });
});
