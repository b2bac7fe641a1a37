/**
 * `echo`: the demo and test destination. Answers 200 with JSON of what it received —
 * `{ service, version, method, path, query, headers, body }` — naming itself by the Worker's
 * own name (`echo-v2`) and version (`v2`).
 *
 * A WebSocket upgrade (`Upgrade: websocket`) is accepted, and every message is sent back
 * prefixed with the service name (`echo-v1: hello`).
 *
 * Test headers make it misbehave on request:
 *   X-Echo-Status: <code>    answer with that status instead of 200
 *   X-Echo-Delay-Ms: <ms>    wait that long (at most 60 s) before answering
 */

const MAX_DELAY_MS = 60_000;

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
    const delay = Number(request.headers.get("x-echo-delay-ms") ?? "0");
    if (Number.isFinite(delay) && delay > 0) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(delay, MAX_DELAY_MS)));
    }
    const requested = Number(request.headers.get("x-echo-status") ?? "200");
    const status =
      Number.isInteger(requested) && requested >= 200 && requested <= 599 ? requested : 200;
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
    };
    return Response.json(payload, { status, headers: { "x-echo-service": env.SERVICE_NAME } });
  },
} satisfies ExportedHandler<EchoEnv>;
