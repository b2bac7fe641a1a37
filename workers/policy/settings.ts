/**
 * The policy Worker's settings, from its `[vars]` and the ADMIN_TOKEN secret: read once per
 * isolate and checked, so a mistake (a short token, a misspelt service) is reported in
 * `GET /v1/status` and the log instead of silently letting nobody — or somebody else — in.
 */
import { ResourceName } from "../../core/config/schema.ts";
import { DEFAULT_DATASET, isDatasetName } from "../../core/observability/sql.ts";
import { SQL_API, type AnalyticsCredentials } from "./analytics-engine.ts";

export interface PolicySettings {
  /** SPIFFE trust domain of the admin SVIDs it accepts. */
  readonly trustDomain: string;
  /** The bearer token that makes an admin; unset (or too short): no token works. */
  readonly adminToken: string | undefined;
  /** Services whose JWT-SVID may read and write (ADMIN_SERVICES). */
  readonly adminServices: readonly string[];
  /** Services whose JWT-SVID may read only (VIEWER_SERVICES); an admin service is not one. */
  readonly viewerServices: readonly string[];
  /** Analytics Engine's SQL API, when credentials are set: the golden metrics' source. */
  readonly analytics: AnalyticsCredentials | undefined;
  /** What was wrong with the vars, and what was done instead. */
  readonly problems: readonly string[];
}

/** The vars and secret the settings come from. */
export interface PolicyVars {
  TRUST_DOMAIN?: string;
  ADMIN_SERVICES?: string;
  VIEWER_SERVICES?: string;
  ADMIN_TOKEN?: string;
  ANALYTICS_ACCOUNT_ID?: string;
  ANALYTICS_DATASET?: string;
  /** A secret: an API token with Account Analytics Read. */
  ANALYTICS_API_TOKEN?: string;
  /** The SQL API's base URL (tests; default Cloudflare's). */
  ANALYTICS_SQL_ENDPOINT?: string;
}

export const DEFAULT_TRUST_DOMAIN = "meshwork.local";
/** The shortest ADMIN_TOKEN taken: anything shorter is guessable. */
export const MIN_ADMIN_TOKEN_LENGTH = 16;

// A trust domain as SPIFFE IDs in the mesh's resources spell it (core/config/identity-schema.ts).
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;

function serviceList(problems: string[], name: string, raw: string | undefined): string[] {
  const services: string[] = [];
  for (const entry of (raw ?? "").split(",")) {
    const service = entry.trim();
    if (service === "") continue;
    if (ResourceName.safeParse(service).success) services.push(service);
    else {
      problems.push(
        `${name} names ${JSON.stringify(service.slice(0, 80))}, which is not a service name (a DNS label); it is ignored`,
      );
    }
  }
  return services;
}

/** Reads and checks the policy Worker's vars and secret. */
export function readSettings(env: PolicyVars): PolicySettings {
  const problems: string[] = [];
  let trustDomain = DEFAULT_TRUST_DOMAIN;
  if (env.TRUST_DOMAIN !== undefined && env.TRUST_DOMAIN !== "") {
    if (TRUST_DOMAIN.test(env.TRUST_DOMAIN)) trustDomain = env.TRUST_DOMAIN;
    else {
      problems.push(
        `TRUST_DOMAIN=${JSON.stringify(env.TRUST_DOMAIN.slice(0, 80))} is not a trust domain (lower-case letters, digits, '.', '_' and '-'); using "${DEFAULT_TRUST_DOMAIN}"`,
      );
    }
  }
  let adminToken = env.ADMIN_TOKEN || undefined;
  if (adminToken !== undefined && adminToken.length < MIN_ADMIN_TOKEN_LENGTH) {
    problems.push(
      `ADMIN_TOKEN is shorter than ${MIN_ADMIN_TOKEN_LENGTH} characters; it is ignored (set a random one with \`wrangler secret put ADMIN_TOKEN\`)`,
    );
    adminToken = undefined;
  }
  const adminServices = serviceList(problems, "ADMIN_SERVICES", env.ADMIN_SERVICES);
  const viewerServices = serviceList(problems, "VIEWER_SERVICES", env.VIEWER_SERVICES).filter(
    (service) => !adminServices.includes(service),
  );
  if (adminToken === undefined && adminServices.length === 0) {
    problems.push(
      "neither ADMIN_TOKEN nor ADMIN_SERVICES is set: only an SVID whose WorkloadCredential grants roles [admin] can change the config; set ADMIN_TOKEN (`wrangler secret put ADMIN_TOKEN`) or ADMIN_SERVICES",
    );
  }
  return {
    trustDomain,
    adminToken,
    adminServices,
    viewerServices,
    analytics: analyticsSettings(env, problems),
    problems,
  };
}

/** The Analytics Engine credentials, when both halves are set and sane. */
function analyticsSettings(env: PolicyVars, problems: string[]): AnalyticsCredentials | undefined {
  const accountId = env.ANALYTICS_ACCOUNT_ID?.trim() || undefined;
  const apiToken = env.ANALYTICS_API_TOKEN || undefined;
  let dataset = DEFAULT_DATASET;
  if (env.ANALYTICS_DATASET) {
    if (isDatasetName(env.ANALYTICS_DATASET)) dataset = env.ANALYTICS_DATASET;
    else {
      problems.push(
        `ANALYTICS_DATASET=${JSON.stringify(env.ANALYTICS_DATASET.slice(0, 80))} is not a dataset name (letters, digits and _); using "${DEFAULT_DATASET}"`,
      );
    }
  }
  if (accountId === undefined && apiToken === undefined) return undefined;
  if (accountId === undefined || apiToken === undefined) {
    problems.push(
      accountId === undefined
        ? "ANALYTICS_API_TOKEN is set but ANALYTICS_ACCOUNT_ID is not: the metrics come from the metrics objects"
        : "ANALYTICS_ACCOUNT_ID is set but the ANALYTICS_API_TOKEN secret is not: the metrics come from the metrics objects",
    );
    return undefined;
  }
  if (!/^[0-9a-f]{32}$/i.test(accountId)) {
    problems.push(
      "ANALYTICS_ACCOUNT_ID is not an account id (32 hex digits): the metrics come from the metrics objects",
    );
    return undefined;
  }
  return { accountId, apiToken, dataset, endpoint: env.ANALYTICS_SQL_ENDPOINT || SQL_API };
}
