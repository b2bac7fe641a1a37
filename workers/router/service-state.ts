/**
 * What one isolate knows about one Service, kept for the isolate's life: the Service's circuit
 * breaker, the retry budget of tries sent to it, the latency of those tries (for `auto` per-try
 * timeouts), the balancer's state over its endpoints, the rate limits on calls addressed to it —
 * and the news about all of these not yet reported to the Service's Durable Object. The
 * decisions are the pure machines of core/resilience/; this file holds their state and steps it.
 *
 * Everything here is synchronous and in memory: the hot path reads and writes it, and only
 * backend-sync.ts, through `waitUntil`, talks to the Durable Object.
 */
import {
  admit,
  adopt,
  awaitingGrant,
  CLOSED,
  current,
  record,
  refuses,
  type BreakerPolicy,
  type BreakerState,
  type Outcomes,
} from "../../core/resilience/breaker.ts";
import {
  addSparse,
  autoTimeout,
  bucketOf,
  emptyCounts,
  LATENCY_WINDOW_MS,
  quantile,
  RollingLatency,
  toSparse,
  totalOf,
  type AutoTimeoutPolicy,
  type LatencyCounts,
} from "../../core/resilience/latency.ts";
import { newLoad, observe, pickP2C, type EndpointLoad } from "../../core/resilience/peak-ewma.ts";
import { SharedRateLimit } from "../../core/resilience/rate-limit.ts";
import type { BackendReport, BackendView } from "../../core/resilience/report.ts";
import { RetryBudget, type RetryBudgetPolicy } from "../../core/resilience/retry-budget.ts";
import type { TokenBucketPolicy } from "../../core/resilience/token-bucket.ts";
import type { RandomSource } from "../../core/random.ts";
import type { BalancerPolicy } from "../../core/routing/call-policy.ts";
import type { CompiledEndpoint } from "../../core/routing/route-table.ts";
import { pickWeighted, type SplitTable } from "../../core/split/pick-backend.ts";
import { SmoothRoundRobin } from "../../core/split/round-robin.ts";

/** A report's breaker outcomes when it only asks for a probe. */
const NO_OUTCOMES: Outcomes = {
  successes: 0,
  failures: 0,
  trailingFailures: 0,
  probeSuccesses: 0,
};

/** A new endpoint's latency until it has answered (PeakEWMA). */
const INITIAL_LATENCY_MS = 10;
/** How long a computed `auto` timeout is reused before it is worked out again. */
const AUTO_TIMEOUT_REUSE_MS = 250;

/** A breaker's change of state, for the call's outcome. */
export interface BreakerTransition {
  readonly service: string;
  readonly from: BreakerState["kind"];
  readonly to: BreakerState["kind"];
}

/** News for the Service's Durable Object, gathered between reports. */
interface Unreported {
  breaker: { policy: BreakerPolicy; outcomes: Outcomes; wantsProbe?: boolean } | undefined;
  requests: number;
  retries: number;
  latency: LatencyCounts | undefined;
}

export class ServiceState {
  readonly name: string;
  private breakerState: BreakerState = CLOSED;
  /** True once a breaker policy has governed this Service (only then does status show it). */
  private hasBreaker = false;
  /** The breaker policy last applied (a report asking for a probe carries it). */
  private breakerPolicy: BreakerPolicy | undefined;
  private budget: RetryBudget | undefined;
  private latency: RollingLatency | undefined;
  private meshLatency: { counts: LatencyCounts; until: number } | undefined;
  private autoCache:
    { policy: AutoTimeoutPolicy; ms: number; until: number; learned: boolean } | undefined;
  private readonly roundRobin = new SmoothRoundRobin();
  private loads: Map<string, EndpointLoad> | undefined;
  private limits: Map<string, SharedRateLimit> | undefined;
  private unreported: Unreported = {
    breaker: undefined,
    requests: 0,
    retries: 0,
    latency: undefined,
  };
  /** True when something happened that the Durable Object has not heard. */
  hasNews = false;
  /** Raised with `hasNews`: the isolate's flag that some Service has news. */
  private readonly anyNews: { value: boolean };

  constructor(name: string, anyNews: { value: boolean } = { value: false }) {
    this.name = name;
    this.anyNews = anyNews;
  }

  /** Something happened that the Durable Object should hear. */
  private noteNews(): void {
    this.hasNews = true;
    this.anyNews.value = true;
  }

  // -- circuit breaker -------------------------------------------------------------------------

