/**
 * Passing the mesh's context on, from the call a Worker is serving to the calls it makes — in one
 * line:
 *
 *   export default withMeshContext({ async fetch(request, env) { … env.PAYMENTS.fetch(…) … } });
 *
 * A service in the middle of a chain (the router calls `orders`, `orders` calls `payments`
 * through the router again) starts new requests of its own, and nothing carries headers across
 * that gap unless the service does — as every mesh's tracing asks of its applications. What
 * crosses it here: the trace (`traceparent`, `tracestate`), the request id, and the retry mark
 * `X-Mesh-Retry: off`. The mark is what keeps retries from multiplying: a router that retries
 * a call marks its tries, a router that sees the mark tries once, so a failing call three hops
 * deep is retried by the first hop only, not by each (3 tries × 3 tries × …).
 *
 * `withMeshContext` wraps the handler's `fetch`: while it serves a request, every service
 * binding in `env` adds these headers to what it sends, unless the request sets them itself.
 * `meshContext(request)` gives the same headers for code that builds its requests by hand.
 * Only `fetch` is wrapped; RPC methods and every other binding are passed through untouched.
 */

/** The headers a service passes on from the request it serves to the requests it makes. */
export const MESH_CONTEXT_HEADERS = [
  "traceparent",
  "tracestate",
  "x-request-id",
  "x-mesh-retry",
] as const;

/** The mesh context of `request`: the headers of MESH_CONTEXT_HEADERS it carries. */
export function meshContext(request: Request): Headers {
  const context = new Headers();
  for (const name of MESH_CONTEXT_HEADERS) {
    const value = request.headers.get(name);
    if (value === null) continue;
    // Only the "off" mark means anything; pass nothing else under its name.
    if (name === "x-mesh-retry" && value.trim().toLowerCase() !== "off") continue;
    context.set(name, value);
  }
  return context;
}

/** `init` with the context's headers added where `input` and `init` do not set them. */
export function withContextHeaders(
  context: Headers,
  input: RequestInfo | URL,
  init?: RequestInit,
): RequestInit {
  const headers = new Headers(
    init?.headers ?? (input instanceof Request ? input.headers : undefined),
  );
  context.forEach((value, name) => {
    if (!headers.has(name)) headers.set(name, value);
  });
  return { ...init, headers };
}

interface FetcherLike {
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
}

function isFetcher(value: unknown): value is FetcherLike {
  // A Durable Object namespace or KV has no `fetch`; a service binding (or a stub) has.
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { fetch?: unknown }).fetch === "function"
  );
}

/** `binding`, with a `fetch` that sends `context` along. */
function carrying(binding: FetcherLike, context: Headers): FetcherLike {
  return new Proxy(binding, {
    get(target, property) {
      if (property === "fetch") {
        return (input: RequestInfo | URL, init?: RequestInit) =>
          target.fetch(input, withContextHeaders(context, input, init));
      }
      const value: unknown = Reflect.get(target, property);
      return typeof value === "function" ? (value as () => unknown).bind(target) : value;
    },
  });
}

/** `env` as seen while serving one request: its service bindings carry `context`. */
export function envCarrying<E extends object>(env: E, context: Headers): E {
  if ([...context.keys()].length === 0) return env;
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(env, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property);
      if (!isFetcher(value)) return value;
      let binding = wrapped.get(property);
      if (binding === undefined) wrapped.set(property, (binding = carrying(value, context)));
      return binding;
    },
  });
}

/**
 * `handler`, with every service binding in `env` passing the served request's mesh context on
 * (see the module comment). Handlers other than `fetch` are kept as they are.
 */
export function withMeshContext<E extends object>(
  handler: ExportedHandler<E> & Required<Pick<ExportedHandler<E>, "fetch">>,
): ExportedHandler<E> {
  const fetch = handler.fetch;
  return {
    ...handler,
    fetch(request, env, ctx) {
      return fetch.call(handler, request, envCarrying(env, meshContext(request)), ctx);
    },
  };
}
