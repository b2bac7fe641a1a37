/**
 * The admin API (docs/control-plane.md), a Hono app in front of the PolicyStore:
 *  - `GET /health`, open: only whether the Worker is up;
 *  - `GET /dashboard`, open: the mesh dashboard's page and scripts (dashboard.ts), which hold no
 *    data — the browser reads it from `/v1/metrics` and `/v1/status` with the user's token;
 *  - everything under `/v1` for an admin (a viewer may read): the config, one resource, writes
 *    (PUT, DELETE, apply, rollback, with If-Match and dry runs), history, status, audit, and the
 *    golden metrics (`/v1/metrics`).
 * The Worker is the edge: it authenticates, reads and parses bodies (JSON or YAML, bounded), and
 * checks what the path and the body must agree on; the store validates the config and decides.
 * Handlers throw AdminErrors; `onError` is the one place they become responses, and where
 * refused requests are recorded in the audit log.
 */
import { Hono, type Context } from "hono";
import {
  POLICY_STORE_NAME,
  type WriteRequest,
  type WriteResult,
} from "../../durable-objects/policy-store.ts";
import { JwksCache } from "../router/identity/jwks.ts";
import { AdminAuthenticator, type Admin } from "./auth.ts";
import { dashboard } from "./dashboard.ts";
import { AdminError, errorResponse, rescue } from "./errors.ts";
import { RefusalLog } from "./refusal-log.ts";
import { isYaml, parseDocuments, readBodyText, singleDocument } from "./request-body.ts";
import { readSettings, type PolicySettings } from "./settings.ts";
import { isDuration, parseDuration } from "../../core/duration.ts";
import { MAX_WINDOW_MS } from "../../core/observability/metrics.ts";
import { metricsTotals, metricsView } from "./metrics.ts";
import { PROMETHEUS_CONTENT_TYPE, renderPrometheus } from "../../core/observability/prometheus.ts";

/** Least time between two JWKS fetches a request waits for (an unknown kid). */
const JWKS_MIN_REFRESH_MS = 30_000;
/** How long the JWKS is fresh when its answer carries no max-age. */
const JWKS_DEFAULT_MAX_AGE_MS = 300_000;
/** History and audit entries per page: by default, and at most. */
const DEFAULT_PAGE = 100;
const MAX_PAGE = 1000;
/** Methods a viewer may use. */
const READ_METHODS = new Set(["GET", "HEAD"]);

/** What an isolate keeps per environment: settings read once, the JWKS, the refusal limit. */
interface PolicyState {
  readonly settings: PolicySettings;
  readonly authenticator: AdminAuthenticator;
  readonly refusals: RefusalLog;
}

// One state per store binding and isolate: it outlives requests, which is the point.
const states = new WeakMap<object, PolicyState>();

/** The PolicyStore. */
export function policyStore(env: PolicyEnv) {
  return env.POLICY_STORE.getByName(POLICY_STORE_NAME);
}

/** The isolate's state for this environment (settings read and checked once). */
export function policyFor(env: PolicyEnv): PolicyState {
  let state = states.get(env.POLICY_STORE);
  if (!state) {
    const settings = readSettings(env as PolicyEnv & { ADMIN_TOKEN?: string });
    for (const problem of settings.problems) {
      console.warn(JSON.stringify({ level: "warn", event: "policy_settings", problem }));
    }
    const jwks = new JwksCache(
      () => env.IDENTITY.fetch("https://meshwork-identity/.well-known/jwks.json"),
      {
        now: Date.now,
        minRefreshMs: JWKS_MIN_REFRESH_MS,
        defaultMaxAgeMs: JWKS_DEFAULT_MAX_AGE_MS,
      },
    );
    const authenticator = new AdminAuthenticator(
      settings,
      jwks,
      async () => await policyStore(env).adminIdentity(),
      Date.now,
    );
    state = { settings, authenticator, refusals: new RefusalLog(Date.now) };
    states.set(env.POLICY_STORE, state);
  }
  return state;
}

type PolicyApp = Hono<{ Bindings: PolicyEnv; Variables: { admin: Admin; requestId: string } }>;
type PolicyContext = Context<{
  Bindings: PolicyEnv;
  Variables: { admin: Admin; requestId: string };
}>;

