/**
 * The HTTPRoute CORS filter (Gateway API GEP-1767), as pure functions: which origins are allowed,
 * what a preflight is answered with, and which headers an allowed cross-origin response gets.
 *
 * Shaped by the Gateway API conformance tests: an allowed origin is echoed back (never `*` when
 * credentials are allowed; with `*` configured, a wildcard list echoes what the preflight asked
 * for, which is valid with or without credentials); a preflight is answered by the mesh (200,
 * empty body) whether or not its origin is allowed — without CORS headers when it is not, so the
 * browser refuses the call; an actual request from a disallowed origin is still forwarded, only
 * without CORS headers. Responses whose CORS headers depend on `Origin` say `Vary: Origin`.
 */

/** One allowed origin: a scheme, a host (exact or `*.suffix`, or any) and a port. */
interface OriginPattern {
  readonly scheme: "http:" | "https:";
  /** Lower-case host, or undefined for any host. */
  readonly host: string | undefined;
  /** True when `host` is a `*.` suffix (matching one or more labels before it). */
  readonly wildcard: boolean;
  readonly port: string;
}

/** A compiled CORS filter. */
export interface CorsPolicy {
  /** `*` was configured: every origin is allowed. */
  readonly anyOrigin: boolean;
  readonly origins: readonly OriginPattern[];
  readonly allowCredentials: boolean;
  /** Comma-separated list, `*`, or undefined when unset. */
  readonly allowMethods: string | undefined;
  readonly allowHeaders: string | undefined;
  readonly exposeHeaders: string | undefined;
  readonly maxAge: string;
}

/** The CORS filter's configuration, as validated. */
export interface CorsConfig {
  allowOrigins?: string[] | undefined;
  allowCredentials?: boolean | undefined;
  allowMethods?: string[] | undefined;
  allowHeaders?: string[] | undefined;
  exposeHeaders?: string[] | undefined;
  maxAge: number;
}

const DEFAULT_PORT = { "http:": "80", "https:": "443" } as const;

function compileOrigin(origin: string): OriginPattern {
  const [scheme, rest] = origin.split("://") as [string, string];
  const protocol = scheme === "http" ? "http:" : "https:";
  const colon = rest.lastIndexOf(":");
  const hostPart = colon >= 0 ? rest.slice(0, colon) : rest;
  const port = colon >= 0 ? String(Number(rest.slice(colon + 1))) : DEFAULT_PORT[protocol];
  if (hostPart === "*") return { scheme: protocol, host: undefined, wildcard: false, port };
  const wildcard = hostPart.startsWith("*.");
  return {
    scheme: protocol,
    host: (wildcard ? hostPart.slice(1) : hostPart).toLowerCase(),
    wildcard,
    port,
  };
}

const list = (items: readonly string[] | undefined) =>
  items && items.length > 0 ? items.join(", ") : undefined;

/** Compiles a validated CORS filter. */
export function compileCors(config: CorsConfig): CorsPolicy {
  const origins = config.allowOrigins ?? [];
  const anyOrigin = origins.includes("*");
  return {
    anyOrigin,
    origins: anyOrigin ? [] : origins.map(compileOrigin),
    allowCredentials: config.allowCredentials === true,
    allowMethods: list(config.allowMethods),
    allowHeaders: list(config.allowHeaders),
    exposeHeaders: list(config.exposeHeaders),
    maxAge: String(config.maxAge),
  };
}

/** True when the request's `Origin` is allowed. `null` and malformed origins never are. */
export function originAllowed(policy: CorsPolicy, origin: string): boolean {
  if (policy.anyOrigin) return origin !== "null";
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return false;
  // An Origin is scheme://host[:port] and nothing else.
  if (`${url.protocol}//${url.host}` !== origin.toLowerCase()) return false;
  const port = url.port || DEFAULT_PORT[url.protocol];
  const host = url.hostname;
  return policy.origins.some(
    (pattern) =>
      pattern.scheme === url.protocol &&
      pattern.port === port &&
      (pattern.host === undefined ||
        (pattern.wildcard
          ? host.endsWith(pattern.host) && host.length > pattern.host.length
          : host === pattern.host)),
  );
}

/** True when `method` and `headers` make a CORS preflight request. */
export function isPreflight(
  method: string,
  headers: { get(name: string): string | null },
): boolean {
  return (
    method === "OPTIONS" &&
    headers.get("origin") !== null &&
    headers.get("access-control-request-method") !== null
  );
}

/** A wildcard list echoes what the preflight asked for; otherwise the configured list. */
function allowed(configured: string | undefined, requested: string | null): string | undefined {
  if (configured !== "*") return configured;
  return requested && requested.trim() !== "" ? requested : undefined;
}

/**
 * The headers of the mesh's answer to a preflight: CORS headers when the origin is allowed,
 * only `Vary` otherwise.
 */
export function preflightHeaders(
  policy: CorsPolicy,
  headers: { get(name: string): string | null },
): [string, string][] {
  const origin = headers.get("origin") ?? "";
  const out: [string, string][] = [["vary", "Origin"]];
  if (!originAllowed(policy, origin)) return out;
  out.push(["access-control-allow-origin", origin]);
  if (policy.allowCredentials) out.push(["access-control-allow-credentials", "true"]);
  const methods = allowed(policy.allowMethods, headers.get("access-control-request-method"));
  if (methods) out.push(["access-control-allow-methods", methods]);
  const requestHeaders = allowed(
    policy.allowHeaders,
    headers.get("access-control-request-headers"),
  );
  if (requestHeaders) out.push(["access-control-allow-headers", requestHeaders]);
  const expose = exposed(policy);
  if (expose) out.push(["access-control-expose-headers", expose]);
  out.push(["access-control-max-age", policy.maxAge]);
  return out;
}

/** exposeHeaders as sent: `*` is not valid with credentials, so it is left out then. */
function exposed(policy: CorsPolicy): string | undefined {
  return policy.exposeHeaders === "*" && policy.allowCredentials ? undefined : policy.exposeHeaders;
}

/**
 * The CORS headers for an actual (non-preflight) response to a request from `origin`; empty when
 * the origin is not allowed.
 */
export function responseHeaders(policy: CorsPolicy, origin: string): [string, string][] {
  if (!originAllowed(policy, origin)) return [];
  const out: [string, string][] = [["access-control-allow-origin", origin]];
  if (policy.allowCredentials) out.push(["access-control-allow-credentials", "true"]);
  const expose = exposed(policy);
  if (expose) out.push(["access-control-expose-headers", expose]);
  return out;
}
