/**
 * The one spelling of a path that authorization compares, so that no other spelling of a path
 * walks past a DENY. The router's `normalizePath` already gives the path the backend receives
 * (dot segments resolved, unreserved escapes decoded, slashes merged); this goes further, on
 * purpose, because the backend behind the mesh may read a path more loosely than the mesh does:
 *
 *  1. every valid `%XX` escape is decoded (as UTF-8 where the bytes are valid UTF-8; other
 *     escapes are kept as written): backends and frameworks that decode `%2F`, `%2E` or `%5C`
 *     before routing would otherwise see `/admin` in `/%2Fadmin` or `/x/%2E%2E/admin`;
 *  2. `\` becomes `/`: browsers, the WHATWG URL parser and some servers treat it as a separator;
 *  3. each segment's matrix parameters (from `;` to the end of the segment) are dropped: Java
 *     servlet containers strip them before matching (`/admin;jsessionid=1` is `/admin` there);
 *  4. runs of `/` are merged: most routers ignore empty segments;
 *  5. `.` and `..` segments are resolved, never above the root: servers resolve them;
 *  6. the path is lower-cased: many routers (and file systems) are case-insensitive;
 *  7. a trailing `/` is dropped (except for `/` itself): many routers treat `/admin/` as `/admin`.
 *
 * Decoding is done once: `%2561` becomes `%61`, not `a`, as Envoy and the router decode once.
 * Policy path patterns go through the same steps when they are compiled, so `/Admin/` in a
 * policy is `/admin`. Matching more spellings than the backend does can only make a DENY
 * catch more; an ALLOW written for `/public` also admits `/PUBLIC/`, which is the price of a
 * comparison the backend cannot disagree with in the DENY direction.
 */

/** What a scan found the path needs beyond being returned as is. */
const NEEDS_LOWER_CASE = 1;
const NEEDS_TRAILING_SLASH_REMOVED = 2;
const NEEDS_FULL_PASS = 4;

/**
 * One scan over the path. The router hands over normalised paths, so most need nothing, or
 * only lower-casing: those skip the split-and-join pass.
 */
function scan(path: string): number {
  if (path.charCodeAt(0) !== 47) return NEEDS_FULL_PASS; // not starting with '/'
  let needs = 0;
  for (let i = 0; i < path.length; i++) {
    const code = path.charCodeAt(i);
    if (code === 37 || code === 92 || code === 59) return NEEDS_FULL_PASS; // % \ ;
    if ((code >= 65 && code <= 90) || code > 127) {
      needs |= NEEDS_LOWER_CASE;
    } else if (code === 47 && startsEmptyOrDotSegment(path, i + 1)) {
      return NEEDS_FULL_PASS;
    }
  }
  if (path.length > 1 && path.charCodeAt(path.length - 1) === 47) {
    needs |= NEEDS_TRAILING_SLASH_REMOVED;
  }
  return needs;
}

/** True when the segment starting at `start` is empty (a repeated `/`), `.` or `..`. */
function startsEmptyOrDotSegment(path: string, start: number): boolean {
  const first = path.charCodeAt(start);
  if (first === 47) return true; // '//'
  if (first !== 46) return false; // not '.'
  const second = path.charCodeAt(start + 1);
  if (Number.isNaN(second) || second === 47) return true; // '.'
  if (second !== 46) return false;
  const third = path.charCodeAt(start + 2);
  return Number.isNaN(third) || third === 47; // '..'
}

function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48; // 0-9
  if (code >= 65 && code <= 70) return code - 55; // A-F
  if (code >= 97 && code <= 102) return code - 87; // a-f
  return -1;
}

/**
 * The allowed range of a UTF-8 sequence's second byte, by lead byte (RFC 3629 §4: this rules
 * out overlong forms, surrogates and code points above U+10FFFF). Later bytes are 80–BF.
 */
function secondByteRange(lead: number): readonly [number, number] | undefined {
  if (lead >= 0xc2 && lead <= 0xdf) return [0x80, 0xbf];
  if (lead === 0xe0) return [0xa0, 0xbf];
  if (lead === 0xed) return [0x80, 0x9f];
  if (lead >= 0xe1 && lead <= 0xef) return [0x80, 0xbf];
  if (lead === 0xf0) return [0x90, 0xbf];
  if (lead >= 0xf1 && lead <= 0xf3) return [0x80, 0xbf];
  if (lead === 0xf4) return [0x80, 0x8f];
  return undefined;
}

function sequenceLength(lead: number): number {
  return lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
}

/** The length of the valid UTF-8 sequence starting at `bytes[at]`, or 0 when there is none. */
function validSequenceAt(bytes: readonly number[], at: number): number {
  const lead = bytes[at]!;
  if (lead < 0x80) return 1;
  const range = secondByteRange(lead);
  if (range === undefined) return 0;
  const length = sequenceLength(lead);
  if (at + length > bytes.length) return 0;
  const second = bytes[at + 1]!;
  if (second < range[0] || second > range[1]) return 0;
  for (let k = at + 2; k < at + length; k++) {
    const next = bytes[k]!;
    if (next < 0x80 || next > 0xbf) return 0;
  }
  return length;
}

