/**
 * The HTTPRoute filters' effects on headers and URLs, as pure functions over web-standard
 * `Headers` and `URL`. The router decides when to apply them; these decide what they do.
 */
import { replacePrefix } from "./path.ts";
import type {
  CompiledMatch,
  HeaderEdits,
  PathModifier,
  RedirectSpec,
  RewriteSpec,
} from "./route-table.ts";

/** Applies header edits in Gateway API order: set, then add, then remove. */
export function applyHeaderEdits(headers: Headers, edits: HeaderEdits): void {
  for (const [name, value] of edits.set) headers.set(name, value);
  for (const [name, value] of edits.add) headers.append(name, value);
  for (const name of edits.remove) headers.delete(name);
}

function modifiedPath(
  path: string,
  modifier: PathModifier,
  match: CompiledMatch | undefined,
): string {
  if (modifier.type === "ReplaceFullPath") return modifier.value;
  // Validation guarantees ReplacePrefixMatch only on PathPrefix matches; a rule without
  // matches is an implicit PathPrefix "/".
  const prefix = match?.pathType === "PathPrefix" ? match.pathValue : "/";
  return replacePrefix(path, prefix, modifier.value);
}

/** The URL a URLRewrite filter sends the request to (query string kept). */
export function rewriteUrl(url: URL, rewrite: RewriteSpec, match: CompiledMatch | undefined): URL {
  const next = new URL(url);
  if (rewrite.hostname !== undefined) next.hostname = rewrite.hostname;
  if (rewrite.path !== undefined) next.pathname = modifiedPath(url.pathname, rewrite.path, match);
  return next;
}

const DEFAULT_PORT: Record<string, string> = { "http:": "80", "https:": "443" };

/**
 * The `Location` of a RequestRedirect. Unset parts come from the request; when the scheme
 * changes and no port is given, the port is dropped (the new scheme's well-known port).
 */
export function redirectLocation(
  url: URL,
  redirect: RedirectSpec,
  match: CompiledMatch | undefined,
): string {
  const next = new URL(url);
  if (redirect.scheme !== undefined) {
    next.protocol = `${redirect.scheme}:`;
    if (redirect.port === undefined) next.port = "";
  }
  if (redirect.hostname !== undefined) next.hostname = redirect.hostname;
  if (redirect.port !== undefined) {
    next.port = DEFAULT_PORT[next.protocol] === String(redirect.port) ? "" : String(redirect.port);
  }
  if (redirect.path !== undefined) next.pathname = modifiedPath(url.pathname, redirect.path, match);
  return next.toString();
}
