/**
 * A router isolate's metrics flush (workers/router/telemetry.ts sends it through the `POLICY`
 * binding's `RouterReports.metrics`), checked at the edge before any of it reaches a metrics
 * object: every count a finite number ≥ 0, every name a bounded string, every list bounded — a
 * broken or hostile router cannot grow an object without limit or poison its sums.
 */
import { z } from "zod";
import { issuesFromZod } from "../../core/config/validate.ts";
import { LATENCY_BOUNDS_MS } from "../../core/resilience/latency.ts";

const Name = z.string().min(1).max(256);
const Count = z.number().finite().min(0).max(1e12);

const EdgeSample = z.object({
  caller: Name,
  destination: Name,
  backend: Name,
  route: z.string().min(1).max(512),
  slot: z.int().min(0),
  requests: Count,
  failures: Count,
  codes: z.record(z.string().max(64), Count).refine((codes) => Object.keys(codes).length <= 200, {
    message: "at most 200 codes",
  }),
  latency: z
    .array(z.tuple([z.int().min(0).max(LATENCY_BOUNDS_MS.length), Count]))
    .max(LATENCY_BOUNDS_MS.length + 1),
  latencySumMs: Count,
  attempts: Count,
  bytes: Count,
});

const Breaker = z.object({
  backend: Name,
  state: z.enum(["closed", "open", "half-open"]),
  openUntil: z.number().finite().nullable(),
});

const Denial = z.object({
  at: z.number().finite(),
  caller: Name,
  destination: Name,
  code: z.string().max(64),
  reason: z.string().max(500),
  requestId: z.string().max(200),
});

export const MetricsReport = z.object({
  isolate: z.string().min(1).max(128),
  colo: z.string().max(16).nullable(),
  sentAt: z.number().finite(),
  destinations: z
    .array(
      z.object({
        destination: Name,
        edges: z.array(EdgeSample).max(2000),
        breakers: z.array(Breaker).max(1000),
        denials: z.array(Denial).max(50),
      }),
    )
    .max(1000),
});
export type MetricsReport = z.infer<typeof MetricsReport>;

/** The flush, or an error naming every field that is wrong. */
export function parseMetricsReport(
  input: unknown,
): { ok: true; report: MetricsReport } | { ok: false; message: string } {
  const parsed = MetricsReport.safeParse(input);
  if (parsed.success) {
    // Each edge belongs to the destination it is filed under; nothing else is kept.
    for (const part of parsed.data.destinations) {
      const stray = part.edges.find((edge) => edge.destination !== part.destination);
      if (stray) {
        return {
          ok: false,
          message: `invalid metrics report: an edge to ${stray.destination} is filed under ${part.destination}`,
        };
      }
    }
    return { ok: true, report: parsed.data };
  }
  const issues = issuesFromZod(parsed.error)
    .slice(0, 10)
    .map((issue) => (issue.path === "" ? issue.message : `${issue.path}: ${issue.message}`));
  return { ok: false, message: `invalid metrics report: ${issues.join("; ")}` };
}
