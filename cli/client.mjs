// The admin API over HTTP (docs/control-plane.md): where it is, which credential to send, and
// one `request` that turns every way a call can fail into a typed error (errors.mjs explains
// them). Commands call the contract's endpoints through the named methods below.
import { DEV_ADMIN_TOKEN } from "../scripts/workers.mjs";
import { ApiError, CliError, UnreachableError, UsageError } from "./errors.mjs";

/** Where `npm start` serves the policy Worker. */
export const DEFAULT_SERVER = "http://127.0.0.1:8788";
/** How long one call may take, connection and body included. */
export const DEFAULT_TIMEOUT_SECONDS = 10;

/** Whether a URL's host is this machine: only then may the development token be sent. */
export function isLoopback(url) {
  const host = url.hostname;
  return host === "localhost" || host === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** A header value fetch accepts: printable ASCII as is, anything else percent-encoded. */
const headerSafe = (value) => (/^[\x20-\x7e]*$/.test(value) ? value : encodeURIComponent(value));

/**
 * Resolves the global flags and the environment into a connection: the server, the credential
 * (and where it came from, for messages), the author and the timeout.
 */
export function resolveConnection(values, env, warn) {
  const raw = values.server ?? env.MESH_ADMIN_URL ?? DEFAULT_SERVER;
  const from = values.server !== undefined ? "--server" : "MESH_ADMIN_URL";
  let url;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`${from} must be a URL such as ${DEFAULT_SERVER}, got '${raw}'`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(`${from} must be an http:// or https:// URL, got '${raw}'`);
  }
  const server = url.href.replace(/\/+$/, "");

  let credential;
  if (values.svid !== undefined) {
    credential = { kind: "svid", value: values.svid, source: "--svid" };
  } else if (values.token !== undefined) {
    credential = { kind: "token", value: values.token, source: "--token" };
  } else if (env.MESH_ADMIN_TOKEN) {
    credential = { kind: "token", value: env.MESH_ADMIN_TOKEN, source: "MESH_ADMIN_TOKEN" };
  } else if (isLoopback(url)) {
    credential = { kind: "token", value: DEV_ADMIN_TOKEN, source: "local development token" };
  }
  if (credential && url.protocol === "http:" && !isLoopback(url)) {
    warn(`⚠ sending an admin credential over plain http to ${url.host}; use https://`);
  }

  let timeoutSeconds = DEFAULT_TIMEOUT_SECONDS;
  if (values.timeout !== undefined) {
    timeoutSeconds = Number(values.timeout);
    if (!(timeoutSeconds > 0 && timeoutSeconds <= 600)) {
      throw new UsageError(
        `--timeout must be a number of seconds in (0, 600], got '${values.timeout}'`,
      );
    }
  }
  return {
    server,
    credential,
    author: env.USER ? headerSafe(env.USER) : undefined,
    timeoutSeconds,
  };
}

/** Which credential a connection sends, in words: "the token from --token". */
export function credentialLabel(credential) {
  if (!credential) return "no credential";
  if (credential.source === "local development token") return "the local development token";
  return `the ${credential.kind === "svid" ? "SVID" : "token"} from ${credential.source}`;
}

/** Why a fetch failed, in words, from undici's error and its cause. */
function networkReason(error, url) {
  const cause = error?.cause;
  const code = cause?.code;
  if (code === "ECONNREFUSED") return "connection refused";
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return `no such host '${url.hostname}'`;
  if (code === "ECONNRESET") return "the connection was reset";
  // fetch refuses some ports outright (those browsers block, such as 9 or 6000).
  if (cause?.message === "bad port") return `fetch will not connect to port ${url.port}`;
  return cause?.message ?? error?.message ?? String(error);
}

/** The admin API client. Every method resolves to the answer's JSON body. */
export class AdminClient {
  constructor(connection) {
    this.connection = connection;
  }

