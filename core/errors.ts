/**
 * The mesh's own failures, as typed values.
 *
 * Layers throw a `MeshError` carrying one of the contract's codes; a single rescue module in the
 * router turns it into the JSON body, status and `X-Mesh-Error` header. Keeping the code → status
 * table here (pure, no Workers types) lets tests and the CLI share it.
 */

/** Every error code the mesh itself produces, with the HTTP status it maps to. */
export const MESH_ERROR_STATUS = {
  bad_request: 400,
  unauthenticated: 401,
  forbidden: 403,
  no_route: 404,
  rate_limited: 429,
  no_backend: 500,
  internal_error: 500,
  upstream_error: 502,
  circuit_open: 503,
  no_healthy_backend: 503,
  upstream_timeout: 504,
} as const;

export type MeshErrorCode = keyof typeof MESH_ERROR_STATUS;

/** A failure produced by the mesh (not by the destination), with its contract code. */
export class MeshError extends Error {
  readonly code: MeshErrorCode;
  /** The destination service the call was for, when known. */
  readonly destination: string | undefined;
  /** The route (`name` or `name/rule`) that was matched, when known. */
  readonly route: string | undefined;
  /**
   * True for a failure of one try that another try may not have: the upstream could not be
   * reached or threw, or the try exceeded its own timeout (not the whole call's).
   */
  readonly retryable: boolean;
  /** When the caller may try again, in whole seconds (sent as `Retry-After`), when known. */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: MeshErrorCode,
    message: string,
    options: {
      destination?: string | undefined;
      route?: string | undefined;
      cause?: unknown;
      retryable?: boolean;
      retryAfterSeconds?: number | undefined;
    } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "MeshError";
    this.code = code;
    this.destination = options.destination;
    this.route = options.route;
    this.retryable = options.retryable ?? false;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }

  get status(): number {
    return MESH_ERROR_STATUS[this.code];
  }
}
