/**
 * Refusing a call for who it is: the reason goes to the log and the call's outcome, never to the
 * caller — a response says only `unauthenticated` or `forbidden`, so it teaches a prober nothing
 * about which check failed.
 */
import { MeshError } from "../../../core/errors.ts";
import type { MeshCall } from "../call.ts";

/** The whole message of each refusal: fixed, whatever the reason (tests hold the body to it). */
export const REFUSAL_MESSAGES = {
  unauthenticated:
    "the caller is not authenticated: call through a service binding to the router's Mesh entrypoint, or present a valid JWT-SVID in X-Mesh-SVID",
  forbidden: "the call is not allowed by the destination's authorization policy",
} as const;

/** Records why, logs it as one JSON line, and returns the error to throw. */
export function refuse(
  call: MeshCall,
  code: "unauthenticated" | "forbidden",
  reason: string,
): MeshError {
  call.refusal = reason;
  console.warn(
    JSON.stringify({
      level: "warn",
      event: code,
      requestId: call.requestId || null,
      destination: call.destination || null,
      caller: call.principal ?? call.caller ?? null,
      reason,
    }),
  );
  return new MeshError(code, REFUSAL_MESSAGES[code], {
    destination: call.destination || undefined,
  });
}
