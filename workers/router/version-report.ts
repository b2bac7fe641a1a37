/**
 * "Has my change taken effect?": each router isolate tells the policy Worker which config version
 * it has applied — through the `POLICY` service binding (entrypoint `RouterReports`), from
 * `waitUntil`, when its version changes and at least once a minute while it serves calls. Never
 * on a request's path; a report that fails is tried again at the next chance, and status says so.
 */
import type { ConfigCache } from "./config-cache.ts";
import type { IsolateLocation } from "./location.ts";

/** How often an isolate that serves calls reports, even when its version has not changed. */
export const REPORT_EVERY_MS = 60_000;
/** Least time between two attempts after one failed. */
const RETRY_MS = 10_000;
/** A report that has not been answered by then has failed. */
const REPORT_TIMEOUT_MS = 5_000;

/** What a router isolate reports. */
export interface RouterReport {
  /** This isolate's id (random, per isolate). */
  isolate: string;
  /** The Cloudflare location (colo) of the calls it serves, when known. */
  colo: string | null;
  /** The applied config version (null: none yet). */
  version: number | null;
  /** When it applied that version (ISO 8601). */
  appliedAt: string | null;
  /** Its config error, if any (e.g. a version it refused). */
  error: string | null;
}

/** The policy Worker's `RouterReports` entrypoint, as the router's POLICY binding. */
export interface RouterReports {
  report(report: RouterReport): Promise<unknown>;
}

export class VersionReporter {
  readonly isolate = crypto.randomUUID();
  private reportedVersion: number | null | undefined;
  private lastAttempt = -Infinity;
  private lastReportAt = -Infinity;
  private inFlight = false;
  private reports = 0;
  private lastError: string | undefined;
  private readonly now: () => number;
  private readonly location: IsolateLocation;

  constructor(now: () => number, location: IsolateLocation) {
    this.now = now;
    this.location = location;
  }

  /** Reports through `waitUntil` when there is something to say; cheap otherwise. */
  maybeReport(
    binding: RouterReports | undefined,
    config: ConfigCache,
    waitUntil: (promise: Promise<unknown>) => void,
  ): void {
    if (!binding || this.inFlight) return;
    const now = this.now();
    // The common case — reported, and not yet a minute ago — costs two comparisons.
    const due =
      config.currentVersion !== this.reportedVersion || now - this.lastReportAt >= REPORT_EVERY_MS;
    if (!due || now - this.lastAttempt < (this.lastError ? RETRY_MS : 1_000)) return;
    const status = config.appliedVersion();
    this.lastAttempt = now;
    this.inFlight = true;
    const report: RouterReport = {
      isolate: this.isolate,
      colo: this.location.colo,
      version: status.version,
      appliedAt: status.appliedAt,
      error: status.error,
    };
    let timer: ReturnType<typeof setTimeout> | null = null;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer within ${REPORT_TIMEOUT_MS} ms`)),
        REPORT_TIMEOUT_MS,
      );
    });
    waitUntil(
      Promise.race([binding.report(report), timeout])
        .then(() => {
          this.reportedVersion = report.version;
          this.lastReportAt = this.now();
          this.reports++;
          this.lastError = undefined;
        })
        .catch((error: unknown) => {
          this.lastError = `reporting the applied version to the policy Worker failed: ${error instanceof Error ? error.message : String(error)}`;
        })
        .finally(() => {
          if (timer !== null) clearTimeout(timer);
          this.inFlight = false;
        }),
    );
  }

  view(hasBinding: boolean) {
    return {
      isolate: this.isolate,
      colo: this.location.colo,
      binding: hasBinding,
      reports: this.reports,
      reportedVersion: this.reportedVersion ?? null,
      lastReportAt: Number.isFinite(this.lastReportAt)
        ? new Date(this.lastReportAt).toISOString()
        : null,
      lastError: this.lastError ?? null,
    };
  }
}