  /**
   * Whether a try may go now (a half-open breaker counts its probes). A try refused while the
   * breaker waits for the mesh's probe grant asks for one in the next report.
   */
  admit(policy: BreakerPolicy, now: number): "pass" | "probe" | "refuse" {
    this.hasBreaker = true;
    this.breakerPolicy = policy;
    const result = admit(this.breakerState, policy, now);
    this.breakerState = result.state;
    if (!result.admitted) {
      this.askForProbe(policy, now);
      return "refuse";
    }
    return result.state.kind === "half-open" ? "probe" : "pass";
  }

  /** When the breaker waits for the mesh's probe grant, the next report asks for one. */
  private askForProbe(policy: BreakerPolicy, now: number): void {
    if (!awaitingGrant(this.breakerState, now)) return;
    const pending = (this.unreported.breaker ??= { policy, outcomes: NO_OUTCOMES });
    pending.policy = policy;
    pending.wantsProbe = true;
    this.noteNews();
  }

  /** The breaker as the clock stands. */
  breaker(now: number): BreakerState {
    return current(this.breakerState, now);
  }

  /**
   * True when a try would be refused now: open, or half-open with every probe in flight. Asked
   * when a call would go here (the split, a retry), so a refusal asks for a probe like admit's.
   */
  refuses(policy: BreakerPolicy, now: number): boolean {
    if (!refuses(this.breakerState, policy, now)) return false;
    this.askForProbe(policy, now);
    return true;
  }

  /** Records how one try ended; the transition, when the breaker changed state. */
  recordOutcome(
    policy: BreakerPolicy,
    outcomes: Outcomes,
    now: number,
    random: RandomSource,
  ): BreakerTransition | undefined {
    this.hasBreaker = true;
    this.breakerPolicy = policy;
    const before = current(this.breakerState, now).kind;
    this.breakerState = record(this.breakerState, policy, outcomes, now, random);
    const pending = this.unreported.breaker;
    if (!pending) {
      this.unreported.breaker = { policy, outcomes };
    } else if (pending.outcomes === NO_OUTCOMES) {
      pending.policy = policy;
      pending.outcomes = outcomes;
    } else {
      const p = pending.outcomes;
      pending.policy = policy;
      pending.outcomes = {
        successes: p.successes + outcomes.successes,
        failures: p.failures + outcomes.failures,
        // A success ends the streak: only failures after the last success still trail.
        trailingFailures:
          outcomes.successes > 0
            ? outcomes.trailingFailures
            : p.trailingFailures + outcomes.trailingFailures,
        probeSuccesses: p.probeSuccesses + outcomes.probeSuccesses,
      };
    }
    this.noteNews();
    const after = this.breakerState.kind;
    return before === after ? undefined : { service: this.name, from: before, to: after };
  }

  // -- retry budget ----------------------------------------------------------------------------

  private budgetFor(policy: RetryBudgetPolicy, now: number): RetryBudget {
    const b = this.budget;
    if (
      b &&
      b.policy.ratio === policy.ratio &&
      b.policy.minPerSecond === policy.minPerSecond &&
      b.policy.windowMs === policy.windowMs
    ) {
      return b;
    }
    this.budget = new RetryBudget(policy, now);
    return this.budget;
  }

  /** An original request went to the Service: it earns its share of a retry. */
  deposit(policy: RetryBudgetPolicy, now: number): void {
    this.budgetFor(policy, now).deposit(now);
    this.unreported.requests += 1;
    this.noteNews();
  }

  /** Takes one retry from the budget; false when the mesh has spent it. */
  tryWithdraw(policy: RetryBudgetPolicy, now: number): boolean {
    if (!this.budgetFor(policy, now).tryWithdraw(now)) return false;
    this.unreported.retries += 1;
    this.noteNews();
    return true;
  }

  // -- latency and `auto` timeouts ---------------------------------------------------------------

  /** Records one try's time to headers (for `auto` per-try timeouts). */
  observeLatency(ms: number, now: number): void {
    this.latency ??= new RollingLatency(LATENCY_WINDOW_MS, now);
    this.latency.record(ms, now);
    // Still warming up: the next try may have the samples it needs.
    if (this.autoCache && !this.autoCache.learned) this.autoCache = undefined;
    const pending = (this.unreported.latency ??= emptyCounts());
    pending[bucketOf(ms)]! += 1;
    this.noteNews();
  }

