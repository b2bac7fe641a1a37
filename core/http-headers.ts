/**
 * Header hygiene at a proxy hop (RFC 9110 §7.6.1): hop-by-hop headers describe one connection
 * and must not be forwarded, including any header the `Connection` header names.
 */

const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
];

/** Removes hop-by-hop headers in place; returns true when anything was removed. */
export function stripHopByHop(headers: Headers): boolean {
  let removed = false;
  const connection = headers.get("connection");
  if (connection) {
    for (const name of connection.split(",")) {
      const trimmed = name.trim();
      if (trimmed && headers.has(trimmed)) {
        headers.delete(trimmed);
        removed = true;
      }
    }
  }
  for (const name of HOP_BY_HOP) {
    if (headers.has(name)) {
      headers.delete(name);
      removed = true;
    }
  }
  return removed;
}

/** True when any hop-by-hop header is present (cheap check before copying a response). */
export function hasHopByHop(headers: Headers): boolean {
  for (const name of HOP_BY_HOP) if (headers.has(name)) return true;
  return false;
}
