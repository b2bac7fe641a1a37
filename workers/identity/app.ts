/**
 * The identity Worker's HTTP surfaces (small Hono apps):
 *  - `GET /.well-known/jwks.json`: the mesh's public keys (next, current, previous);
 *  - `GET /health`: up, the trust domain, the config held, and what is wrong with the settings
 *    or the config;
 *  - `POST /v1/svid`: a JWT-SVID for a workload outside Workers, attested by a verified client
 *    certificate or a bootstrap secret.
 * `httpApp` (the Worker's own `fetch` entry) serves all three. `bindingApp` (the Identity
 * entrypoint's `fetch`, how the router reaches the JWKS) serves the first two only: over a
 * service binding the caller builds `request.cf` itself, so a certificate "verified" there
 * proves nothing, and a Worker's SVID comes from the entrypoint's `svid()`, attested by props.
 * Handlers throw MeshErrors; `onError` is the one place they become responses.
 */
import { Hono } from "hono";
import { MeshError } from "../../core/errors.ts";
import { SIGNING_KEYS_NAME } from "../../durable-objects/signing-keys.ts";
import { attestRequest } from "./attestation.ts";
import { IdentityConfigCache, type IdentityConfig } from "./identity-config.ts";
import { issueSvid, parseSvidOptions, type IssueContext } from "./issuer.ts";
import { readSettings, type IdentitySettings } from "./settings.ts";

/** How often a warm isolate checks KV for new credentials and revocations. */
const CONFIG_REFRESH_MS = 5000;
/** How long a KV load of the credentials and revocations may take before it counts as failed. */
const CONFIG_READ_TIMEOUT_MS = 5000;
/**
 * How long an isolate issues against credentials and revocations it could not refresh: after
 * that it refuses (fails closed, as a cold isolate that cannot read KV does), since a revocation
 * published meanwhile would go unseen.
 */
export const CONFIG_MAX_STALE_MS = 5 * 60_000;
/** The largest SVID request body read (the two options take well under 1 KiB). */
const MAX_BODY_BYTES = 4096;

/** What an isolate keeps per environment: its settings and its config cache. */
interface IdentityState {
  readonly settings: IdentitySettings;
  readonly config: IdentityConfigCache;
}

// One state per KV binding and isolate: it outlives requests, which is the point.
const states = new WeakMap<object, IdentityState>();

/** The isolate's identity state for this environment (settings read and checked once). */
export function identityFor(env: IdentityEnv): IdentityState {
  let state = states.get(env.MESH_CONFIG);
  if (!state) {
    state = {
      settings: readSettings(env),
      config: new IdentityConfigCache(env.MESH_CONFIG, {
        refreshMs: CONFIG_REFRESH_MS,
        readTimeoutMs: CONFIG_READ_TIMEOUT_MS,
        maxStaleMs: CONFIG_MAX_STALE_MS,
        now: Date.now,
      }),
    };
    states.set(env.MESH_CONFIG, state);
  }
  return state;
}

function signingKeys(env: IdentityEnv) {
  return env.SIGNING_KEYS.getByName(SIGNING_KEYS_NAME);
}

/**
 * Everything issuing a token needs: the settings, the current revocations (from memory, or one
 * KV read in a cold isolate) and the signer.
 */
export async function issueContext(
  env: IdentityEnv,
  waitUntil: (promise: Promise<unknown>) => void,
): Promise<IssueContext & { config: IdentityConfig }> {
  const state = identityFor(env);
  const config = await state.config.get(waitUntil);
  return {
    settings: state.settings,
    config,
    revocations: config.revocations,
    sign: (typ, claims) => signingKeys(env).sign(typ, claims),
    now: Date.now(),
  };
}

/**
 * The request's body, at most `limit` bytes: read chunk by chunk and abandoned as soon as it
 * passes the limit, so a large or endless body costs no more than the limit. Throws `bad_request`.
 */
async function readBodyBytes(request: Request, limit: number): Promise<Uint8Array> {
  const tooLarge = () => new MeshError("bad_request", `the body is over ${limit} bytes`);
  if (Number(request.headers.get("content-length") ?? "0") > limit) throw tooLarge();
  if (request.body === null) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    length += value.byteLength;
    if (length > limit) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

/** The request's JSON body, or undefined when it has none; throws `bad_request`. */
async function readJsonBody(request: Request): Promise<unknown> {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(
      await readBodyBytes(request, MAX_BODY_BYTES),
    );
  } catch (error) {
    if (error instanceof MeshError) throw error;
    throw new MeshError("bad_request", "the body is not UTF-8");
  }
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new MeshError("bad_request", `the body is not JSON: ${(error as Error).message}`);
  }
}