  /**
   * One call. `ifMatch` sends `If-Match: "N"`; `locate` turns an issue into text naming its file
   * and line, for invalid_config answers to a body read from files.
   */
  async request(method, path, { query, body, ifMatch, locate } = {}) {
    const { server, credential, author, timeoutSeconds } = this.connection;
    const url = new URL(`${server}${path}`);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== false) url.searchParams.set(key, String(value));
    }
    const headers = { accept: "application/json" };
    if (credential?.kind === "token") headers.authorization = `Bearer ${credential.value}`;
    if (credential?.kind === "svid") headers["x-mesh-svid"] = credential.value;
    if (author) headers["x-mesh-author"] = author;
    if (ifMatch !== undefined) headers["if-match"] = `"${ifMatch}"`;
    if (body !== undefined) headers["content-type"] = "application/json";
    const request = `${method} ${url.pathname}`;

    // One deadline for connecting, the headers and the body.
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutSeconds * 1000);
    let status;
    let text;
    try {
      const response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: abort.signal,
        // A redirect would carry the credential elsewhere (fetch keeps X-Mesh-SVID across origins).
        redirect: "error",
      });
      status = response.status;
      text = await response.text();
    } catch (error) {
      throw new UnreachableError(
        server,
        abort.signal.aborted ? `no answer within ${timeoutSeconds} s` : networkReason(error, url),
      );
    } finally {
      clearTimeout(timer);
    }

    let json;
    try {
      json = text === "" ? {} : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (status >= 200 && status < 300) {
      if (json === undefined || typeof json !== "object" || json === null) {
        throw new CliError(
          `${server} answered ${request} with something that is not the admin API's JSON`,
          {
            lines: [
              "is --server the policy Worker (127.0.0.1:8788 under `npm start`), not the router?",
            ],
          },
        );
      }
      return json;
    }
    const error = json?.error;
    if (error && typeof error.code === "string") {
      throw new ApiError(status, error.code, String(error.message ?? ""), {
        ...error,
        request,
        connection: this.connection,
        locate,
      });
    }
    throw new ApiError(status, `http_${status}`, text.slice(0, 200).trim() || "(no body)", {
      request,
      connection: this.connection,
      locate,
    });
  }

  /** `GET /v1/config`: `{ version, resources }`. */
  config() {
    return this.request("GET", "/v1/config");
  }

  /** `GET /v1/resources/{kind}/{name}`: the resource (a body `{ resource }` is unwrapped). */
  async resource(kind, name) {
    const body = await this.request("GET", resourcePath(kind, name));
    return body.resource && typeof body.resource === "object" ? body.resource : body;
  }

  /** `DELETE /v1/resources/{kind}/{name}`. */
  deleteResource(kind, name, { ifMatch } = {}) {
    return this.request("DELETE", resourcePath(kind, name), { ifMatch });
  }

  /** `POST /v1/apply`, optionally `prune` and `dryRun`. */
  apply(resources, { prune = false, dryRun = false, ifMatch, locate } = {}) {
    return this.request("POST", "/v1/apply", {
      query: { prune: prune || undefined, dryRun: dryRun || undefined },
      body: { resources },
      ifMatch,
      locate,
    });
  }

  /** `GET /v1/history`, newest first. */
  history({ limit } = {}) {
    return this.request("GET", "/v1/history", { query: { limit } });
  }

  /** `POST /v1/rollback`: a new version equal to `version`. */
  rollback(version, { ifMatch } = {}) {
    return this.request("POST", "/v1/rollback", { body: { version }, ifMatch });
  }

  /** `GET /v1/status`. */
  status() {
    return this.request("GET", "/v1/status");
  }

  /** `GET /v1/metrics?window=<seconds>`: golden metrics per edge and Service (MetricsView). */
  metrics({ window }) {
    return this.request("GET", "/v1/metrics", { query: { window } });
  }
}

/** The path of one resource; kinds are sent as the schemas spell them (`HTTPRoute`). */
const resourcePath = (kind, name) =>
  `/v1/resources/${encodeURIComponent(kind)}/${encodeURIComponent(name)}`;
