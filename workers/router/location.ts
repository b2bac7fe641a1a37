/**
 * Where this isolate runs: the Cloudflare location (colo) of the calls it serves, from
 * `request.cf.colo`, noted once — an isolate runs in one location. Unknown in local development
 * and in tests that set no `cf`. The version reports name it, and the Services' Durable Objects
 * are sharded by it (backend-sync.ts).
 */
export class IsolateLocation {
  /** The colo, once a request has carried one. */
  colo: string | null = null;

  /** Notes the location of a request's call, the first time one is known. */
  seen(request: Request): void {
    if (this.colo !== null) return;
    const colo = (request as Request & { cf?: { colo?: unknown } }).cf?.colo;
    // A colo is a short airport-style code; anything else is not a location to shard by.
    if (typeof colo === "string" && /^[A-Za-z0-9_-]{1,16}$/.test(colo)) this.colo = colo;
  }
}
