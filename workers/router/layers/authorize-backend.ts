/**
 * Authorization, once the backend is chosen — what authorize.ts could not know before routing:
 *  - a URLRewrite changed the path: the destination's policies decide again on the path the
 *    backend will receive (a DENY on `/admin` is not walked around through `/v1/admin` → `/admin`);
 *  - the split (or failover) sent the call to another Service than the one it was addressed
 *    to: that Service's own PeerAuthentication and AuthorizationPolicies — the ones that target it
 *    by name — apply too, as Istio applies a workload's policies whatever route led there. With no
 *    ALLOW policy of its own a backend takes what its destination allowed; DENY and ALLOW
 *    policies of its own can only narrow that;
 *  - a CORS preflight refused by authorize.ts that no CORS filter answered is refused now.
 */
import { authorize as decide } from "../../../core/authz/authorization.ts";
import type { CompiledService } from "../../../core/routing/route-table.ts";
import type { Layer, MeshCall } from "../call.ts";
import { refuse } from "../identity/refuse.ts";

export const authorizeBackend: Layer = (call, next) => {
  if (call.deferredRefusal) throw call.deferredRefusal;
  if (call.authorizedPath !== undefined && call.url.pathname !== call.authorizedPath) {
    const decision = decide(call.table!.security.authorization, facts(call));
    call.authorization = decision;
    if (!decision.allowed) {
      throw refuse(
        call,
        "forbidden",
        `after the rewrite to ${call.url.pathname}: ${decision.reason}`,
      );
    }
  }
  const backend = call.backend?.service;
  if (backend && backend.name !== call.destination) {
    const reason = backendRefusal(call, backend);
    if (reason) throw refuse(call, reason.code, reason.reason);
  }
  return next();
};

/** Why `service`'s own policies refuse this call (sent to it by a split), if they do. */
export function backendRefusal(
  call: MeshCall,
  service: CompiledService,
): { code: "unauthenticated" | "forbidden"; reason: string } | undefined {
  const own = service.own;
  if (!own) return undefined;
  if (call.principal === undefined && own.peerMode === "STRICT") {
    return {
      code: "unauthenticated",
      reason: `no verified caller, and backend '${service.name}' takes only authenticated calls`,
    };
  }
  if (own.authorization) {
    const decision = decide(own.authorization, facts(call));
    if (!decision.allowed) {
      return { code: "forbidden", reason: `backend '${service.name}': ${decision.reason}` };
    }
  }
  return undefined;
}

function facts(call: MeshCall) {
  return {
    principal: call.principal,
    method: call.request.method.toUpperCase(),
    path: call.url.pathname,
    headers: call.request.headers,
  };
}
