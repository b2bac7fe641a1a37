/**
 * Bench telemetry sink: where the router's telemetry goes in `npm run bench`, so the mesh lanes
 * run with it on and the bench can check that it arrives.
 *  - `fetch`: the router's `MESH_ANALYTICS` binding (workerd's `analyticsEngine` binding, which
 *    needs `workerd serve --experimental`) designates this service; workerd sends it each data
 *    point as one HTTP request, answered 204. `GET /.bench/counts` answers what arrived.
 *  - `RouterReports`: the router's `POLICY` binding, shaped like the policy Worker's entrypoint.
 *    `metrics` checks each flush with the policy Worker's own parser (what the real one does
 *    before any of it reaches a metrics object) and counts it and the calls it carries; `report`
 *    checks and counts the version reports. Both answer `{ ok: true }` and keep nothing else: the
 *    bench measures the router, and the policy Worker's Durable Objects would run in the same
 *    workerd process and be counted in its CPU.
 */
import { WorkerEntrypoint } from "cloudflare:workers";
import { parseMetricsReport } from "../../workers/policy/metrics-report.ts";
import { parseRouterReport } from "../../workers/policy/router-report.ts";

const counts = {
  /** Data points workerd delivered (one request each), and their bytes as sent. */
  dataPoints: 0,
  dataPointBytes: 0,
  /** Metrics flushes that parsed, the calls their edges count, and those that did not parse. */
  flushes: 0,
  flushedCalls: 0,
  badFlushes: 0,
  lastBadFlush: null as string | null,
  /** Version reports (propagation status) that parsed, and those that did not. */
  versionReports: 0,
  badVersionReports: 0,
};

export class RouterReports extends WorkerEntrypoint {
  async report(report: unknown): Promise<{ ok: true }> {
    if (parseRouterReport(report).ok) counts.versionReports += 1;
    else counts.badVersionReports += 1;
    return { ok: true };
  }

  async metrics(report: unknown): Promise<{ ok: true }> {
    const parsed = parseMetricsReport(report);
    if (!parsed.ok) {
      counts.badFlushes += 1;
      counts.lastBadFlush = parsed.message;
      throw new Error(`bad_request: ${parsed.message}`);
    }
    counts.flushes += 1;
    for (const destination of parsed.report.destinations) {
      for (const edge of destination.edges) counts.flushedCalls += edge.requests;
    }
    return { ok: true };
  }
}

export default {
  fetch(request: Request): Response {
    if (request.method === "GET" && new URL(request.url).pathname === "/.bench/counts") {
      return Response.json(counts);
    }
    // A data point: counted by its declared size, its body left unread (a sink with nothing
    // to do with it; what workerd spends delivering it is counted either way).
    counts.dataPoints += 1;
    counts.dataPointBytes += Number(request.headers.get("content-length") ?? 0) || 0;
    return new Response(null, { status: 204 });
  },
} satisfies ExportedHandler;
