/**
 * The per-request record every layer reads and writes. Layers note what they decided here
 * (route, backend, endpoint, attempts) instead of logging; the outermost layers read it back to
 * report one outcome per call.
 */
import type { RandomSource } from "../../core/random.ts";
import type {
  CompiledBackend,
  CompiledEndpoint,
  CompiledMatch,
  CompiledRule,
  RouteTable,
} from "../../core/routing/route-table.ts";
import type { TraceContext } from "../../core/trace-context.ts";
import type { ConfigCache } from "./config-cache.ts";

/** How the call entered the mesh. */
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
  readonly random: RandomSource;
  readonly now: () => number;
  readonly startedAt: number;
  readonly entry: EntryKind;
  /** The calling service, when the entry attests it (binding props). */
  readonly caller: string | undefined;
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
  endpoint: CompiledEndpoint | undefined;
  /** Absolute time (ms) by which the whole call must finish; undefined = none. */
  deadline: number | undefined;
  /** Aborts the current attempt when its per-try deadline passes. */
  attemptSignal: AbortSignal | undefined;
  attempts: number;
}

/** One layer of the request pipeline: does its part and calls `next` (or answers itself). */
export type Layer = (call: MeshCall, next: () => Promise<Response>) => Promise<Response>;
