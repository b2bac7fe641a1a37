/**
 * `payments`: the demo destination with a canary. v1 is the stable version, v2 the canary that
 * takes 10% of traffic in the demo config. `POST /charge` with `{ amount }` answers a receipt
 * naming the version that served it; anything else answers 404.
 */

interface ChargeRequest {
  amount?: unknown;
}

export default {
  async fetch(request: Request, env: PaymentsEnv): Promise<Response> {
    const url = new URL(request.url);
    if (request.method !== "POST" || url.pathname !== "/charge") {
      return Response.json({ error: "not found", path: url.pathname }, { status: 404 });
    }
    let charge: ChargeRequest;
    try {
      charge = (await request.json()) as ChargeRequest;
    } catch {
      return Response.json({ error: 'body must be JSON like {"amount": 42}' }, { status: 400 });
    }
    if (typeof charge.amount !== "number" || !(charge.amount > 0)) {
      return Response.json({ error: "amount must be a positive number" }, { status: 400 });
    }
    return Response.json({
      service: env.SERVICE_NAME,
      version: env.VERSION,
      chargeId: crypto.randomUUID(),
      amount: charge.amount,
      caller: request.headers.get("x-mesh-caller"),
      requestId: request.headers.get("x-request-id"),
    });
  },
} satisfies ExportedHandler<PaymentsEnv>;
