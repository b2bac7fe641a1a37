/**
 * The per-request record every layer reads and writes, and the per-try record of each attempt.
 * Layers note what they decided (route, backend, the tries and how each ended) instead of
 * logging; the outermost layers read it back to report one outcome per call. What belongs to one
 * try — its endpoint, its deadline, its body — lives on its `Attempt`, not on the call.
 */
import type { RandomSource } from "../../core/random.ts";
import type {
  CompiledBackend,
  CompiledMatch,
  CompiledRule,
  RouteTable,
} from "../../core/routing/route-table.ts";
import type { TraceContext } from "../../core/trace-context.ts";
import type { AuthorizationDecision } from "../../core/authz/authorization.ts";
import type { MeshError } from "../../core/errors.ts";
import type { VerifiedSvid } from "../../core/identity/svid.ts";
import type { BackendSync } from "./backend-sync.ts";
import type { Telemetry } from "./telemetry.ts";
import type { RouterIdentity } from "./identity/router-identity.ts";
import type { ConfigCache } from "./config-cache.ts";
import type { BreakerTransition, ServiceState, ServiceStates } from "./service-state.ts";

/**
 * The entrypoint the call came through: `http`, the Worker's own fetch (its `request.cf` is
 * Cloudflare's); `binding`, the `Mesh` entrypoint (props, when set, name the caller and the
 * destination; its `request.cf` is the calling Worker's, props or none).
 */
export type EntryKind = "binding" | "http";

/** Props a caller's service binding sets on the router's Mesh entrypoint. */
export interface MeshProps {
  /** The calling service's name (its identity, attested by the binding). */
  caller?: string;
  /** The destination Service the binding stands for. */
  target?: string;
}

export interface MeshCall {
  readonly request: Request;
  readonly env: Env;
  readonly ctx: ExecutionContext;
  readonly config: ConfigCache;
  /** What the isolate knows of each Service: breaker, budget, latency, balancer, rate limits. */
  readonly services: ServiceStates;
  /** What the isolate reports to the Services' Durable Objects, and adopts back. */
  readonly sync: BackendSync;
  /** Where the call's data point, log line and edge counts go (telemetry.ts). */
  readonly telemetry: Telemetry;
  /** The mesh's verification keys, verified tokens and the passport signer. */
  readonly identity: RouterIdentity;
  readonly random: RandomSource;
  readonly now: () => number;
  readonly startedAt: number;
  readonly entry: EntryKind;
  /**
   * The calling service: the one the binding's props attest, or the one a verified JWT-SVID
   * names (set by authenticate); undefined for an unauthenticated call.
   */
  caller: string | undefined;
  /** The caller's SPIFFE ID, once authenticated. */
  principal: string | undefined;
  /** How the caller was authenticated: its binding's props, a JWT-SVID, or not at all. */
  authenticatedBy: "binding" | "svid" | undefined;
  /** The verified token, when the caller presented one. */
  svid: VerifiedSvid | undefined;
  /** The authorization decision, once made. */
  authorization: AuthorizationDecision | undefined;
  /** Why the call was refused `unauthenticated` or `forbidden` (logs and outcome only). */
  refusal: string | undefined;
  /** The path authorization allowed (a rewrite after it is checked again). */
  authorizedPath: string | undefined;
  /** A CORS preflight's refusal, held for the CORS filter to answer it first. */
  deferredRefusal: MeshError | undefined;
  /** The destination Service (from props or Host); "" until resolved. */
  destination: string;
  requestId: string;
  trace: TraceContext | undefined;
  /** The request body still to send (split by mirrors); null for none. */
  body: ReadableStream | null;
  /** Where the request will be sent (rewritten by URLRewrite). */
  url: URL;
  /** Headers to send downstream: built by requestContext, then edited by filters. */
  headers: Headers;
  /** Set-Cookie values the mesh adds to the response (session persistence). */
  responseCookies: string[];
  table: RouteTable | undefined;
  match: CompiledMatch | undefined;
  rule: CompiledRule | undefined;
  backend: CompiledBackend | undefined;
  /** The isolate's state of the backend Service (set with `backend`). */
  backendState: ServiceState | undefined;
  /**
   * The backend stays in the split although its breaker is open (outlier detection's cap, or
   * fail-open): its tries go through without asking the breaker.
   */
  breakerBypass: boolean;
  /** Absolute time (ms) by which the whole call must finish; undefined = none. */
  deadline: number | undefined;
  /** Every try made, in order. */
  readonly attempts: AttemptRecord[];
  /** Why the call stopped retrying early, when it did. */
  retryStopped: "budget" | "deadline" | "retry-after" | "breaker" | undefined;
  /** Backends left out of this call's split because their circuit breaker was open. */
  readonly ejected: string[];
  /** Faults injected into this call (FaultInjection filters). */
  readonly faults: { name: string; delayMs: number; abortStatus: number | undefined }[];
  /** The backend the call failed over from (its breaker open), when it did. */
  failedOverFrom: string | undefined;
  /** The rate limit that refused the call (`total`, or `caller:<name>`), when one did. */
  limitedBy: string | undefined;
  /** Breakers that changed state because of this call. */
  readonly transitions: BreakerTransition[];
}

/** One try of a call: what the layers below the retry layer work on. */
export interface Attempt {
  /** 0 for the first try. */
  readonly index: number;
  /** The body to send on this try: the buffered body on a replay, else the stream (or null). */
  readonly body: BodyInit | null;
  /** Aborts this try when its own deadline passes. */
  signal: AbortSignal | undefined;
  /** Endpoints earlier tries used, so a retry prefers another. */
  readonly avoid: ReadonlySet<string>;
  /** What happened, filled in by the layers as they go. */
  readonly record: AttemptRecord;
}

/** How one try went. */
export interface AttemptRecord {
  readonly index: number;
  readonly startedAt: number;
  /** The backend Service tried. */
  readonly service: string;
  endpoint: string | undefined;
  /** Milliseconds until the response's headers (or the failure). */
  latencyMs: number | undefined;
  /** The time this try was given, ms, when it had a limit. */
  timeoutMs: number | undefined;
  /** True when that limit was what was left of the call's deadline, not the try's own. */
  deadlineLimited: boolean;
  /** True when that timeout was learned (`auto`): its latency feeds the estimate. */
  learnsLatency: boolean;
  /** The response status, when one came back. */
  status: number | undefined;
  /** The mesh error code it ended with, when it failed without a response. */
  error: string | undefined;
  /** Milliseconds waited before this try (backoff or Retry-After). */
  waitedMs: number;
  /** True when its breaker admitted it as a half-open probe. */
  probe: boolean;
}

/** One layer of the request pipeline: does its part and calls `next` (or answers itself). */
export type Layer = (call: MeshCall, next: () => Promise<Response>) => Promise<Response>;

/** A layer below the retry layer: it works on one try of the call. */
export type AttemptLayer = (
  call: MeshCall,
  attempt: Attempt,
  next: () => Promise<Response>,
) => Promise<Response>;
