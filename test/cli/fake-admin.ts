// A stand-in for the policy Worker's admin API (docs/control-plane.md), just enough of it for
// meshctl's tests and shaped like workers/policy/ answers: versions kept whole in memory,
// validation with the core's own validateResources (so invalid_config and warnings are the real
// ones; an apply's body first, its issues at `resources[i]`, others named `Kind/name`), sorted
// diffs, If-Match, bearer-token and SVID auth with a viewer, history, rollback, and a status
// (StoreStatus) whose publish, drift and routers a test sets, and a metrics view (GET
// /v1/metrics, checking its window as the policy Worker does) that a test sets too. It records
// every request so a test can assert what meshctl sent.
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { validateResources, type ConfigIssue } from "../../core/config/validate.ts";
import { MAX_WINDOW_MS, SLOT_MS } from "../../core/observability/metrics.ts";
import type { MetricsView } from "../../core/observability/view.ts";

/** A resource as the fake stores it: whatever was applied (kind and metadata.name at least). */
export interface StoredResource {
  kind: string;
  metadata: { name: string };
  [field: string]: unknown;
}

export interface Version {
  version: number;
  at: string;
  author: string;
  summary: string;
  added: string[];
  changed: string[];
  removed: string[];
  resources: StoredResource[];
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: IncomingHttpHeaders;
  body: unknown;
}

/** A router isolate's report, as the store's status lists it. */
export interface RouterReport {
  isolate: string;
  colo: string | null;
  version: number | null;
  /** When the isolate applied its version, by its own clock. */
  appliedAt?: string | null;
  reportedAt: string;
  error?: string | null;
}

/** The admin token the fake accepts, and SVIDs it takes for an admin and for a viewer. */
export const FAKE_TOKEN = "test-admin-token";
export const ADMIN_SVID = "svid-of-an-admin-service";
export const VIEWER_SVID = "svid-of-a-viewer-service";

export interface FakeAdmin {
  url: string;
  requests: RecordedRequest[];
  versions: Version[];
  /** The routers GET /v1/status reports (default: none). */
  routers: RouterReport[];
  /** What GET /v1/status says of publishing and drift (default: the current version, now). */
  published:
    | {
        version: number | null;
        at: string | null;
        nextAttemptAt?: string;
        lastError?: { message: string; failures: number };
      }
    | undefined;
  drift: { kvVersion: number; publishedVersion: number; message: string } | null;
  /** The server's clock GET /v1/status sends (default: this machine's, now). */
  now: string | undefined;
  /**
   * What GET /v1/metrics answers, over an empty view for the window asked (default: no traffic).
   * The window it answers with is the one asked unless the test sets `windowSeconds`.
   */
  metrics: Partial<MetricsView>;
  /** When set, every request waits forever (for timeouts). */
  hang: boolean;
  /** When set, the next apply answers with this error instead. */
  nextApplyError: { status: number; error: Record<string, unknown> } | undefined;
  /** Commits a version directly, without validation (as another writer would have). */
  seed(resources: StoredResource[], author?: string): Version;
  current(): Version;
  close(): Promise<void>;
}

const key = (r: StoredResource) => `${r.kind}/${r.metadata.name}`;
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** What changes from one resource list to the next, as the contract's diff (lists sorted). */
function diffOf(before: StoredResource[], after: StoredResource[]) {
  const old = new Map(before.map((r) => [key(r), r]));
  const next = new Map(after.map((r) => [key(r), r]));
  return {
    added: [...next.keys()].filter((k) => !old.has(k)).sort(),
    changed: [...next.keys()].filter((k) => old.has(k) && !same(old.get(k), next.get(k))).sort(),
    removed: [...old.keys()].filter((k) => !next.has(k)).sort(),
  };
}

/** Issues with `resources[i]` renamed to `labels[i]`, as the policy Worker names them. */
function relabel(issues: ConfigIssue[], labels: string[]): ConfigIssue[] {
  return issues.map((issue) => {
    const match = /^resources\[(\d+)\]/.exec(issue.path);
    const label = match ? labels[Number(match[1])] : undefined;
    return label === undefined || !match
      ? issue
      : { path: label + issue.path.slice(match[0].length), message: issue.message };
  });
}