/**
 * Decodes a run of escapes (`bytes`, written at `text[start…]`, three characters each): valid
 * UTF-8 sequences become their characters, every other byte keeps its escape as written.
 */
function decodeEscapeRun(text: string, start: number, bytes: readonly number[]): string {
  let out = "";
  for (let k = 0; k < bytes.length;) {
    const length = validSequenceAt(bytes, k);
    if (length === 0) {
      out += text.slice(start + 3 * k, start + 3 * k + 3);
      k += 1;
      continue;
    }
    let codePoint = length === 1 ? bytes[k]! : bytes[k]! & (0xff >> (length + 1));
    for (let j = k + 1; j < k + length; j++) codePoint = (codePoint << 6) | (bytes[j]! & 0x3f);
    out += String.fromCodePoint(codePoint);
    k += length;
  }
  return out;
}

/** Step 1: decodes every valid `%XX` escape, once; `%` not followed by two hex digits stays. */
function percentDecode(text: string): string {
  let out = "";
  let copiedUpTo = 0;
  let at = text.indexOf("%");
  while (at >= 0) {
    const runStart = at;
    const bytes: number[] = [];
    while (text.charCodeAt(at) === 37) {
      const high = hexValue(text.charCodeAt(at + 1));
      const low = hexValue(text.charCodeAt(at + 2));
      if (high < 0 || low < 0) break;
      bytes.push(high * 16 + low);
      at += 3;
    }
    if (bytes.length === 0) {
      at = text.indexOf("%", at + 1);
      continue;
    }
    out += text.slice(copiedUpTo, runStart) + decodeEscapeRun(text, runStart, bytes);
    copiedUpTo = at;
    at = text.indexOf("%", at);
  }
  return copiedUpTo === 0 ? text : out + text.slice(copiedUpTo);
}

/** Step 3: a segment without its matrix parameters. */
function withoutParameters(segment: string): string {
  const semicolon = segment.indexOf(";");
  return semicolon < 0 ? segment : segment.slice(0, semicolon);
}

/** Steps 1–2: the path's text with escapes decoded and every separator a `/`. */
function decodedText(text: string): string {
  const decoded = text.includes("%") ? percentDecode(text) : text;
  return decoded.includes("\\") ? decoded.replaceAll("\\", "/") : decoded;
}

/**
 * The canonical form of a URL path (path only, no query) for authorization: see the module
 * comment for the seven steps and why each exists. Always starts with `/`; never ends with one
 * except for `/` itself. Returns `path` itself when it is already canonical.
 */
export function canonicalAuthorizationPath(path: string): string {
  const needs = scan(path);
  if (needs === 0) return path;
  if ((needs & NEEDS_FULL_PASS) === 0) {
    const trimmed = needs & NEEDS_TRAILING_SLASH_REMOVED ? path.slice(0, -1) : path;
    return needs & NEEDS_LOWER_CASE ? trimmed.toLowerCase() : trimmed;
  }
  const segments: string[] = [];
  for (const raw of decodedText(path).split("/")) {
    const segment = withoutParameters(raw);
    if (segment === "" || segment === ".") continue;
    if (segment === "..") {
      segments.pop();
      continue;
    }
    segments.push(segment);
  }
  return `/${segments.join("/")}`.toLowerCase();
}

/**
 * True when a prefix pattern's text (what precedes its `*`) ends inside a path segment, so the
 * pattern is a string prefix (`/adm*` matches `/admin`), not a segment prefix: `/admin/*`,
 * `/admin/.*` and `/admin;*` all end on a segment boundary once canonical, and match `/admin`
 * and what lies under it.
 */
export function endsInsideSegment(prefix: string): boolean {
  const text = decodedText(prefix);
  const last = text.slice(text.lastIndexOf("/") + 1);
  return last !== "" && last !== "." && last !== ".." && !last.includes(";");
}

/**
 * The canonical form of a suffix pattern's text (what follows its `*`): steps 1–4, 6 and 7,
 * and whole `.` segments dropped. Its first segment may be partial (`.json`), so it is not made
 * absolute. A whole `..` segment cannot be resolved without the path before it and is kept,
 * so such a pattern matches no canonical path. An empty result matches every path.
 */
export function canonicalPathSuffix(suffix: string): string {
  const text = decodedText(suffix);
  const absolute = text.startsWith("/");
  const segments: string[] = [];
  text.split("/").forEach((raw, index) => {
    const segment = withoutParameters(raw);
    const whole = absolute || index > 0;
    if (segment === "" || (whole && segment === ".")) return;
    segments.push(segment);
  });
  const joined = segments.join("/");
  return (absolute && joined !== "" ? `/${joined}` : joined).toLowerCase();
}
