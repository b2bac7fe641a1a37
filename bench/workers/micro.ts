/**
 * Bench micro (workerd): runs one of the router's hot-path pieces `n` times per request, so
 * bench/run.mjs can read what it costs on workerd itself (workerd's CPU time from /proc, over
 * many calls) rather than only in Node. The route tables are compiled from the same snapshot the
 * router serves (the SNAPSHOT JSON binding), as the router compiles them.
 *
 *   GET /?case=<name>&n=<calls>   → the number of calls that returned true
 */
import { parseEntry } from "../../core/config/snapshot.ts";
import { normalizePath } from "../../core/path-normalization.ts";
import { compileRouteTable, matchRoute, type RouteTable } from "../../core/routing/route-table.ts";

interface MicroEnv {
  SNAPSHOT: Record<string, string>;
}

const tables = new Map<string, RouteTable>();

function table(env: MicroEnv, destination: string): RouteTable {
  let compiled = tables.get(destination);
  if (!compiled) {
    const index = JSON.parse(env.SNAPSHOT["mesh/index"]!) as {
      destinations: Record<string, string>;
    };
    const key = index.destinations[destination]!;
    const entry = parseEntry(JSON.parse(env.SNAPSHOT[key]!), key);
    if (!entry.ok) throw new Error(JSON.stringify(entry.issues));
    compiled = compileRouteTable(entry.value, { hasBinding: () => true });
    tables.set(destination, compiled);
  }
  return compiled;
}

export default {
  fetch(request: Request, env: MicroEnv): Response {
    const url = new URL(request.url);
    const n = Number(url.searchParams.get("n") ?? "1");
    const facts = {
      method: "GET",
      path: "/bench/orders",
      headers: request.headers,
      query: url.searchParams,
    };
    let run: () => boolean;
    switch (url.searchParams.get("case")) {
      case "baseline":
        run = () => facts.path.length > 0;
        break;
      case "normalize-plain":
        run = () => normalizePath("/bench/orders", "reject").ok;
        break;
      case "normalize-messy":
        run = () => normalizePath("/bench//%6Frders/./x", "reject").ok;
        break;
      case "match-mesh": {
        const t = table(env, "echo");
        run = () => matchRoute(t, facts) !== undefined;
        break;
      }
      case "match-mesh-regex": {
        const t = table(env, "echo-re");
        run = () => matchRoute(t, facts) !== undefined;
        break;
      }
      default:
        return new Response("unknown case", { status: 400 });
    }
    let hits = 0;
    for (let i = 0; i < n; i++) if (run()) hits++;
    return new Response(String(hits));
  },
} satisfies ExportedHandler<MicroEnv>;