  /** The per-try timeout `auto` gives now: from the mesh's counts when fresh, else this isolate's. */
  autoTimeoutMs(policy: AutoTimeoutPolicy, now: number): number {
    const cached = this.autoCache;
    if (cached && cached.policy === policy && now < cached.until) return cached.ms;
    const counts =
      this.meshLatency && now < this.meshLatency.until
        ? this.meshLatency.counts
        : (this.latency?.counts(now) ?? emptyCounts());
    const ms = autoTimeout(counts, policy);
    const learned = totalOf(counts) >= policy.minSamples;
    this.autoCache = { policy, ms, until: now + AUTO_TIMEOUT_REUSE_MS, learned };
    return ms;
  }

  // -- balancing over endpoints ----------------------------------------------------------------

  /** An endpoint for the next try, avoiding those in `avoid` while any other is usable. */
  pickEndpoint(
    endpoints: SplitTable<CompiledEndpoint>,
    balancer: BalancerPolicy,
    avoid: ReadonlySet<string>,
    random: RandomSource,
    now: number,
  ): CompiledEndpoint | undefined {
    const items = endpoints.items;
    if (items.length <= 1) return endpoints.total > 0 ? items[0] : undefined;
    const others = (i: number) => !avoid.has(items[i]!.name);
    const anyOther = avoid.size > 0 && items.some((e, i) => e.weight > 0 && others(i));
    const eligible = anyOther ? others : () => true;
    if (balancer.type === "RoundRobin") return items[this.roundRobin.pick(items, eligible)];
    if (balancer.type === "PeakEWMA") {
      const loads = items.map((e) => this.loadOf(e.name, now));
      return items[pickP2C(loads, random, (i) => items[i]!.weight > 0 && eligible(i))];
    }
    if (!anyOther) return pickWeighted(endpoints, random);
    let point = random() * items.reduce((sum, e, i) => sum + (others(i) ? e.weight : 0), 0);
    for (let i = 0; i < items.length; i++) {
      if (!others(i)) continue;
      point -= items[i]!.weight;
      if (point < 0) return items[i];
    }
    return undefined;
  }

  private loadOf(endpoint: string, now: number): EndpointLoad {
    this.loads ??= new Map();
    let load = this.loads.get(endpoint);
    if (!load) {
      load = newLoad(INITIAL_LATENCY_MS, now);
      this.loads.set(endpoint, load);
    }
    return load;
  }

  /** A try went to `endpoint` (PeakEWMA counts it in flight). */
  sent(endpoint: string, now: number): void {
    this.loadOf(endpoint, now).pending += 1;
  }

  /** The try to `endpoint` answered (or failed) after `ms`. */
  answered(endpoint: string, ms: number, now: number, decayMs: number): void {
    const load = this.loadOf(endpoint, now);
    load.pending = Math.max(0, load.pending - 1);
    observe(load, ms, now, decayMs);
  }

  // -- rate limits -----------------------------------------------------------------------------

  /** The limit `key` of calls addressed to this Service (created on first use). */
  limit(key: string, policy: TokenBucketPolicy, now: number): SharedRateLimit {
    this.limits ??= new Map();
    let limit = this.limits.get(key);
    if (
      !limit ||
      limit.policy.ratePerSecond !== policy.ratePerSecond ||
      limit.policy.burst !== policy.burst
    ) {
      limit = new SharedRateLimit(policy, now);
      this.limits.set(key, limit);
    }
    this.noteNews();
    return limit;
  }

  // -- the Durable Object ----------------------------------------------------------------------

  /** The news since the last report, as a report (and counted as reported). */
  takeReport(): BackendReport {
    const u = this.unreported;
    const limits: Record<string, number> = {};
    let anyLimit = false;
    for (const [key, limit] of this.limits ?? []) {
      const n = limit.takeUnreported();
      if (n > 0) {
        limits[key] = n;
        anyLimit = true;
      }
    }
    const report: BackendReport = {
      ...(u.breaker ? { breaker: u.breaker } : {}),
      ...(u.requests + u.retries > 0 && this.budget
        ? {
            budget: {
              windowMs: this.budget.policy.windowMs,
              requests: u.requests,
              retries: u.retries,
            },
          }
        : {}),
      ...(u.latency ? { latency: toSparse(u.latency) } : {}),
      ...(anyLimit ? { limits } : {}),
    };
    this.unreported = { breaker: undefined, requests: 0, retries: 0, latency: undefined };
    this.hasNews = false;
    return report;
  }

