/**
 * What the policy Worker answers at `GET /v1/metrics` — the one view the dashboard, `meshctl
 * stat`, `meshctl top` and (from its totals) `/metrics` read: golden metrics per edge and per
 * Service over a window, the request series, each route's configured against observed split,
 * the breakers, recent denials. Built here, purely, from the metrics objects' readings (or from
 * Analytics Engine's rows, turned into the same readings) and the current config.
 */
import { goldenMetrics, SLOT_MS, Tally, type GoldenMetrics, type Edge } from "./metrics.ts";
import type { StoredBreaker, WindowReading } from "./metrics-store.ts";
import type { DenialRecord } from "./metrics.ts";

export interface EdgeView extends Edge, GoldenMetrics {}

/** A Service's inbound traffic, all callers and routes together. */
export interface ServiceMetricsView extends GoldenMetrics {
  readonly name: string;
}

export interface SplitView {
  readonly destination: string;
  /** The rule (`route/rule`), or the destination's name for its default (no route). */
  readonly route: string;
  readonly backends: {
    readonly backend: string;
    /** The configured weight as a percentage of the rule's (null: not configured, now). */
    readonly configuredPercent: number | null;
    /** The share of the rule's calls it got in the window, in percent (null: no calls). */
    readonly observedPercent: number | null;
    readonly requests: number;
  }[];
}

export interface BreakerView {
  /** The destination whose calls reported it (null: none has yet). */
  readonly destination: string | null;
  readonly backend: string;
  readonly state: StoredBreaker["state"];
  readonly openUntil: string | null;
  /** When a router last reported it; null for a configured breaker no call has reached yet. */
  readonly reportedAt: string | null;
}

export interface DenialView extends Omit<DenialRecord, "at"> {
  readonly at: string;
}

export interface MetricsView {
  /** Where the numbers come from: `metrics-objects` (local, or no credentials) or `analytics-engine`. */
  readonly source: "metrics-objects" | "analytics-engine";
  readonly windowSeconds: number;
  readonly generatedAt: string;
  readonly edges: EdgeView[];
  readonly services: ServiceMetricsView[];
  /** Requests and failures per slot of the window (all edges): [ISO time, requests, failures]. */
  readonly series: { readonly slotSeconds: number; readonly points: [string, number, number][] };
  readonly splits: SplitView[];
  readonly breakers: BreakerView[];
  readonly denials: DenialView[];
  /** Sources that could not be read (their edges are missing), each with why. */
  readonly problems: string[];
}

/** A rule's configured weights: backend → weight. */
export interface ConfiguredSplit {
  readonly destination: string;
  readonly route: string;
  readonly weights: ReadonlyMap<string, number>;
}

/** The resources the configured splits are read from (as the policy store holds them). */
interface ResourceLike {
  kind?: unknown;
  metadata?: { name?: unknown };
  spec?: unknown;
}

/**
 * Each rule's configured split, named as the router names its rules (`route/rule name or
 * index`), and each Service without a route as its own default rule.
 */
export function configuredSplits(resources: readonly ResourceLike[]): ConfiguredSplit[] {
  const out: ConfiguredSplit[] = [];
  const routed = new Set<string>();
  for (const resource of resources) {
    if (resource.kind !== "HTTPRoute") continue;
    const name = String(resource.metadata?.name ?? "");
    const spec = resource.spec as {
      parentRefs?: { name?: string }[];
      rules?: { name?: string; backendRefs?: { name?: string; weight?: number }[] }[];
    };
    for (const parent of spec?.parentRefs ?? []) {
      if (typeof parent.name !== "string") continue;
      routed.add(parent.name);
      (spec.rules ?? []).forEach((rule, index) => {
        const weights = new Map<string, number>();
        for (const ref of rule.backendRefs ?? []) {
          if (typeof ref.name !== "string") continue;
          weights.set(ref.name, (weights.get(ref.name) ?? 0) + (ref.weight ?? 1));
        }
        out.push({ destination: parent.name!, route: `${name}/${rule.name ?? index}`, weights });
      });
    }
  }
  for (const resource of resources) {
    if (resource.kind !== "Service") continue;
    const name = String(resource.metadata?.name ?? "");
    if (!routed.has(name))
      out.push({ destination: name, route: name, weights: new Map([[name, 1]]) });
  }
  return out;
}

/** The Services a BackendPolicy gives a circuit breaker (shown closed until a router reports). */
export function configuredBreakers(resources: readonly ResourceLike[]): string[] {
  const out = new Set<string>();
  for (const resource of resources) {
    if (resource.kind !== "BackendPolicy") continue;
    const spec = resource.spec as {
      circuitBreaker?: unknown;
      targetRefs?: { kind?: string; name?: string }[];
    };
    if (!spec?.circuitBreaker) continue;
    for (const ref of spec.targetRefs ?? []) {
      if ((ref.kind ?? "Service") === "Service" && typeof ref.name === "string") out.add(ref.name);
    }
  }
  return [...out];
}

/** What the Analytics Engine SQL API answered, as the view's parts. */
export interface AnalyticsMetrics {
  readonly edges: EdgeView[];
  readonly services: ServiceMetricsView[];
  /** [slot start ms, requests, failures]. */
  readonly series: [number, number, number][];
}

export interface ViewInput {
  readonly source: MetricsView["source"];
  readonly windowMs: number;
  readonly now: number;
  readonly readings: readonly WindowReading[];
  readonly splits: readonly ConfiguredSplit[];
  /** Golden metrics from Analytics Engine, in place of the readings' counts. */
  readonly analytics?: AnalyticsMetrics;
  /** Services with a configured breaker (configuredBreakers). */
  readonly breakers?: readonly string[];
  readonly problems?: readonly string[];
}

