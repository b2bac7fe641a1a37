/**
 * Where a request is going, read defensively: the destination Service named by the `Host`
 * header, and the URL with its path normalised (path-normalization.ts). Anything malformed — a
 * Host with a space or an impossible port, a URL that does not parse, a path with an encoded
 * slash — is a `bad_request` with a message saying what was wrong, never an exception.
 */
import { MeshError } from "./errors.ts";
import { normalizePath, type EscapedSlashes } from "./path-normalization.ts";

/** `name(.name)*[.]` or `[IPv6]`, then an optional `:port`. */
const HOST =
  /^([A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?$/;
const SERVICE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const MAX_HOST_LENGTH = 255 + 6;

/** Shows a client-supplied value in an error message: bounded, printable. */
function shown(value: string): string {
  const printable = value.replace(/[^\x20-\x7e]/g, "?");
  return JSON.stringify(printable.length > 64 ? `${printable.slice(0, 64)}…` : printable);
}

/**
 * The destination Service a Host header names: its first label, lower-cased (`payments`,
 * `Payments.mesh:8787` → `payments`). "" when the host is well formed but names no Service (an
 * IP address, a label that is not a Service name). Throws `bad_request` for a malformed host.
 */
export function destinationFromHost(host: string): string {
  const parsed = host.length <= MAX_HOST_LENGTH ? HOST.exec(host) : null;
  if (!parsed || (parsed[2] !== undefined && Number(parsed[2]) > 65535)) {
    throw new MeshError(
      "bad_request",
      `the Host header ${shown(host)} is not a valid host[:port] (the first label names the destination service, for example 'payments' or 'payments.mesh:8787')`,
    );
  }
  const name = parsed[1]!.split(".")[0]!.toLowerCase();
  return SERVICE_NAME.test(name) && name.length <= 63 ? name : "";
}

/** The mesh's own path prefix, on every host: nothing under it is forwarded. */
export const RESERVED_PREFIX = "/.mesh/";

/** True for a (normalised) path under the reserved `/.mesh/` prefix. */
export function isReservedPath(path: string): boolean {
  return path.startsWith(RESERVED_PREFIX);
}

/** Parses a request URL, or throws `bad_request`. */
export function parseRequestUrl(url: string): URL {
  try {
    return new URL(url);
  } catch {
    throw new MeshError("bad_request", `the request URL ${shown(url)} cannot be parsed`);
  }
}

/** Replaces `url`'s path by its normal form, or throws `bad_request` saying why it cannot. */
export function normalizeUrlPath(url: URL, escapedSlashes: EscapedSlashes): URL {
  const normalized = normalizePath(url.pathname, escapedSlashes);
  if (!normalized.ok) {
    throw new MeshError("bad_request", `the request path is refused: ${normalized.reason}`);
  }
  if (normalized.path !== url.pathname) url.pathname = normalized.path;
  return url;
}
