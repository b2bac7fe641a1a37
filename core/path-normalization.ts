/**
 * One path normalisation for the whole mesh: route matching, the reserved `/.mesh/` prefix and
 * authorization all see the same path, and it is the path the backend receives. Without
 * it, `/%61dmin`, `//admin` and `/admin/./x` are different strings from `/admin`, and a rule
 * written for `/admin` can be walked around.
 *
 * The rules follow RFC 3986 §6.2.2 and Envoy's `normalize_path` + `merge_slashes`:
 *  1. `\` is a separator, as browsers and the WHATWG URL parser treat it;
 *  2. percent-encoded unreserved characters (`A–Z a–z 0–9 - . _ ~`) are decoded, and every other
 *     percent-encoding is kept, with upper-case hex (`%c3%a9` → `%C3%A9`);
 *  3. an encoded `/` or `\` (`%2F`, `%5C`) is refused by default, because a backend may decode it
 *     into a separator the mesh never saw; `escapedSlashes: "keep"` passes it through, still
 *     encoded, as part of its segment;
 *  4. `%` not followed by two hex digits is refused, and so is an encoded control character
 *     (`%00`–`%1F`, `%7F`): no resource is named with one, and a backend that decodes `%00`
 *     may cut the path there (`/admin%00.png` read as `/admin`);
 *  5. `.` segments are removed and `..` removes the segment before it (never above the root);
 *  6. runs of `/` are merged into one; a trailing `/` is kept.
 * Case is kept: paths are case-sensitive. The query string is not touched.
 */

/** What to do with `%2F` and `%5C` in a path. */
export type EscapedSlashes = "reject" | "keep";

export type NormalizedPath = { ok: true; path: string } | { ok: false; reason: string };

const HEX = "0123456789ABCDEF";

function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48; // 0-9
  if (code >= 65 && code <= 70) return code - 55; // A-F
  if (code >= 97 && code <= 102) return code - 87; // a-f
  return -1;
}

function isUnreserved(code: number): boolean {
  return (
    (code >= 65 && code <= 90) || // A-Z
    (code >= 97 && code <= 122) || // a-z
    (code >= 48 && code <= 57) || // 0-9
    code === 45 || // -
    code === 46 || // .
    code === 95 || // _
    code === 126 // ~
  );
}

/** True when `path` is already in normal form (the common case: no scan beyond this). */
function isPlain(path: string): boolean {
  if (path.charCodeAt(0) !== 47) return false;
  for (let i = 0; i < path.length; i++) {
    const code = path.charCodeAt(i);
    if (code === 37 || code === 92) return false; // % or \
    if (code === 47) {
      const next = path.charCodeAt(i + 1);
      if (next === 47) return false; // //
      if (next === 46) {
        // /. followed by end, / or another . (and then end or /) is a dot segment.
        const after = path.charCodeAt(i + 2);
        if (Number.isNaN(after) || after === 47) return false;
        if (after === 46) {
          const third = path.charCodeAt(i + 3);
          if (Number.isNaN(third) || third === 47) return false;
        }
      }
    }
  }
  return true;
}

/** Decodes the unreserved escapes of one segment; undefined reason when it is usable. */
function decodeSegment(
  segment: string,
  escapedSlashes: EscapedSlashes,
): { ok: true; value: string } | { ok: false; reason: string } {
  if (!segment.includes("%")) return { ok: true, value: segment };
  let out = "";
  for (let i = 0; i < segment.length; i++) {
    const ch = segment[i]!;
    if (ch !== "%") {
      out += ch;
      continue;
    }
    const hi = hexValue(segment.charCodeAt(i + 1));
    const lo = hexValue(segment.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) {
      return { ok: false, reason: `malformed percent-encoding '${segment.slice(i, i + 3)}'` };
    }
    const byte = hi * 16 + lo;
    if (byte < 0x20 || byte === 0x7f) {
      return {
        ok: false,
        reason: `an encoded control character (${segment.slice(i, i + 3)}) is not allowed in the path`,
      };
    }
    if (isUnreserved(byte)) {
      out += String.fromCharCode(byte);
    } else if ((byte === 0x2f || byte === 0x5c) && escapedSlashes === "reject") {
      return {
        ok: false,
        reason: `an encoded '${byte === 0x2f ? "/" : "\\"}' (${segment.slice(i, i + 3)}) is not allowed in the path`,
      };
    } else {
      out += `%${HEX[hi]}${HEX[lo]}`;
    }
    i += 2;
  }
  return { ok: true, value: out };
}

/** Normalises a URL path (what `URL.pathname` holds); see the module comment for the rules. */
export function normalizePath(path: string, escapedSlashes: EscapedSlashes): NormalizedPath {
  if (isPlain(path)) return { ok: true, path };
  const raw = path.includes("\\") ? path.replaceAll("\\", "/") : path;
  const parts = raw.split("/");
  const out: string[] = [];
  let trailingSlash = false;
  // parts[0] is what precedes the first '/': empty for an absolute path.
  for (let i = 0; i < parts.length; i++) {
    const last = i === parts.length - 1;
    const decoded = decodeSegment(parts[i]!, escapedSlashes);
    if (!decoded.ok) return decoded;
    const segment = decoded.value;
    if (segment === "" || segment === ".") {
      if (last) trailingSlash = true;
      continue;
    }
    if (segment === "..") {
      out.pop();
      if (last) trailingSlash = true;
      continue;
    }
    out.push(segment);
  }
  if (out.length === 0) return { ok: true, path: "/" };
  return { ok: true, path: `/${out.join("/")}${trailingSlash ? "/" : ""}` };
}