/** The contract's error response: JSON body, status, `X-Mesh-Error`. */
function errorResponse(error: MeshError): Response {
  const headers = new Headers({ "content-type": "application/json", "x-mesh-error": error.code });
  if (error.code === "unauthenticated") {
    headers.set("www-authenticate", 'Bearer realm="meshwork-identity"');
  }
  return new Response(JSON.stringify({ error: { code: error.code, message: error.message } }), {
    status: error.status,
    headers,
  });
}

/** The log line of a failure: refusals with their real reason, bugs with their stack. */
export function logFailure(error: unknown, where: string): MeshError {
  if (error instanceof MeshError) {
    if (error.code === "unauthenticated" || error.code === "forbidden") {
      // The caller is told nothing specific; the operator needs to know why.
      console.warn(
        JSON.stringify({
          level: "warn",
          event: "identity_refused",
          where,
          code: error.code,
          reason: error.cause === undefined ? error.message : String(error.cause),
        }),
      );
    }
    return error;
  }
  console.error(
    JSON.stringify({
      level: "error",
      event: "internal_error",
      where,
      error:
        error instanceof Error ? (error.stack ?? `${error.name}: ${error.message}`) : String(error),
    }),
  );
  return new MeshError(
    "internal_error",
    "the identity Worker failed while handling this request; this is a bug (see its log)",
    { cause: error },
  );
}

type IdentityApp = Hono<{ Bindings: IdentityEnv }>;

/** The endpoints anyone may call, over HTTP or a binding: the JWKS and the health report. */
function servePublic(app: IdentityApp): void {
  app.get("/.well-known/jwks.json", async (c) => {
    const { settings } = identityFor(c.env);
    const jwks = await signingKeys(c.env).jwks();
    // Verifiers may keep this answer for max-age: every key is published longer than that
    // before it signs, so a cached copy never misses the key of a fresh token.
    return c.json(jwks, 200, { "cache-control": `public, max-age=${settings.jwksMaxAgeSeconds}` });
  });

  app.get("/health", (c) => {
    const { settings, config } = identityFor(c.env);
    return c.json(
      {
        ok: true,
        trustDomain: settings.trustDomain,
        config: config.describe(),
        problems: [...settings.problems, ...config.problems()],
      },
      200,
      { "cache-control": "no-store" },
    );
  });
}

/** Answers every other request with 404 `no_route`, naming what this surface serves. */
function serveErrors(app: IdentityApp, serves: string): void {
  app.notFound((c) =>
    errorResponse(
      new MeshError(
        "no_route",
        `no endpoint ${c.req.method} ${new URL(c.req.url).pathname}: ${serves}`,
      ),
    ),
  );
  app.onError((error, c) =>
    errorResponse(logFailure(error, `${c.req.method} ${new URL(c.req.url).pathname}`)),
  );
}

/** The Worker's own HTTP entry: the JWKS, health, and SVIDs for workloads outside Workers. */
export const httpApp: IdentityApp = new Hono();
servePublic(httpApp);
httpApp.post("/v1/svid", async (c) => {
  const context = await issueContext(c.env, (promise) => c.executionCtx.waitUntil(promise));
  // Who is asking comes before what they ask: an anonymous caller learns nothing from a 400.
  // `request.cf` is Cloudflare's here (this is the Worker's own HTTP entry), never a caller's.
  const attestation = await attestRequest(c.req.raw, context.config.credentials, context.now);
  const options = parseSvidOptions(await readJsonBody(c.req.raw));
  // The roles the attesting credential grants go into the token (meshwork.dev/roles).
  const credential = context.config.credentials.find(
    (c) => c.metadata.name === attestation.credential,
  );
  const svid = await issueSvid(
    context,
    attestation.service,
    options,
    attestation.certificateThumbprint,
    credential?.spec.roles,
  );
  return c.json(svid, 200, { "cache-control": "no-store" });
});
serveErrors(
  httpApp,
  "the identity Worker serves GET /.well-known/jwks.json, GET /health and POST /v1/svid",
);

/**
 * The Identity entrypoint's `fetch`: the JWKS and health only. A Worker calling through a
 * binding sets `request.cf` itself, so nothing here attests anyone.
 */
export const bindingApp: IdentityApp = new Hono();
servePublic(bindingApp);
serveErrors(
  bindingApp,
  "through a service binding the identity Worker serves GET /.well-known/jwks.json and GET /health; a Worker's SVID comes from the Identity entrypoint's svid() RPC method, attested by the binding's props",
);
