/**
 * Bench KV: the service behind the router's MESH_CONFIG binding. workerd's `kvNamespace` binding
 * turns `get(key)` into `GET https://fake-host/<encodeURIComponent(key)>?urlencoded=true` against
 * this Worker, so the router runs its real KV code path against the snapshot bench/run.mjs built
 * (handed in as the SNAPSHOT JSON binding: { key: value }).
 *
 * `GET /.bench/reads` on its own socket answers how many KV reads it has served, an independent
 * count of the router's KV traffic.
 */
interface KvEnv {
  SNAPSHOT: Record<string, string>;
}

let reads = 0;

export default {
  fetch(request: Request, env: KvEnv): Response {
    const url = new URL(request.url);
    if (url.pathname === "/.bench/reads") return Response.json({ reads });
    if (request.method !== "GET") return new Response("bench KV is read-only", { status: 405 });
    reads++;
    const raw = url.pathname.slice(1);
    const key = url.searchParams.get("urlencoded") === "true" ? decodeURIComponent(raw) : raw;
    const value = Object.hasOwn(env.SNAPSHOT, key) ? env.SNAPSHOT[key] : undefined;
    return value === undefined ? new Response(null, { status: 404 }) : new Response(value);
  },
} satisfies ExportedHandler<KvEnv>;
