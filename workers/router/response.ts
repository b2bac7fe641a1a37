/**
 * Response shaping shared by layers. Responses from bindings and fetch have immutable headers,
 * so edits copy the response (the body stream is passed through, not read).
 */
import { applyHeaderEdits } from "../../core/routing/filters.ts";
import type { HeaderEdits } from "../../core/routing/route-table.ts";

/** `response` with header edits applied. */
export function withHeaderEdits(response: Response, edits: HeaderEdits): Response {
  const edited = new Response(response.body, response);
  applyHeaderEdits(edited.headers, edits);
  return edited;
}

/**
 * `response` with `headers` set (replacing any the upstream sent) and, when given, `vary` added to
 * its Vary header. An accepted WebSocket is passed back untouched (its socket travels with it).
 */
export function withHeaders(
  response: Response,
  headers: readonly (readonly [string, string])[],
  vary?: string,
): Response {
  if (response.webSocket) return response;
  const edited = new Response(response.body, response);
  for (const [name, value] of headers) edited.headers.set(name, value);
  if (vary === undefined) return edited;
  const current = edited.headers.get("vary");
  if (!current) edited.headers.set("vary", vary);
  else if (!current.split(",").some((v) => v.trim().toLowerCase() === vary.toLowerCase())) {
    edited.headers.set("vary", `${current}, ${vary}`);
  }
  return edited;
}
