/**
 * The router's own settings, from its `[vars]`: read once per isolate and checked, so a typo in
 * a var is reported in `/.mesh/status` instead of silently changing behaviour per request.
 */
import type { EscapedSlashes } from "../../core/path-normalization.ts";
import type { TelemetrySettings } from "./telemetry.ts";

export interface RouterSettings {
  /** SPIFFE trust domain of caller identities. */
  readonly trustDomain: string;
  /** How often an isolate checks KV for a newer config, in milliseconds. */
  readonly refreshMs: number;
  /** What an encoded `/` or `\` in a request path gets: refused (400) or kept, encoded. */
  readonly escapedSlashes: EscapedSlashes;
  /** The bearer token of `/.mesh/status` (the ADMIN_TOKEN secret); unset: no token works. */
  readonly adminToken: string | undefined;
  /** Services whose JWT-SVID may read `/.mesh/status` (ADMIN_SERVICES, comma-separated). */
  readonly adminServices: readonly string[];
  /** The access log's sampling and the per-edge metrics switch (telemetry.ts). */
  readonly telemetry: TelemetrySettings;
  /** Vars that were invalid, and the default used instead. */
  readonly problems: readonly string[];
}

const DEFAULT_REFRESH_SECONDS = 5;
/** Share of calls logged when ACCESS_LOG_SAMPLE is unset. */
const DEFAULT_ACCESS_LOG_SAMPLE = 0.01;

/** Reads and checks the router's vars. */
export function readSettings(env: Env): RouterSettings {
  const problems: string[] = [];
  const seconds = Number(env.CONFIG_REFRESH_SECONDS ?? DEFAULT_REFRESH_SECONDS);
  let refreshSeconds = DEFAULT_REFRESH_SECONDS;
  if (Number.isFinite(seconds) && seconds >= 0) refreshSeconds = seconds;
  else {
    problems.push(
      `CONFIG_REFRESH_SECONDS=${JSON.stringify(env.CONFIG_REFRESH_SECONDS)} is not a number of seconds ≥ 0; using ${DEFAULT_REFRESH_SECONDS}`,
    );
  }
  const slashes = env.PATH_ESCAPED_SLASHES ?? "reject";
  let escapedSlashes: EscapedSlashes = "reject";
  if (slashes === "reject" || slashes === "keep") escapedSlashes = slashes;
  else {
    problems.push(
      `PATH_ESCAPED_SLASHES=${JSON.stringify(slashes)} must be "reject" or "keep"; using "reject"`,
    );
  }
  const secrets = env as unknown as { ADMIN_TOKEN?: string; ADMIN_SERVICES?: string };
  let adminToken = secrets.ADMIN_TOKEN || undefined;
  if (adminToken !== undefined && adminToken.length < 16) {
    problems.push("ADMIN_TOKEN is shorter than 16 characters; it is ignored (use a random one)");
    adminToken = undefined;
  }
  const adminServices = (secrets.ADMIN_SERVICES ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  const vars = env as unknown as { ACCESS_LOG_SAMPLE?: string; METRICS_FLUSH?: string };
  let accessLogSample = DEFAULT_ACCESS_LOG_SAMPLE;
  if (vars.ACCESS_LOG_SAMPLE !== undefined) {
    const share = Number(vars.ACCESS_LOG_SAMPLE);
    if (vars.ACCESS_LOG_SAMPLE.trim() !== "" && share >= 0 && share <= 1) accessLogSample = share;
    else {
      problems.push(
        `ACCESS_LOG_SAMPLE=${JSON.stringify(vars.ACCESS_LOG_SAMPLE)} is not a share between 0 and 1; using ${DEFAULT_ACCESS_LOG_SAMPLE}`,
      );
    }
  }
  const metricsVar = vars.METRICS_FLUSH ?? "on";
  if (metricsVar !== "on" && metricsVar !== "off") {
    problems.push(`METRICS_FLUSH=${JSON.stringify(metricsVar)} must be "on" or "off"; using "on"`);
  }
  return {
    trustDomain: env.TRUST_DOMAIN || "meshwork.local",
    telemetry: { accessLogSample, metrics: metricsVar !== "off" },
    adminToken,
    adminServices,
    refreshMs: refreshSeconds * 1000,
    escapedSlashes,
    problems,
  };
}
