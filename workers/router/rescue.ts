/**
 * The one place failures become responses (contract: JSON body, status, `X-Mesh-Error`).
 * Layers throw; this answers. A MeshError carries its contract code. Anything else is a bug in
 * the router itself — failures of the upstream are caught where they happen (forward.ts) and
 * thrown as `upstream_error` — so it is logged, with the request id and where it happened, and
 * answered `internal_error` (500): a router bug is never blamed on the upstream.
 */
import { MeshError } from "../../core/errors.ts";

/** The response for a mesh-produced error. */
export function errorResponse(error: MeshError, requestId?: string): Response {
  const headers = new Headers({
    "content-type": "application/json",
    "x-mesh-error": error.code,
  });
  if (requestId) headers.set("x-request-id", requestId);
  if (error.retryAfterSeconds !== undefined) {
    headers.set("retry-after", String(error.retryAfterSeconds));
  }
  return new Response(JSON.stringify({ error: { code: error.code, message: error.message } }), {
    status: error.status,
    headers,
  });
}

/** Where a failure happened, for the log line of an internal error. */
export interface FailureContext {
  requestId: string | undefined;
  destination: string | undefined;
  route: string | undefined;
}

/** The error log line of a router bug: one JSON object, ready for Workers Logs. */
export function logInternalError(error: unknown, where: FailureContext): void {
  console.error(
    JSON.stringify({
      level: "error",
      event: "internal_error",
      requestId: where.requestId ?? null,
      destination: where.destination || null,
      route: where.route ?? null,
      error:
        error instanceof Error ? (error.stack ?? `${error.name}: ${error.message}`) : String(error),
    }),
  );
}

/** Maps any thrown value to a MeshError, logging those that are not mesh errors. */
export function rescue(error: unknown, where: FailureContext): MeshError {
  if (error instanceof MeshError) return error;
  logInternalError(error, where);
  return new MeshError(
    "internal_error",
    `the mesh failed while handling this call (request id ${where.requestId ?? "unknown"}); this is a bug in the router, not the upstream`,
    { destination: where.destination, route: where.route, cause: error },
  );
}
