/**
 * Where the policy Worker's metrics come from, and the two ways it hands them out:
 *  - the flushes router isolates send to RouterReports (index.ts) go, one destination each, to
 *    that destination's MeshMetrics object (`record`);
 *  - `GET /v1/metrics` (the dashboard, `meshctl stat` and `top`) and `GET /metrics`
 *    (Prometheus) read every Service's object of the current config — or, when Analytics Engine
 *    credentials are configured, the golden metrics from Analytics Engine's SQL API
 *    (analytics-engine.ts), with breakers and denials still from the objects.
 * An object that does not answer in time leaves its edges out and is named in `problems`.
 */
import type { MetricsReport } from "./metrics-report.ts";
import type { TotalsReading, WindowReading } from "../../durable-objects/mesh-metrics.ts";
import {
  buildMetricsView,
  configuredBreakers,
  configuredSplits,
  type MetricsView,
} from "../../core/observability/view.ts";
import { policyStore } from "./app.ts";
import { analyticsMetrics, type AnalyticsCredentials } from "./analytics-engine.ts";

/** A read of one object not answered within this is left out. */
const READ_TIMEOUT_MS = 5000;

function metricsObject(env: PolicyEnv, destination: string) {
  return env.MESH_METRICS.getByName(destination);
}

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what}: no answer within ${READ_TIMEOUT_MS} ms`)),
      READ_TIMEOUT_MS,
    );
  });
  return Promise.race([promise, timeout]).finally(() => timer !== undefined && clearTimeout(timer));
}

/** Hands each destination's part of a router's flush to its object. */
export async function recordMetrics(env: PolicyEnv, report: MetricsReport): Promise<void> {
  const results = await Promise.allSettled(
    report.destinations.map((part) =>
      withTimeout(
        metricsObject(env, part.destination).record(part),
        `metrics of ${part.destination}`,
      ),
    ),
  );
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
}

/** The Services of the current config, and its resources (for the configured splits). */
async function currentServices(env: PolicyEnv) {
  const { resources } = await policyStore(env).current();
  const list = resources as { kind?: string; metadata?: { name?: string } }[];
  const services = list
    .filter((r) => r.kind === "Service" && typeof r.metadata?.name === "string")
    .map((r) => r.metadata!.name!);
  return { resources: list, services };
}

/** `read` of every Service's object, in parallel; a problem for each that did not answer. */
async function eachObject<T>(
  services: readonly string[],
  read: (name: string) => Promise<T>,
): Promise<{ values: T[]; problems: string[] }> {
  const results = await Promise.allSettled(
    services.map((name) => withTimeout(read(name), `metrics of ${name}`)),
  );
  const values: T[] = [];
  const problems: string[] = [];
  results.forEach((result, i) => {
    if (result.status === "fulfilled") values.push(result.value);
    else problems.push(`reading the metrics of ${services[i]} failed: ${String(result.reason)}`);
  });
  return { values, problems };
}

/** Every Service's object's reading over the window; problems for those that did not answer. */
export async function readWindows(
  env: PolicyEnv,
  services: readonly string[],
  windowMs: number,
): Promise<{ readings: WindowReading[]; problems: string[] }> {
  const { values, problems } = await eachObject(services, (name) =>
    metricsObject(env, name).window(name, windowMs),
  );
  return { readings: values as WindowReading[], problems };
}

/** `GET /v1/metrics`: the view over the last `windowMs`. */
export async function metricsView(
  env: PolicyEnv,
  windowMs: number,
  analytics: AnalyticsCredentials | undefined,
  now = Date.now(),
): Promise<MetricsView> {
  const { resources, services } = await currentServices(env);
  const [{ readings, problems }, fromAnalytics] = await Promise.all([
    readWindows(env, services, windowMs),
    analytics
      ? analyticsMetrics(analytics, windowMs).catch((error: unknown) =>
          error instanceof Error ? error : new Error(String(error)),
        )
      : undefined,
  ]);
  if (fromAnalytics instanceof Error) {
    problems.push(`${fromAnalytics.message} (showing the metrics objects' counts instead)`);
  }
  const useAnalytics = fromAnalytics !== undefined && !(fromAnalytics instanceof Error);
  return buildMetricsView({
    source: useAnalytics ? "analytics-engine" : "metrics-objects",
    ...(useAnalytics ? { analytics: fromAnalytics } : {}),
    windowMs,
    now,
    readings,
    splits: configuredSplits(resources),
    breakers: configuredBreakers(resources),
    problems,
  });
}

/** `GET /metrics`: every Service's running totals. */
export async function metricsTotals(
  env: PolicyEnv,
): Promise<{ totals: TotalsReading[]; problems: string[] }> {
  const { services } = await currentServices(env);
  const { values, problems } = await eachObject(services, (name) =>
    metricsObject(env, name).totals(name),
  );
  return { totals: values as TotalsReading[], problems };
}