/** What a write route asks of the store; the rest comes from the request. */
type WriteOperation = WriteRequest extends infer W
  ? W extends WriteRequest
    ? Omit<W, "author" | "action" | "ifMatch" | "dryRun">
    : never
  : never;

/** `If-Match: "N"` or `N` as a version; `*` or none as no precondition. Throws `bad_request`. */
export function parseIfMatch(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  const value = header.trim();
  if (value === "*") return undefined;
  const match = /^"(\d{1,13})"$/.exec(value) ?? /^(\d{1,13})$/.exec(value);
  if (!match) {
    throw new AdminError(
      "bad_request",
      `If-Match must name one version, as "N" or N (the ETag of GET /v1/config); got ${JSON.stringify(value.slice(0, 40))}`,
    );
  }
  return Number(match[1]);
}

/** A `?name=true|false` flag (a bare `?name` is true). Throws `bad_request`. */
function flag(c: PolicyContext, name: string): boolean {
  const value = c.req.query(name);
  if (value === undefined || value === "false" || value === "0") return false;
  if (value === "" || value === "true" || value === "1") return true;
  throw new AdminError("bad_request", `?${name} must be true or false`);
}

/** A positive whole number from the query (`fallback` when absent), at most `max`. */
function count(c: PolicyContext, name: string, fallback: number | undefined, max: number) {
  const value = c.req.query(name);
  if (value === undefined) return fallback;
  if (!/^\d{1,15}$/.test(value) || Number(value) < 1 || Number(value) > max) {
    throw new AdminError("bad_request", `?${name} must be a whole number from 1 to ${max}`);
  }
  return Number(value);
}

/** The default metrics window, and its bounds. */
const DEFAULT_WINDOW_MS = 60_000;
const MIN_WINDOW_MS = 10_000;

