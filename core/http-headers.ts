/**
 * Header hygiene at a proxy hop (RFC 9110 §7.6.1): hop-by-hop headers describe one connection
 * and must not be forwarded, including any header the `Connection` header names. Written as
 * single passes over the headers: at a mesh hop every call pays for this, so it reads each
 * header once rather than asking for each hop-by-hop name in turn.
 */

/** The hop-by-hop headers (lower case). */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** The names a `Connection` header lists (lower case); empty for none. */
export function connectionListed(connection: string | null): ReadonlySet<string> {
  if (!connection) return EMPTY;
  const names = new Set<string>();
  for (const name of connection.split(",")) {
    const trimmed = name.trim().toLowerCase();
    if (trimmed) names.add(trimmed);
  }
  return names;
}

const EMPTY: ReadonlySet<string> = new Set();

/**
 * Copies `source` without hop-by-hop headers, without the names `Connection` lists, and without
 * any name in `drop`.
 */
export function copyForwardable(source: Headers, drop: ReadonlySet<string> = EMPTY): Headers {
  const listed = connectionListed(source.get("connection"));
  const out = new Headers();
  for (const [name, value] of source) {
    if (HOP_BY_HOP.has(name) || listed.has(name) || drop.has(name)) continue;
    out.append(name, value);
  }
  return out;
}

/** Removes hop-by-hop headers in place (for responses, which are usually clean). */
export function stripHopByHop(headers: Headers): void {
  const listed = connectionListed(headers.get("connection"));
  const found: string[] = [];
  for (const name of headers.keys()) {
    if (HOP_BY_HOP.has(name) || listed.has(name)) found.push(name);
  }
  for (const name of found) headers.delete(name);
}

/** True when any hop-by-hop header is present (a cheap check before copying a response). */
export function hasHopByHop(headers: Headers): boolean {
  for (const name of headers.keys()) if (HOP_BY_HOP.has(name)) return true;
  return false;
}
