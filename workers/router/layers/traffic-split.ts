/**
 * Chooses the backend among the rule's weighted backendRefs, in this order:
 *   1. `X-Mesh-Backend: <service>` pins the request to one of the rule's backends — only where
 *      the destination Service enables pinning (`spec.backendPinning`), only for the callers it
 *      names, and never to a weight-0 backend unless it allows that too; otherwise the header is
 *      ignored (requestContext never forwards the header, pin or not);
 *   2. session persistence hashes the session key (header or cookie) so a user stays on one
 *      backend while weights move; a missing cookie is issued;
 *   3. otherwise a weighted random pick.
 * Backends whose circuit breaker is open leave the split first, or hand their share to their
 * failover Service (outlier ejection, below). Weight 0 is never chosen; no usable backend is
 * `no_backend` (500), as the Gateway API says.
 */
import { MeshError } from "../../../core/errors.ts";
import type {
  CompiledBackend,
  CompiledRule,
  SessionSpec,
} from "../../../core/routing/route-table.ts";
import {
  buildSplitTable,
  pickSticky,
  pickWeighted,
  type SplitTable,
} from "../../../core/split/pick-backend.ts";
import { ejectOutliers } from "../../../core/resilience/ejection.ts";
import type { Layer, MeshCall } from "../call.ts";
import { runFilters } from "./route-filters.ts";

/** Request header that pins a call to a named backend of the matched rule. */
export const PIN_HEADER = "x-mesh-backend";

function cookieValue(cookieHeader: string | null, name: string): string | undefined {
  if (!cookieHeader) return undefined;
  for (const part of cookieHeader.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function sessionKey(call: MeshCall, session: SessionSpec): string | undefined {
  if (session.type === "Header") return call.request.headers.get(session.name) ?? undefined;
  const existing = cookieValue(call.request.headers.get("cookie"), session.name);
  if (existing) return existing;
  const issued = crypto.randomUUID();
  const maxAge =
    session.cookieMaxAgeSeconds !== undefined ? `; Max-Age=${session.cookieMaxAgeSeconds}` : "";
  call.responseCookies.push(`${session.name}=${issued}; Path=/; HttpOnly; SameSite=Lax${maxAge}`);
  return issued;
}

/** The backend `X-Mesh-Backend` pins this call to, when the destination allows it. */
function pinnedBackend(call: MeshCall, rule: CompiledRule): CompiledBackend | undefined {
  const pinned = call.request.headers.get(PIN_HEADER);
  if (pinned === null) return undefined;
  const pinning = call.table?.pinning;
  if (!pinning) return undefined;
  if (pinning.callers && (call.caller === undefined || !pinning.callers.has(call.caller))) {
    return undefined;
  }
  const backend = rule.backends.items.find((b) => b.name === pinned);
  if (!backend || (backend.weight === 0 && !pinning.allowZeroWeight)) return undefined;
  return backend;
}

/** The rule's split as the breakers stand, and the backends kept in it although open. */
interface Split {
  readonly table: SplitTable<CompiledBackend>;
  /** Backends whose tries skip their breaker (kept by the ejection cap, or fail-open). */
  readonly bypass: ReadonlySet<CompiledBackend>;
  /** Failover backends standing in for open ones, and whom each stands in for. */
  readonly standIns: ReadonlyMap<CompiledBackend, string>;
}

/**
 * When `backend`'s breaker would refuse a try now, the time it reopens (now, for a half-open
 * breaker whose probes are all out); undefined when it would not refuse.
 */
function closedUntil(call: MeshCall, backend: CompiledBackend, now: number): number | undefined {
  const breaker = backend.service?.policy.breaker;
  if (backend.weight <= 0 || !breaker) return undefined;
  const state = call.services.get(backend.service!.name);
  if (!state.refuses(breaker, now)) return undefined;
  const s = state.breaker(now);
  return s.kind === "open" ? s.until : now;
}

/**
 * The rule's backends a call may go to now (outlier ejection). A backend whose breaker is open
 * hands its share to its failover Service when it has a healthy one; the rest is
 * core/resilience/ejection.ts: open backends leave the split, up to `maxEjectionPercent`,
 * longest open first; those beyond the cap are called past their breakers; with none healthy,
 * `no_healthy_backend`, or with fail-open the one that reopens first. A lone backend stays, and
 * its breaker answers `circuit_open`.
 */
function currentSplit(call: MeshCall, rule: CompiledRule): Split {
  const items = rule.backends.items;
  const now = call.now();
  let open: Map<CompiledBackend, number> | undefined;
  for (const b of items) {
    const until = closedUntil(call, b, now);
    if (until !== undefined) (open ??= new Map()).set(b, until);
  }
  if (!open) return { table: rule.backends, bypass: NONE, standIns: NO_STAND_INS };
  const standIns = new Map<CompiledBackend, string>();
  const entries = items.map((b) => {
    const failover = open.has(b) ? b.failover : undefined;
    if (!failover || closedUntil(call, failover, now) !== undefined) {
      return { backend: b, weight: b.weight, openUntil: open.get(b) };
    }
    standIns.set(failover, b.name);
    return { backend: failover, weight: failover.weight, openUntil: undefined };
  });
  const ejection = ejectOutliers(entries, rule.outlier);
  call.ejected.push(...ejection.ejected.map((b) => b.name));
  switch (ejection.kind) {
    case "split":
      return {
        table: buildSplitTable(ejection.kept),
        bypass: ejection.bypass.length === 0 ? NONE : new Set(ejection.bypass),
        standIns,
      };
    case "none-healthy":
      throw new MeshError(
        "no_healthy_backend",
        `every backend of rule '${rule.id}' has its circuit breaker open (${call.ejected.join(", ")})`,
        { destination: call.destination, route: rule.id },
      );
    case "fail-open":
      return {
        table: buildSplitTable([ejection.backend]),
        bypass: new Set([ejection.backend]),
        standIns,
      };
  }
}

const NONE: ReadonlySet<CompiledBackend> = new Set();
const NO_STAND_INS: ReadonlyMap<CompiledBackend, string> = new Map();

function chooseBackend(call: MeshCall, rule: CompiledRule): CompiledBackend | undefined {
  const pinned = pinnedBackend(call, rule);
  if (pinned) return pinned;
  const split = currentSplit(call, rule);
  let chosen: CompiledBackend | undefined;
  if (rule.session) {
    const key = sessionKey(call, rule.session);
    if (key !== undefined) chosen = pickSticky(split.table, key);
  }
  chosen ??= pickWeighted(split.table, call.random);
  if (chosen) {
    call.breakerBypass = split.bypass.has(chosen);
    call.failedOverFrom = split.standIns.get(chosen);
  }
  return chosen;
}

export const trafficSplit: Layer = (call, next) => {
  const rule = call.rule!;
  const backend = chooseBackend(call, rule);
  if (!backend || !backend.service) {
    throw new MeshError(
      "no_backend",
      !backend
        ? `rule '${rule.id}' has no backendRefs with a weight above 0`
        : `rule '${rule.id}' sends this request to a backend that cannot receive it: ${backend.problem ?? `Service '${backend.name}' does not exist`}`,
      { destination: call.destination, route: rule.id },
    );
  }
  call.backend = backend;
  call.backendState = call.services.get(backend.service.name);
  const answered = runFilters(call, backend.filters, next);
  if (call.responseCookies.length === 0) return answered;
  return answered.then((response) => {
    const withCookies = new Response(response.body, response);
    for (const cookie of call.responseCookies) withCookies.headers.append("set-cookie", cookie);
    return withCookies;
  });
};
