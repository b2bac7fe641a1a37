/**
 * `orders`: the demo caller. `POST /orders` (or `GET /orders` for a quick look) charges the order
 * through `env.PAYMENTS` — an ordinary service binding that, without any change to this code,
 * goes through the mesh (see wrangler.toml: it points at the router's Mesh entrypoint).
 * `withMeshContext` passes the mesh's context on when the mesh called orders: the trace, the
 * request id, and the retry mark that stops the router in front of payments from retrying
 * what the router in front of orders already retries.
 */
import { withMeshContext } from "../../sdk/mesh-context.ts";

export default withMeshContext({
  async fetch(request: Request, env: OrdersEnv): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname !== "/orders") {
      return Response.json({ error: "not found", path: url.pathname }, { status: 404 });
    }
    const amount = Number(url.searchParams.get("amount") ?? "42");
    const payment = await env.PAYMENTS.fetch("https://payments/charge", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ amount }),
    });
    const receipt: unknown = await payment.json();
    return Response.json(
      { order: crypto.randomUUID(), amount, paymentStatus: payment.status, payment: receipt },
      { status: payment.ok ? 201 : 502 },
    );
  },
} satisfies ExportedHandler<OrdersEnv>);
