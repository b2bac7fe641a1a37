/**
 * What a router isolate reports about the config it has applied (workers/router/version-report.ts
 * sends it through the `POLICY` binding's `RouterReports.report`), checked at the edge: the store
 * keeps what passes, as sent, with the time it arrived.
 */
import { z } from "zod";
import { issuesFromZod } from "../../core/config/validate.ts";

/** The longest error text kept of a report (the rest is cut). */
const MAX_ERROR_LENGTH = 1000;

const Timestamp = z
  .string()
  .max(64)
  .refine((text) => !Number.isNaN(Date.parse(text)), { message: "must be an ISO 8601 time" });

/** A router isolate's report. Unknown fields are dropped, so a newer router can send more. */
export const RouterReport = z.object({
  /** The isolate's id (random, per isolate). */
  isolate: z.string().min(1).max(128),
  /** The Cloudflare location of the calls it serves, when known. */
  colo: z.string().max(16).nullable().default(null),
  /** The config version it has applied (null: none yet). */
  version: z.int().min(0).nullable(),
  /** When it applied that version (ISO 8601). */
  appliedAt: Timestamp.nullable().default(null),
  /** Its config error, if any (a version it refused, say). */
  error: z
    .string()
    .nullable()
    .default(null)
    .transform((text) => (text === null ? null : text.slice(0, MAX_ERROR_LENGTH))),
});
export type RouterReport = z.infer<typeof RouterReport>;

/** The report, or an error saying every field that is wrong. */
export function parseRouterReport(
  input: unknown,
): { ok: true; report: RouterReport } | { ok: false; message: string } {
  const parsed = RouterReport.safeParse(input);
  if (parsed.success) return { ok: true, report: parsed.data };
  const issues = issuesFromZod(parsed.error).map((issue) =>
    issue.path === "" ? issue.message : `${issue.path}: ${issue.message}`,
  );
  return {
    ok: false,
    message: `invalid router report: ${issues.join("; ")} (expected { isolate, colo, version, appliedAt, error })`,
  };
}
