/**
 * Path matching and rewriting with Gateway API semantics. PathPrefix matches whole path
 * elements: `/foo` matches `/foo`, `/foo/` and `/foo/bar`, never `/foobar`.
 */

/** The prefix as matched: a trailing slash is not significant (except for `/` itself). */
export function normalizePrefix(prefix: string): string {
  return prefix.length > 1 && prefix.endsWith("/") ? prefix.slice(0, -1) : prefix;
}

/** True when `path` starts with the path elements of `prefix` (already normalised). */
export function matchesPrefix(path: string, prefix: string): boolean {
  if (prefix === "/") return true;
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || path.charCodeAt(prefix.length) === 47; // '/'
}

/**
 * Replaces the matched `prefix` of `path` by `replacement`, keeping exactly one slash between
 * the replacement and the rest (`/foo/bar` with `/foo` → `/v2` gives `/v2/bar`; → `/` gives `/bar`).
 */
export function replacePrefix(path: string, prefix: string, replacement: string): string {
  const rest = prefix === "/" ? path : path.slice(prefix.length);
  if (rest === "" || rest === "/") {
    return rest === "/" && !replacement.endsWith("/") ? `${replacement}/` : replacement;
  }
  return replacement.endsWith("/") ? replacement + rest.slice(1) : replacement + rest;
}
