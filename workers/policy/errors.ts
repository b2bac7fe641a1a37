/**
 * The admin API's failures (docs/control-plane.md, "Errors"), as typed values, and the one place
 * they become responses. Handlers and middleware throw an AdminError; `onError` answers it. An
 * error that is not one is a bug: it is logged with the request id and answered
 * `500 internal_error`, never as anything the caller did.
 */
import type { ConfigIssue } from "../../core/config/validate.ts";

/** Every code of the admin API, with its status. */
export const ADMIN_ERROR_STATUS = {
  invalid_config: 400,
  bad_request: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  version_conflict: 412,
  internal_error: 500,
} as const;

export type AdminErrorCode = keyof typeof ADMIN_ERROR_STATUS;

/** What the audit log records of a refused request, beyond its code: never a secret. */
export interface RefusalRecord {
  /** Who was refused, as far as is known (`anonymous`, a SPIFFE ID, `token (alice)`). */
  actor: string;
  /** Why, for the operator (the response says less). */
  detail: string;
}

export class AdminError extends Error {
  readonly code: AdminErrorCode;
  /** `invalid_config`: every issue found. */
  readonly issues: ConfigIssue[] | undefined;
  /** `version_conflict`: the current version. */
  readonly version: number | undefined;
  /** A refusal the audit log should record (401, 403). */
  readonly refusal: RefusalRecord | undefined;

  constructor(
    code: AdminErrorCode,
    message: string,
    options: {
      issues?: ConfigIssue[] | undefined;
      version?: number | undefined;
      refusal?: RefusalRecord;
      cause?: unknown;
    } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "AdminError";
    this.code = code;
    this.issues = options.issues;
    this.version = options.version;
    this.refusal = options.refusal;
  }

  get status(): (typeof ADMIN_ERROR_STATUS)[AdminErrorCode] {
    return ADMIN_ERROR_STATUS[this.code];
  }
}

/**
 * The AdminError an error answers as: itself, or — for anything else, a bug — `internal_error`,
 * logged with its stack and the request id.
 */
export function rescue(error: unknown, where: string, requestId: string): AdminError {
  if (error instanceof AdminError) return error;
  console.error(
    JSON.stringify({
      level: "error",
      event: "internal_error",
      worker: "meshwork-policy",
      requestId,
      where,
      error:
        error instanceof Error ? (error.stack ?? `${error.name}: ${error.message}`) : String(error),
    }),
  );
  return new AdminError(
    "internal_error",
    `the policy Worker failed while handling this request; this is a bug (see its log, request id ${requestId})`,
    { cause: error },
  );
}

/** The contract's error body `{ error: { code, message, ... } }`, with its status. */
export function errorResponse(error: AdminError, requestId: string): Response {
  const headers = new Headers({
    "content-type": "application/json",
    "x-request-id": requestId,
    "cache-control": "no-store",
  });
  if (error.code === "unauthenticated") {
    headers.set("www-authenticate", 'Bearer realm="meshwork-policy"');
  }
  const body: Record<string, unknown> = { code: error.code, message: error.message };
  if (error.issues !== undefined) body.issues = error.issues;
  if (error.version !== undefined) body.version = error.version;
  return new Response(JSON.stringify({ error: body }), { status: error.status, headers });
}
