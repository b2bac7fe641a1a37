/**
 * Policy Worker entry: wires its two ways in to the PolicyStore.
 *  - `fetch` (HTTP): the admin API (app.ts).
 *  - `RouterReports` (entrypoint for the router's `POLICY` service binding): each router isolate
 *    reports the config version it has applied, and flushes its per-edge metrics, from
 *    `waitUntil`, never on a request's path.
 * The PolicyStore and MeshMetrics Durable Objects are exported here because this Worker binds
 * them.
 */
import { WorkerEntrypoint } from "cloudflare:workers";
import { app, policyStore } from "./app.ts";
import { parseRouterReport, type RouterReport } from "./router-report.ts";
import { parseMetricsReport } from "./metrics-report.ts";
import { recordMetrics } from "./metrics.ts";
export { PolicyStore } from "../../durable-objects/policy-store.ts";
export { MeshMetrics } from "../../durable-objects/mesh-metrics.ts";

/**
 * Runs `keep`; a failure is logged here in full and crosses RPC as a plain `internal_error:`
 * Error without its cause — a bug's details belong in this Worker's log, not the router's.
 */
async function kept(
  where: string,
  what: string,
  keep: () => Promise<unknown>,
): Promise<{ ok: true }> {
  try {
    await keep();
  } catch (error) {
    console.error(
      JSON.stringify({
        level: "error",
        event: "internal_error",
        where,
        error: error instanceof Error ? (error.stack ?? error.message) : String(error),
      }),
    );
    // eslint-disable-next-line preserve-caught-error
    throw new Error(`internal_error: keeping the ${what} failed (see the policy Worker's log)`);
  }
  return { ok: true };
}

export class RouterReports extends WorkerEntrypoint<PolicyEnv> {
  /**
   * Keeps a router isolate's report (`{ isolate, colo, version, appliedAt, error }`) for
   * `GET /v1/status`. A malformed one is refused with an Error whose message starts with
   * `bad_request:` (a thrown subclass would cross RPC as a plain Error anyway).
   */
  async report(report: RouterReport): Promise<{ ok: true }> {
    const parsed = parseRouterReport(report);
    if (!parsed.ok) throw new Error(`bad_request: ${parsed.message}`);
    return kept("RouterReports.report", "report", () =>
      policyStore(this.env).reportRouter(parsed.report),
    );
  }

  /**
   * Takes a router isolate's metrics flush (per destination: edge counts, breakers, denials)
   * into the destinations' metrics objects. A malformed one is refused whole, `bad_request:`.
   */
  async metrics(report: unknown): Promise<{ ok: true }> {
    const parsed = parseMetricsReport(report);
    if (!parsed.ok) throw new Error(`bad_request: ${parsed.message}`);
    return kept("RouterReports.metrics", "metrics", () => recordMetrics(this.env, parsed.report));
  }
}

export default {
  fetch(request, env, ctx) {
    return app.fetch(request, env, ctx);
  },
} satisfies ExportedHandler<PolicyEnv>;
