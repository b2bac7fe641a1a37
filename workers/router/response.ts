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
