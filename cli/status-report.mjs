// The admin API's `GET /v1/status` answer, read into one shape for `status` and `check`: the
// PolicyStore's status (durable-objects/policy-store.ts, StoreStatus) — the store's version, the
// last publish to KV (and its failure), what KV holds, drift, and each router isolate's report.
// Fields are read defensively (an older or newer policy Worker may lack some), so a missing one
// shows as unknown rather than breaking the command.

const firstDefined = (...values) => values.find((value) => value !== undefined && value !== null);

/** A failure as text: the API gives `{ message, at, failures }` or a string. */
function failureText(failure) {
  if (failure === undefined || failure === null) return undefined;
  if (typeof failure !== "object") return String(failure);
  const repeated = failure.failures > 1 ? ` (${failure.failures} failures in a row)` : "";
  return `${failure.message ?? "unknown error"}${repeated}`;
}

/**
 * `{ version, published: { version, at, pending, nextAttemptAt, error }, kv: { version, error },
 * drift, routers: [{ isolate, colo, version, appliedAt, reportedAt, error }], now }`. `now` is
 * the server's clock when it sends one (ages are computed against it, so this machine's clock
 * does not matter), else this machine's.
 */
export function readStatus(body) {
  const published = body.published ?? {};
  const listed = Array.isArray(body.routers) ? body.routers : body.routers?.isolates;
  const routers = (Array.isArray(listed) ? listed : []).map((router) => ({
    isolate: String(router.isolate ?? "?"),
    colo: String(router.colo ?? "-"),
    version: router.version ?? undefined,
    /** When the isolate applied its version (its own clock), if it has one. */
    appliedAt: router.appliedAt ?? undefined,
    /** When its last report arrived (the server's clock). */
    reportedAt: firstDefined(router.reportedAt, router.at),
    error: router.error ?? undefined,
  }));
  const now = Date.parse(body.now ?? "");
  return {
    version: body.version,
    published: {
      version: published.version ?? undefined,
      at: published.at ?? undefined,
      pending: published.pending === true,
      nextAttemptAt: published.nextAttemptAt ?? undefined,
      error: failureText(firstDefined(published.lastError, published.error)),
    },
    kv: { version: body.kv?.version ?? undefined, error: body.kv?.error ?? undefined },
    drift: body.drift ?? null,
    routers,
    now: Number.isFinite(now) ? now : Date.now(),
  };
}

/** How many routers report `version`, of how many. */
export function routersAt(status, version = status.version) {
  const current = status.routers.filter((router) => router.version === version).length;
  return { current, total: status.routers.length };
}

/**
 * "version N applied by X of Y routers", N the store's version; "(publish pending)" while the
 * store has yet to publish it, since no router can run it before then.
 */
export function verdict(status) {
  const { current, total } = routersAt(status);
  const pending = status.published.pending && !status.published.error ? " (publish pending)" : "";
  return `version ${status.version} applied by ${current} of ${total} ${total === 1 ? "router" : "routers"}${pending}`;
}

/** A drift report as one line. */
export function driftText(drift) {
  if (typeof drift !== "object") return String(drift);
  const parts = [];
  if (drift.kvVersion !== undefined && drift.kvVersion !== null) {
    parts.push(`KV holds version ${drift.kvVersion}`);
  }
  if (drift.publishedVersion !== undefined && drift.publishedVersion !== null) {
    parts.push(`the store last published version ${drift.publishedVersion}`);
  }
  return [parts.join(", "), drift.message].filter(Boolean).join(": ");
}
