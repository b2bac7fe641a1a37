/**
 * The one place mesh failures become responses (contract: JSON body, status, `X-Mesh-Error`).
 * Layers throw; this answers. Anything that is not a MeshError is a bug in the mesh or an
 * upstream failure surfaced as an exception, and is reported as `upstream_error` without its
 * internals.
 */
import { MeshError } from "../../core/errors.ts";

/** The response for a mesh-produced error. */
export function errorResponse(error: MeshError, requestId?: string): Response {
  const headers = new Headers({
    "content-type": "application/json",
    "x-mesh-error": error.code,
  });
  if (requestId) headers.set("x-request-id", requestId);
  return new Response(JSON.stringify({ error: { code: error.code, message: error.message } }), {
    status: error.status,
    headers,
  });
}

/** Maps any thrown value to a MeshError. */
export function asMeshError(error: unknown): MeshError {
  if (error instanceof MeshError) return error;
  return new MeshError("upstream_error", "the upstream call failed", { cause: error });
}
