// Propagation status, the router's side: an isolate tells the policy Worker which config version
// it applied — from waitUntil, when the version changes and at least once a minute — and a policy
// Worker that fails or hangs delays no call.
import { describe, expect, it } from "vitest";
import type { RouterReport } from "../workers/router/version-report.ts";
import { service } from "./helpers/mesh.ts";
import { eventually, isolatedRouter, sleep } from "./helpers/router.ts";

function recordingPolicy() {
  const reports: RouterReport[] = [];
  return {
    reports,
    binding: {
      report: async (report: RouterReport) => {
        reports.push(report);
        return { ok: true };
      },
    },
  };
}

describe("version reports", () => {
  it("reports the applied version once, not per call", async () => {
    const policy = recordingPolicy();
    const router = isolatedRouter([service("echo", "ECHO_V1")], { policy: policy.binding });
    for (let i = 0; i < 20; i++) expect((await router.call("echo", "/")).status).toBe(200);
    const reports = await eventually(
      async () => policy.reports,
      (r) => r.length >= 1,
    );
    await sleep(100);
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ version: 1, colo: null, error: null });
    expect(reports[0]!.isolate).toMatch(/^[0-9a-f-]{36}$/);
    const status = (await router.status()) as unknown as {
      versionReports: { reports: number; reportedVersion: number; binding: boolean };
    };
    expect(status.versionReports).toMatchObject({ reports: 1, reportedVersion: 1, binding: true });
  });

  it("a policy Worker that never answers holds no call up, and status says so", async () => {
    const hanging = { report: () => new Promise(() => {}) };
    const router = isolatedRouter([service("echo", "ECHO_V1")], { policy: hanging });
    const started = Date.now();
    for (let i = 0; i < 5; i++) expect((await router.call("echo", "/")).status).toBe(200);
    expect(Date.now() - started).toBeLessThan(2_000);
    const status = await eventually(
      async () =>
        (await router.status()) as unknown as { versionReports: { lastError: string | null } },
      (s) => s.versionReports.lastError !== null,
      7_000,
    );
    expect(status.versionReports.lastError).toMatch(/no answer within 5000 ms/);
  }, 10_000);
});