const byTraffic = <T extends { requests: number }>(a: T, b: T) => b.requests - a.requests;

/** The view of the readings. */
export function buildMetricsView(input: ViewInput): MetricsView {
  const edges: EdgeView[] = [];
  const services = new Map<string, { tally: Tally; seconds: number }>();
  const perRule = new Map<string, Map<string, number>>();
  const points = new Map<number, [number, number]>();
  const breakers: BreakerView[] = [];
  const denials: DenialView[] = [];
  for (const reading of input.readings) {
    for (const { edge, counts } of reading.edges) {
      const tally = Tally.of(counts);
      edges.push({ ...edge, ...goldenMetrics(tally, reading.seconds) });
      let service = services.get(edge.destination);
      if (!service) {
        service = { tally: new Tally(), seconds: reading.seconds };
        services.set(edge.destination, service);
      }
      service.tally.addTally(tally);
    }
    for (const [slot, requests, failures] of reading.series) {
      const point = points.get(slot) ?? [0, 0];
      point[0] += requests;
      point[1] += failures;
      points.set(slot, point);
    }
    for (const breaker of reading.breakers) {
      breakers.push({
        destination: reading.destination,
        backend: breaker.backend,
        state: breaker.state,
        openUntil: breaker.openUntil === null ? null : new Date(breaker.openUntil).toISOString(),
        reportedAt: new Date(breaker.reportedAt).toISOString(),
      });
    }
    for (const denial of reading.denials) {
      denials.push({ ...denial, at: new Date(denial.at).toISOString() });
    }
  }

  // Analytics Engine, when it is the source, answers the golden metrics; the objects still
  // answer breakers and denials.
  const analytics = input.analytics;
  const edgeViews = analytics ? analytics.edges : edges;
  if (analytics) {
    points.clear();
    for (const [slot, requests, failures] of analytics.series)
      points.set(slot, [requests, failures]);
  }
  for (const edge of edgeViews) {
    const rule = `${edge.destination}|${edge.route}`;
    let shares = perRule.get(rule);
    if (!shares) {
      shares = new Map();
      perRule.set(rule, shares);
    }
    shares.set(edge.backend, (shares.get(edge.backend) ?? 0) + edge.requests);
  }

  const splits: SplitView[] = [];
  const seenRules = new Set<string>();
  for (const split of input.splits) {
    const key = `${split.destination}|${split.route}`;
    seenRules.add(key);
    const observed = perRule.get(key) ?? new Map<string, number>();
    // Only rules with traffic, or with a choice to make, are worth a row.
    if (observed.size === 0 && split.weights.size < 2) continue;
    splits.push(splitView(split.destination, split.route, split.weights, observed));
  }
  for (const [key, observed] of perRule) {
    if (seenRules.has(key)) continue;
    const [destination, route] = key.split("|") as [string, string];
    splits.push(splitView(destination, route, new Map(), observed));
  }

  // One breaker per backend: the latest report.
  const latest = new Map<string, BreakerView>();
  for (const breaker of breakers) {
    const seen = latest.get(breaker.backend);
    if (!seen || (seen.reportedAt ?? "") < (breaker.reportedAt ?? "")) {
      latest.set(breaker.backend, breaker);
    }
  }
  for (const backend of input.breakers ?? []) {
    if (!latest.has(backend)) {
      latest.set(backend, {
        destination: null,
        backend,
        state: "closed",
        openUntil: null,
        reportedAt: null,
      });
    }
  }

  return {
    source: input.source,
    windowSeconds: input.windowMs / 1000,
    generatedAt: new Date(input.now).toISOString(),
    edges: [...edgeViews].sort(byTraffic),
    services: analytics
      ? [...analytics.services].sort(byTraffic)
      : [...services]
          .map(([name, { tally, seconds }]) => ({ name, ...goldenMetrics(tally, seconds) }))
          .sort(byTraffic),
    series: {
      slotSeconds: SLOT_MS / 1000,
      points: [...points]
        .sort(([a], [b]) => a - b)
        .map(([slot, [requests, failures]]) => [new Date(slot).toISOString(), requests, failures]),
    },
    splits: splits.sort((a, b) => (a.destination + a.route).localeCompare(b.destination + b.route)),
    breakers: [...latest.values()].sort((a, b) => a.backend.localeCompare(b.backend)),
    denials: denials.sort((a, b) => b.at.localeCompare(a.at)).slice(0, 50),
    problems: [...(input.problems ?? [])],
  };
}

function splitView(
  destination: string,
  route: string,
  weights: ReadonlyMap<string, number>,
  observed: ReadonlyMap<string, number>,
): SplitView {
  let weightSum = 0;
  for (const w of weights.values()) weightSum += w;
  let callSum = 0;
  for (const n of observed.values()) callSum += n;
  const names = [...new Set([...weights.keys(), ...observed.keys()])].sort();
  return {
    destination,
    route,
    backends: names.map((backend) => {
      const weight = weights.get(backend);
      const requests = observed.get(backend) ?? 0;
      return {
        backend,
        configuredPercent:
          weight === undefined ? null : weightSum === 0 ? 0 : (100 * weight) / weightSum,
        observedPercent: callSum === 0 ? null : (100 * requests) / callSum,
        requests,
      };
    }),
  };
}