  /** Takes in what the Durable Object says of the whole mesh. */
  adoptView(view: BackendView, now: number): void {
    if (view.breaker) {
      const before = this.breakerState;
      this.breakerState = adopt(before, view.breaker, now, view.probes ?? 0);
      // Newly open on the mesh's word: ask for a probe now, to hold it when the time is up.
      const s = this.breakerState;
      const policy = this.breakerPolicy;
      // A new open period (the first, or again after a failed probe) asks anew.
      const waitingBefore = before.kind === "open" && before.awaitsGrant ? before.until : undefined;
      if (policy && s.kind === "open" && s.awaitsGrant && waitingBefore !== s.until) {
        const pending = (this.unreported.breaker ??= { policy, outcomes: NO_OUTCOMES });
        pending.wantsProbe = true;
        this.noteNews();
      }
    }
    if (view.budget && this.budget) {
      // The rest of the mesh: the object's totals less what this isolate counted itself.
      const own = this.budget.localCounts(now);
      this.budget.adoptRemote(
        {
          requests: view.budget.requests - own.requests,
          retries: view.budget.retries - own.retries,
        },
        now,
      );
    }
    if (view.latency) {
      const counts = emptyCounts();
      addSparse(counts, view.latency);
      this.meshLatency = { counts, until: now + LATENCY_WINDOW_MS };
      this.autoCache = undefined;
    }
    for (const [key, demand] of Object.entries(view.limits ?? {})) {
      this.limits?.get(key)?.adoptMesh(demand, now);
    }
  }

  // -- status ----------------------------------------------------------------------------------

  view(now: number): ServiceView {
    const s = this.breaker(now);
    const local = this.latency?.counts(now);
    const mesh =
      this.meshLatency && now < this.meshLatency.until ? this.meshLatency.counts : undefined;
    return {
      breaker: this.hasBreaker
        ? {
            state: s.kind,
            openUntil: s.kind === "open" ? new Date(s.until).toISOString() : null,
            trips: s.trips,
            consecutiveFailures: s.kind === "closed" ? s.consecutive : 0,
          }
        : null,
      retryBudget: this.budget ? this.budget.counts(now) : null,
      latency: local
        ? {
            samples: totalOf(local),
            p50Ms: quantile(local, 0.5) ?? null,
            p99Ms: quantile(local, 0.99) ?? null,
            meshSamples: mesh ? totalOf(mesh) : null,
            meshP99Ms: mesh ? (quantile(mesh, 0.99) ?? null) : null,
          }
        : null,
      rateLimits: this.limits
        ? Object.fromEntries([...this.limits].map(([key, l]) => [key, { share: l.currentShare() }]))
        : null,
    };
  }
}

/** What `/.mesh/status` shows of one Service. */
export interface ServiceView {
  breaker: {
    state: BreakerState["kind"];
    /** Until when it stays open (ISO 8601), when open. */
    openUntil: string | null;
    /** Trips in a row. */
    trips: number;
    /** Failures in a row, when closed. */
    consecutiveFailures: number;
  } | null;
  /** Requests and retries over the budget's window, the mesh's as this isolate knows them. */
  retryBudget: { requests: number; retries: number } | null;
  latency: {
    samples: number;
    p50Ms: number | null;
    p99Ms: number | null;
    meshSamples: number | null;
    meshP99Ms: number | null;
  } | null;
  /** Each rate limit's share of the mesh-wide limit this isolate holds. */
  rateLimits: Record<string, { share: number }> | null;
}

/** Every Service this isolate has dealt with. */
export class ServiceStates {
  private readonly states = new Map<string, ServiceState>();
  private readonly anyNews = { value: false };

  get(name: string): ServiceState {
    let state = this.states.get(name);
    if (!state) {
      state = new ServiceState(name, this.anyNews);
      this.states.set(name, state);
    }
    return state;
  }

  /** The Service's state, when this isolate has one (never creates it). */
  peek(name: string): ServiceState | undefined {
    return this.states.get(name);
  }

  /**
   * True when some Service may have news for its Durable Object (one flag read on the hot path;
   * it may stay raised a little after the news went out, which costs one idle round at most).
   */
  get hasNews(): boolean {
    return this.anyNews.value;
  }

  /** The Services with news for their Durable Objects. */
  withNews(): ServiceState[] {
    const news = [...this.states.values()].filter((s) => s.hasNews);
    if (news.length === 0) this.anyNews.value = false;
    return news;
  }

  view(now: number): Record<string, ServiceView> {
    const out: Record<string, ServiceView> = {};
    for (const name of [...this.states.keys()].sort()) out[name] = this.states.get(name)!.view(now);
    return out;
  }
}
