/**
 * `echo`: the demo and test destination. Answers 200 with JSON of what it received —
 * `{ service, version, method, path, query, headers, body }` — naming itself by the Worker's
 * own name (`echo-v2`) and version (`v2`).
 *
 * A WebSocket upgrade (`Upgrade: websocket`) is accepted, and every message is sent back
 * prefixed with the service name (`echo-v1: hello`).
 *
 * Test headers make it misbehave on request:
 *   X-Echo-Status: <code>       answer with that status instead of 200
 *   X-Echo-Delay-Ms: <ms>       wait that long (at most 60 s) before answering
 *   X-Echo-Retry-After: <s>     add `Retry-After: <s>` to the answer
 *   X-Echo-Fail-Times: <n>      with X-Echo-Key: <key>, misbehave (status, delay, Retry-After)
 *                               only for the first n requests carrying that key, then answer 200
 *                               — a backend that recovers, for retry tests (as the Gateway API
 *                               conformance backend's succeedAfter)
 *   X-Echo-Only: <service>      misbehave only when this instance is that one (`echo-v1`): one
 *                               slow or failing endpoint among several, for balancing tests
 * Every answer says how many requests with its key this instance has seen (`seen`).
 */

const MAX_DELAY_MS = 60_000;
const MAX_KEYS = 10_000;

/** Requests seen per X-Echo-Key, in this isolate (bounded: the oldest key goes first). */
const seenByKey = new Map<string, number>();

function countKey(key: string | null): number {
  if (key === null) return 0;
  const seen = (seenByKey.get(key) ?? 0) + 1;
  seenByKey.delete(key);
  seenByKey.set(key, seen);
  if (seenByKey.size > MAX_KEYS) seenByKey.delete(seenByKey.keys().next().value!);
  return seen;
}

function acceptWebSocket(service: string): Response {
  const { 0: client, 1: server } = new WebSocketPair();
  server.accept();
  server.addEventListener("message", (event) => server.send(`${service}: ${String(event.data)}`));
  return new Response(null, { status: 101, webSocket: client });
}

export default {
  async fetch(request: Request, env: EchoEnv): Promise<Response> {
    const url = new URL(request.url);
    if (request.headers.get("upgrade")?.toLowerCase() === "websocket") {
      return acceptWebSocket(env.SERVICE_NAME);
    }
    const seen = countKey(request.headers.get("x-echo-key"));
    const failTimes = Number(request.headers.get("x-echo-fail-times") ?? "Infinity");
    const only = request.headers.get("x-echo-only");
    const misbehave =
      !(seen > 0 && seen > failTimes) && (only === null || only === env.SERVICE_NAME);
    const delay = misbehave ? Number(request.headers.get("x-echo-delay-ms") ?? "0") : 0;
    if (Number.isFinite(delay) && delay > 0) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(delay, MAX_DELAY_MS)));
    }
    const requested = misbehave ? Number(request.headers.get("x-echo-status") ?? "200") : 200;
    const status =
      Number.isInteger(requested) && requested >= 200 && requested <= 599 ? requested : 200;
    const retryAfter = misbehave ? request.headers.get("x-echo-retry-after") : null;
    const body = request.body ? await request.text() : "";
    const payload = {
      service: env.SERVICE_NAME,
      version: env.VERSION,
      method: request.method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: Object.fromEntries(request.headers),
      host: url.host,
      body,
      seen,
    };
    const headers: Record<string, string> = { "x-echo-service": env.SERVICE_NAME };
    if (retryAfter !== null) headers["retry-after"] = retryAfter;
    return Response.json(payload, { status, headers });
  },
} satisfies ExportedHandler<EchoEnv>;
