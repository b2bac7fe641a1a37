import { describe, expect, it } from "vitest";
import {
  CLOSED,
  current,
  mergeFromRoot,
  type BreakerPolicy,
  type BreakerState,
} from "./breaker.ts";
import { mergeOutcomes, mergeReports, rollupReport, withPending } from "./rollup.ts";

const policy: BreakerPolicy = {
  consecutiveFailures: 5,
  failureRate: undefined,
  minimumRequests: 20,
  windowMs: 10_000,
  baseOpenMs: 1_000,
  maxOpenMs: 8_000,
  openJitter: 0,
  halfOpenProbes: 1,
};

describe("rolling a Service's state up from location shards", () => {
  it("adds outcomes in order: a success in the later batch ends the earlier streak", () => {
    const a = { successes: 1, failures: 3, trailingFailures: 3, probeSuccesses: 0 };
    expect(
      mergeOutcomes(a, { successes: 0, failures: 2, trailingFailures: 2, probeSuccesses: 0 }),
    ).toEqual({
      successes: 1,
      failures: 5,
      trailingFailures: 5,
      probeSuccesses: 0,
    });
    expect(
      mergeOutcomes(a, { successes: 1, failures: 1, trailingFailures: 1, probeSuccesses: 1 }),
    ).toEqual({ successes: 2, failures: 4, trailingFailures: 1, probeSuccesses: 1 });
  });

  it("accumulates isolates' reports: counts add, the latest policy and budget window win", () => {
    const one = mergeReports(undefined, {
      breaker: {
        policy,
        outcomes: { successes: 2, failures: 0, trailingFailures: 0, probeSuccesses: 0 },
      },
      budget: { windowMs: 10_000, requests: 10, retries: 1 },
      latency: [[3, 5]],
      limits: { total: 4 },
      rollUpTo: "payments",
    });
    const two = mergeReports(one, {
      breaker: {
        policy: { ...policy, consecutiveFailures: 3 },
        outcomes: { successes: 0, failures: 1, trailingFailures: 1, probeSuccesses: 0 },
        wantsProbe: true,
      },
      budget: { windowMs: 10_000, requests: 5, retries: 2 },
      latency: [
        [3, 1],
        [7, 2],
      ],
      limits: { total: 1, "caller:orders": 2 },
    });
    expect(two).toEqual({
      breaker: {
        policy: { ...policy, consecutiveFailures: 3 },
        outcomes: { successes: 2, failures: 1, trailingFailures: 1, probeSuccesses: 0 },
      },
      budget: { windowMs: 10_000, requests: 15, retries: 3 },
      latency: [
        [3, 6],
        [7, 2],
      ],
      limits: { total: 5, "caller:orders": 2 },
    });
    // Another window (a new config version): the old counts are dropped, not mixed in.
    expect(
      mergeReports(two, { budget: { windowMs: 20_000, requests: 1, retries: 0 } }).budget,
    ).toEqual({ windowMs: 20_000, requests: 1, retries: 0 });
  });

  it("answers the root's view plus the news not rolled up yet, the shard's own where the root has none", () => {
    const root = {
      breaker: undefined,
      budget: { requests: 100, retries: 10 },
      latency: [[2, 50]],
      limits: { total: 40 },
      at: 0,
    };
    const local = {
      breaker: undefined,
      budget: { requests: 30, retries: 3 },
      latency: [[2, 5]],
      limits: { total: 12, "caller:new": 3 },
      at: 0,
    };
    const pending = {
      budget: { windowMs: 10_000, requests: 4, retries: 1 },
      latency: [[2, 2]],
      limits: { total: 2, "caller:new": 3 },
    };
    const windows = { budgetWindowMs: 10_000, rootBudgetWindowMs: 10_000 };
    expect(withPending(root, pending, local, windows)).toEqual({
      budget: { requests: 104, retries: 11 },
      latency: [[2, 52]],
      limits: { total: 42, "caller:new": 3 },
    });
    // Only what the isolate asked about (the shard's own answer's windows) is answered.
    expect(withPending(root, pending, { breaker: undefined, at: 0 }, windows)).toEqual({});
    // Budget counts over another window than the isolate's are not mixed in: its own stand.
    const otherWindow = { budgetWindowMs: 20_000, rootBudgetWindowMs: 10_000 };
    expect(withPending(root, pending, local, otherWindow).budget).toEqual(local.budget);
  });

  it("asks the root for every window the shard serves, news or not", () => {
    const pending = { limits: { total: 3 } };
    expect(
      rollupReport(pending, {
        budgetWindowMs: 10_000,
        latency: true,
        limitKeys: ["total", "caller:a"],
      }),
    ).toEqual({
      budget: { windowMs: 10_000, requests: 0, retries: 0 },
      latency: [],
      limits: { total: 3, "caller:a": 0 },
    });
    expect(rollupReport({}, { budgetWindowMs: undefined, latency: false, limitKeys: [] })).toEqual(
      {},
    );
  });

  it("merges the root's breaker into a shard's: open wins, half-open reaches closed shards, a close waits for the shard's own probe", () => {
    const rootOpen: BreakerState = { kind: "open", openedAt: 0, until: 5_000, trips: 1 };
    expect(mergeFromRoot(CLOSED, rootOpen, 100)).toEqual(rootOpen);
    const shardOpenLonger: BreakerState = { kind: "open", openedAt: 0, until: 9_000, trips: 2 };
    expect(mergeFromRoot(shardOpenLonger, rootOpen, 100)).toEqual(shardOpenLonger);
    // Past the root's time: half-open at the root makes a closed shard half-open (it grants).
    expect(mergeFromRoot(CLOSED, rootOpen, 5_000)).toEqual({
      kind: "half-open",
      trips: 1,
      admitted: 0,
      successes: 0,
    });
    // The root closed (another location's probe): a shard open on its word half-opens on time.
    const adopted = mergeFromRoot(CLOSED, rootOpen, 100);
    expect(mergeFromRoot(adopted, CLOSED, 200)).toEqual(adopted);
    expect(mergeFromRoot(adopted, CLOSED, 5_000).kind).toBe("half-open");
  });

  it("drops the shard's reservations when it takes the root's later open time", () => {
    const shardOpen: BreakerState = {
      kind: "open",
      openedAt: 0,
      until: 4_000,
      trips: 1,
      reserved: 1,
    };
    const rootOpen: BreakerState = { kind: "open", openedAt: 500, until: 5_000, trips: 1 };
    const merged = mergeFromRoot(shardOpen, rootOpen, 600);
    expect(merged).toEqual(rootOpen);
    // So at the root's time the shard has its probes to give again, not promised to no one.
    expect(current(merged, 5_000)).toMatchObject({ kind: "half-open", admitted: 0 });
  });
});