/** `?window` in milliseconds: whole seconds or a duration, 10 s to 15 min. */
function windowOf(value: string | undefined): number {
  if (value === undefined) return DEFAULT_WINDOW_MS;
  let ms = Number.NaN;
  if (/^\d{1,6}$/.test(value)) ms = Number(value) * 1000;
  else if (isDuration(value)) ms = parseDuration(value);
  if (!(ms >= MIN_WINDOW_MS && ms <= MAX_WINDOW_MS)) {
    throw new AdminError(
      "bad_request",
      `?window must be a number of seconds or a duration (30s, 5m) from 10s to 15m; got ${JSON.stringify(value.slice(0, 40))}`,
    );
  }
  return ms;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** The body's documents (JSON: one; YAML: one per document). */
async function documentsOf(c: PolicyContext): Promise<unknown[]> {
  return parseDocuments(await readBodyText(c.req.raw), isYaml(c.req.header("content-type")));
}

/** Runs a write through the store and answers it as the contract says. */
async function write(c: PolicyContext, operation: WriteOperation): Promise<Response> {
  const dryRun = flag(c, "dryRun");
  const request = {
    ...operation,
    author: c.get("admin").author,
    action: `${c.req.method} ${new URL(c.req.url).pathname}`,
    ifMatch: parseIfMatch(c.req.header("if-match")),
    dryRun,
  } as WriteRequest;
  const result = (await policyStore(c.env).write(request)) as WriteResult;
  if (!result.ok) {
    throw new AdminError(result.code, result.message, {
      issues: result.issues,
      version: result.code === "version_conflict" ? result.version : undefined,
    });
  }
  return c.json(
    {
      version: result.version,
      warnings: result.warnings,
      diff: result.diff,
      ...(dryRun ? { dryRun: true } : {}),
    },
    200,
    { etag: `"${result.version}"` },
  );
}

/** The API. */
export const app: PolicyApp = new Hono();

app.use("*", async (c, next) => {
  c.set("requestId", c.req.header("cf-ray") ?? crypto.randomUUID());
  await next();
  c.header("x-request-id", c.get("requestId"));
  // Nothing is cached unless the handler says so (the dashboard's versioned scripts).
  if (!c.res.headers.has("cache-control")) c.header("cache-control", "no-store");
});

/** Open to anyone: only whether the Worker is up. */
app.get("/health", (c) => c.json({ ok: true }));

/** Open too: the dashboard's page and scripts, which hold no data (dashboard.ts). */
app.route("/", dashboard);

// Who is asking comes before what they ask: an anonymous caller learns nothing from a 400.
const authenticated = async (c: PolicyContext, next: () => Promise<void>) => {
  const admin = await policyFor(c.env).authenticator.authenticate(c.req.raw, (promise) =>
    c.executionCtx.waitUntil(promise),
  );
  c.set("admin", admin);
  if (admin.role !== "admin" && !READ_METHODS.has(c.req.method)) {
    throw new AdminError(
      "forbidden",
      "this credential may read the config but not change it (its SVID has the viewer role: a WorkloadCredential with roles [viewer], or its service in VIEWER_SERVICES)",
      { refusal: { actor: admin.author, detail: "a viewer writing" } },
    );
  }
  await next();
};
app.use("/v1/*", authenticated);
app.use("/metrics", authenticated);

/**
 * Prometheus text exposition (version 0.0.4) of every Service's running totals: request counts
 * and latency histograms by source, destination, backend, route and code, breaker states and the
 * config version (core/observability/prometheus.ts). Scrape it with the admin or a viewer's
 * credential (`authorization: { credentials: <token> }` in the scrape config). Objects that did
 * not answer are named in a comment, and their series are missing from this scrape.
 */
app.get("/metrics", async (c) => {
  const [{ totals, problems }, { version }] = await Promise.all([
    metricsTotals(c.env),
    policyStore(c.env).current(),
  ]);
  const comments = problems.map((problem) => `# ${problem.replace(/\s+/g, " ")}\n`).join("");
  return c.body(comments + renderPrometheus(totals, { configVersion: version }), 200, {
    "content-type": PROMETHEUS_CONTENT_TYPE,
  });
});

app.get("/v1/config", async (c) => {
  const { version, resources } = await policyStore(c.env).current();
  return c.json({ version, resources }, 200, { etag: `"${version}"` });
});

app.get("/v1/resources/:kind/:name", async (c) => {
  const { kind, name } = c.req.param();
  const { version, resource } = await policyStore(c.env).resource(kind, name);
  if (resource === null) throw new AdminError("not_found", `there is no ${kind}/${name}`);
  return c.json(resource as object, 200, { etag: `"${version}"` });
});

app.put("/v1/resources/:kind/:name", async (c) => {
  const { kind, name } = c.req.param();
  const resource = singleDocument(await documentsOf(c));
  const metadata = isObject(resource) ? resource.metadata : undefined;
  const bodyKind = isObject(resource) ? resource.kind : undefined;
  const bodyName = isObject(metadata) ? metadata.name : undefined;
  if (bodyKind !== kind || bodyName !== name) {
    throw new AdminError(
      "bad_request",
      `the body's kind and metadata.name (${describe(bodyKind)}/${describe(bodyName)}) must be the path's (${kind}/${name})`,
    );
  }
  return write(c, { op: "put", kind, name, resource });
});

app.delete("/v1/resources/:kind/:name", (c) => {
  const { kind, name } = c.req.param();
  return write(c, { op: "delete", kind, name });
});

app.post("/v1/apply", async (c) => {
  const documents = await documentsOf(c);
  let resources: unknown[];
  if (isYaml(c.req.header("content-type"))) resources = documents;
  else {
    const body = documents[0];
    const extra = isObject(body) ? Object.keys(body).filter((key) => key !== "resources") : [];
    if (!isObject(body) || !Array.isArray(body.resources) || extra.length > 0) {
      throw new AdminError(
        "bad_request",
        `the body must be { "resources": [...] }${extra.length > 0 ? `, without ${extra.map((k) => JSON.stringify(k.slice(0, 40))).join(", ")}` : ""} (or YAML, Content-Type: application/yaml, one resource per document)`,
      );
    }
    resources = body.resources;
  }
  return write(c, { op: "apply", resources, prune: flag(c, "prune") });
});

app.post("/v1/rollback", async (c) => {
  const body = singleDocument(await documentsOf(c));
  const version = isObject(body) ? body.version : undefined;
  if (
    !isObject(body) ||
    Object.keys(body).length !== 1 ||
    typeof version !== "number" ||
    !Number.isSafeInteger(version) ||
    version < 1
  ) {
    throw new AdminError("bad_request", 'the body must be { "version": N }, N a version number');
  }
  return write(c, { op: "rollback", version });
});

app.get("/v1/history", async (c) => {
  const limit = count(c, "limit", DEFAULT_PAGE, MAX_PAGE)!;
  const before = count(c, "before", undefined, Number.MAX_SAFE_INTEGER);
  return c.json({ versions: await policyStore(c.env).history({ limit, before }) });
});

app.get("/v1/history/:version", async (c) => {
  const text = c.req.param("version");
  if (!/^\d{1,13}$/.test(text)) {
    throw new AdminError("bad_request", `'${text.slice(0, 40)}' is not a version number`);
  }
  const record = await policyStore(c.env).version(Number(text));
  if (record === null) throw new AdminError("not_found", `there is no version ${text}`);
  return c.json(record);
});

app.get("/v1/status", async (c) => {
  const { settings } = policyFor(c.env);
  const status = await policyStore(c.env).status();
  return c.json({
    ...status,
    settings: {
      trustDomain: settings.trustDomain,
      adminToken: settings.adminToken !== undefined,
      adminServices: settings.adminServices,
      viewerServices: settings.viewerServices,
      // Where /v1/metrics reads from (never the token).
      analytics: settings.analytics
        ? { accountId: settings.analytics.accountId, dataset: settings.analytics.dataset }
        : null,
      problems: settings.problems,
    },
  });
});

/**
 * Golden metrics over `?window` (seconds, or a duration such as `30s`, `5m`; 10 s to 15 min,
 * default 1 min): per edge and per Service, the request series, configured against observed
 * splits, breakers and recent denials (core/observability/view.ts).
 */
app.get("/v1/metrics", async (c) => {
  const windowMs = windowOf(c.req.query("window"));
  return c.json(await metricsView(c.env, windowMs, policyFor(c.env).settings.analytics));
});

app.get("/v1/audit", async (c) => {
  const limit = count(c, "limit", DEFAULT_PAGE, MAX_PAGE)!;
  const before = count(c, "before", undefined, Number.MAX_SAFE_INTEGER);
  return c.json({ entries: await policyStore(c.env).audit({ limit, before }) });
});

app.notFound((c) => {
  const { pathname } = new URL(c.req.url);
  const error = new AdminError(
    "not_found",
    `no endpoint ${c.req.method} ${pathname.slice(0, 200)}: the policy Worker serves GET /health, the dashboard at GET /dashboard (docs/dashboard.md), Prometheus text at GET /metrics (docs/observability.md) and the admin API under /v1 (docs/control-plane.md)`,
  );
  return errorResponse(error, c.get("requestId"));
});

app.onError(async (error, c) => {
  const requestId = c.get("requestId") ?? crypto.randomUUID();
  const action = `${c.req.method} ${new URL(c.req.url).pathname}`;
  const failure = rescue(error, action, requestId);
  await recordRefusal(c, failure, action);
  return errorResponse(failure, requestId);
});

/**
 * Records a request refused at the edge in the audit log: an unauthenticated or forbidden one,
 * or an admin's write whose body could not be read. (The store records the refusals it decides.)
 */
async function recordRefusal(c: PolicyContext, failure: AdminError, action: string) {
  const admin = c.get("admin") as Admin | undefined;
  const refusal =
    failure.refusal ??
    (failure.code === "bad_request" && admin !== undefined && !READ_METHODS.has(c.req.method)
      ? { actor: admin.author, detail: failure.message }
      : undefined);
  if (refusal === undefined) return;
  console.warn(
    JSON.stringify({
      level: "warn",
      event: "admin_refused",
      code: failure.code,
      action,
      ...refusal,
    }),
  );
  const entry = policyFor(c.env).refusals.admit({ ...refusal, action, outcome: failure.code });
  if (entry === undefined) return;
  try {
    await policyStore(c.env).recordRefusal(entry);
  } catch (error) {
    // The answer is the refusal either way; a failure to record it is logged, not answered.
    rescue(error, `recording a refusal of ${action}`, c.get("requestId") ?? "");
  }
}

/** A body's field, as a message shows it. */
function describe(value: unknown): string {
  return typeof value === "string" ? value.slice(0, 80) : value === undefined ? "none" : "?";
}
