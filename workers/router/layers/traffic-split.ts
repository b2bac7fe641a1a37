/**
 * Chooses the backend among the rule's weighted backendRefs, in this order:
 *   1. `X-Mesh-Backend: <service>` pins the request to one of the rule's backends — only where
 *      the destination Service enables pinning (`spec.backendPinning`), only for the callers it
 *      names, and never to a weight-0 backend unless it allows that too; otherwise the header is
 *      ignored (requestContext never forwards the header, pin or not);
 *   2. session persistence hashes the session key (header or cookie) so a user stays on one
 *      backend while weights move; a missing cookie is issued;
 *   3. otherwise a weighted random pick.
 * Backends whose circuit breaker is open leave the split first (outlier ejection). Weight 0 is
 * never chosen; no usable backend is `no_backend` (500), as the Gateway API says.
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

/**
 * The rule's backends a call may go to now: a backend whose circuit breaker is open leaves the
 * split and its weight goes to the others (outlier ejection). With every weighted backend
 * ejected, a split of two or more answers `no_healthy_backend`; a lone backend stays, and its
 * breaker answers `circuit_open`.
 */
function healthyBackends(call: MeshCall, rule: CompiledRule): SplitTable<CompiledBackend> {
  const items = rule.backends.items;
  const now = call.now();
  const isEjected = (b: CompiledBackend) =>
    b.weight > 0 &&
    b.service?.breaker !== undefined &&
    call.breakers.state(b.service.name, now).kind === "open";
  if (!items.some(isEjected)) return rule.backends;
  const weighted = items.filter((b) => b.weight > 0);
  const healthy = weighted.filter((b) => !isEjected(b));
  if (weighted.length < 2) return rule.backends;
  call.ejected.push(...weighted.filter(isEjected).map((b) => b.name));
  if (healthy.length === 0) {
    throw new MeshError(
      "no_healthy_backend",
      `every backend of rule '${rule.id}' has its circuit breaker open (${call.ejected.join(", ")})`,
      { destination: call.destination, route: rule.id },
    );
  }
  return buildSplitTable(healthy);
}

function chooseBackend(call: MeshCall, rule: CompiledRule): CompiledBackend | undefined {
  const pinned = pinnedBackend(call, rule);
  if (pinned) return pinned;
  const backends = healthyBackends(call, rule);
  if (rule.session) {
    const key = sessionKey(call, rule.session);
    if (key !== undefined) return pickSticky(backends, key);
  }
  return pickWeighted(backends, call.random);
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
  const answered = runFilters(call, backend.filters, next);
  if (call.responseCookies.length === 0) return answered;
  return answered.then((response) => {
    const withCookies = new Response(response.body, response);
    for (const cookie of call.responseCookies) withCookies.headers.append("set-cookie", cookie);
    return withCookies;
  });
};