export async function startFakeAdmin(options: { token?: string } = {}): Promise<FakeAdmin> {
  const token = options.token ?? FAKE_TOKEN;
  const sockets = new Set<import("node:net").Socket>();
  const empty: Version = {
    version: 0,
    at: new Date(0).toISOString(),
    author: "",
    summary: "",
    added: [],
    changed: [],
    removed: [],
    resources: [],
  };
  const fake: FakeAdmin = {
    url: "",
    requests: [],
    versions: [],
    routers: [],
    published: undefined,
    now: undefined,
    drift: null,
    metrics: {},
    hang: false,
    nextApplyError: undefined,
    current: () => fake.versions.at(-1) ?? empty,
    seed(resources, author = "seed") {
      const previous = fake.current();
      const version: Version = {
        version: previous.version + 1,
        at: new Date().toISOString(),
        author,
        summary: "seeded",
        ...diffOf(previous.resources, resources),
        resources,
      };
      fake.versions.push(version);
      return version;
    },
    close: () =>
      new Promise((done) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => done());
      }),
  };

  const send = (res: ServerResponse, status: number, body: unknown, etag?: number) => {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (etag !== undefined) headers.etag = `"${etag}"`;
    res.writeHead(status, headers).end(JSON.stringify(body));
  };
  const error = (res: ServerResponse, status: number, code: string, message: string, more = {}) =>
    send(res, status, { error: { code, message, ...more } });

  /**
   * Validates the config a write proposes (`labels` name its resources in issues) and commits it
   * as a new version unless it changes nothing; sends the contract's answer or invalid_config.
   */
  const write = (
    res: ServerResponse,
    resources: StoredResource[],
    labels: string[],
    author: string,
    summary: string,
    dryRun = false,
  ) => {
    const validation = validateResources(resources);
    if (!validation.ok) {
      return error(res, 400, "invalid_config", "the config this write makes is invalid", {
        issues: relabel(validation.issues, labels),
      });
    }
    const warnings = relabel(validation.warnings, labels);
    const previous = fake.current();
    const diff = diffOf(previous.resources, resources);
    const changes = diff.added.length + diff.changed.length + diff.removed.length;
    if (dryRun || changes === 0) {
      return send(res, 200, { version: previous.version, warnings, diff });
    }
    fake.versions.push({
      version: previous.version + 1,
      at: new Date().toISOString(),
      author,
      summary,
      ...diff,
      resources,
    });
    return send(res, 200, { version: previous.version + 1, warnings, diff });
  };

  const server = createServer(async (req, res) => {
    let text = "";
    for await (const chunk of req) text += chunk;
    const url = new URL(req.url ?? "/", "http://fake");
    let body: unknown;
    try {
      body = text === "" ? undefined : JSON.parse(text);
    } catch {
      body = text;
    }
    fake.requests.push({
      method: req.method ?? "",
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: req.headers,
      body,
    });
    if (fake.hang) return;

    const svid = req.headers["x-mesh-svid"];
    const role =
      req.headers.authorization === `Bearer ${token}` || svid === ADMIN_SVID
        ? "admin"
        : svid === VIEWER_SVID
          ? "viewer"
          : undefined;
    if (!role) return error(res, 401, "unauthenticated", "an admin credential is required");
    const writing = req.method !== "GET";
    if (writing && role !== "admin") {
      return error(res, 403, "forbidden", "viewers may not change the config");
    }
    const current = fake.current();
    const ifMatch = req.headers["if-match"];
    if (writing && ifMatch !== undefined && Number(ifMatch.replace(/"/g, "")) !== current.version) {
      return error(res, 412, "version_conflict", `the config is version ${current.version}`, {
        version: current.version,
      });
    }
    const author = String(req.headers["x-mesh-author"] ?? "unknown");
    const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);

    if (req.method === "GET" && url.pathname === "/v1/config") {
      return send(
        res,
        200,
        { version: current.version, resources: current.resources },
        current.version,
      );
    }
    if (parts[0] === "v1" && parts[1] === "resources" && parts.length === 4) {
      const [, , kind, name] = parts;
      const found = current.resources.find((r) => r.kind === kind && r.metadata.name === name);
      if (!found) return error(res, 404, "not_found", `there is no ${kind}/${name}`);
      if (req.method === "GET") return send(res, 200, found, current.version);
      if (req.method === "DELETE") {
        const kept = current.resources.filter((r) => r !== found);
        return write(res, kept, kept.map(key), author, `delete ${kind}/${name}`);
      }
    }
    if (req.method === "POST" && url.pathname === "/v1/apply") {
      if (fake.nextApplyError) {
        const { status, error: answer } = fake.nextApplyError;
        fake.nextApplyError = undefined;
        return send(res, status, { error: answer });
      }
      const submitted = (body as { resources?: StoredResource[] })?.resources ?? [];
      // The body first, at its own indexes; then what it does not replace, unless pruning.
      const keys = new Set(submitted.map(key));
      const kept =
        url.searchParams.get("prune") === "true"
          ? []
          : current.resources.filter((r) => !keys.has(key(r)));
      return write(
        res,
        [...submitted, ...kept],
        [...submitted.map((_, i) => `resources[${i}]`), ...kept.map(key)],
        author,
        "apply",
        url.searchParams.get("dryRun") === "true",
      );
    }
    if (req.method === "GET" && url.pathname === "/v1/history") {
      const limit = Number(url.searchParams.get("limit") ?? 100);
      const versions = [...fake.versions]
        .reverse()
        .slice(0, limit)
        .map(({ resources: _, ...entry }) => entry);
      return send(res, 200, { versions });
    }
    if (req.method === "POST" && url.pathname === "/v1/rollback") {
      const wanted = (body as { version?: number })?.version;
      const target = fake.versions.find((v) => v.version === wanted);
      if (!target) return error(res, 404, "not_found", `there is no version ${wanted}`);
      const resources = target.resources;
      return write(res, resources, resources.map(key), author, `rollback to ${wanted}`);
    }
    if (req.method === "GET" && url.pathname === "/v1/status") {
      const published = fake.published ?? {
        version: current.version,
        at: new Date().toISOString(),
      };
      const routers = fake.routers;
      return send(res, 200, {
        now: fake.now ?? new Date().toISOString(),
        version: current.version,
        published: {
          version: published.version,
          at: published.at,
          pending: current.version > (published.version ?? 0),
          nextAttemptAt: published.nextAttemptAt ?? null,
          lastError: published.lastError
            ? { ...published.lastError, at: new Date().toISOString() }
            : null,
        },
        kv: { version: fake.drift?.kvVersion ?? published.version, error: null },
        drift: fake.drift,
        routers: {
          total: routers.length,
          current: routers.filter((r) => r.version === published.version).length,
          behind: routers.filter((r) => r.version !== published.version).length,
          withError: routers.filter((r) => r.error).length,
          isolates: routers.map((r) => ({ appliedAt: null, error: null, ...r })),
        },
      });
    }
    if (req.method === "GET" && url.pathname === "/v1/metrics") {
      // `window` in whole seconds, from one slot to what the metrics keep.
      const text = url.searchParams.get("window") ?? "60";
      const seconds = Number(text);
      if (!/^\d+$/.test(text) || seconds < SLOT_MS / 1000 || seconds > MAX_WINDOW_MS / 1000) {
        return error(
          res,
          400,
          "bad_request",
          `window must be whole seconds from ${SLOT_MS / 1000} to ${MAX_WINDOW_MS / 1000}`,
        );
      }
      const view: MetricsView = {
        source: "metrics-objects",
        windowSeconds: seconds,
        generatedAt: fake.now ?? new Date().toISOString(),
        edges: [],
        services: [],
        series: { slotSeconds: SLOT_MS / 1000, points: [] },
        splits: [],
        breakers: [],
        denials: [],
        problems: [],
        ...fake.metrics,
      };
      return send(res, 200, view);
    }
    return error(res, 404, "not_found", `no endpoint ${req.method} ${url.pathname}`);
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}
