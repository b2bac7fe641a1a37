/**
 * Request bodies of the admin API: read with a size limit, decoded as JSON or YAML (one resource
 * per document), and checked for a shape the rest of the Worker can walk safely — nesting no
 * deeper than MAX_DEPTH and no more than the size limit once YAML aliases are expanded (an alias
 * is a shared reference, so a few of them nested spell an exponentially large value). After
 * this, validation and the store see plain, bounded JSON values.
 */
import { CORE_SCHEMA, loadAll } from "js-yaml";
import { MAX_CONFIG_BYTES } from "../../core/config/limits.ts";
import { AdminError } from "./errors.ts";

/** Deepest nesting of arrays and objects a body may have (a resource needs well under 20). */
export const MAX_DEPTH = 64;

const YAML_TYPES = new Set(["application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"]);

/** True when the request says its body is YAML. */
export function isYaml(contentType: string | null | undefined): boolean {
  const type = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  return YAML_TYPES.has(type);
}

/**
 * The body as text, at most `limit` bytes: read chunk by chunk and abandoned once it passes the
 * limit, so an endless body costs no more than that. Throws `bad_request`.
 */
export async function readBodyText(request: Request, limit = MAX_CONFIG_BYTES): Promise<string> {
  const tooLarge = () =>
    new AdminError("bad_request", `the body is over ${limit} bytes, the most a config may be`);
  if (Number(request.headers.get("content-length") ?? "0") > limit) throw tooLarge();
  if (request.body === null) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    length += value.byteLength;
    if (length > limit) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new AdminError("bad_request", "the body is not UTF-8");
  }
}

/**
 * The documents of a body: one for JSON, one per non-empty document for YAML. Throws
 * `bad_request` saying what is wrong (with the line, for YAML).
 */
export function parseDocuments(text: string, yaml: boolean): unknown[] {
  if (text.trim() === "") throw new AdminError("bad_request", "the body is empty");
  let documents: unknown[];
  if (yaml) {
    try {
      documents = loadAll(text, { schema: CORE_SCHEMA, maxDepth: MAX_DEPTH }).filter(
        (document) => document !== null && document !== undefined,
      );
    } catch (error) {
      const mark = (error as { mark?: { line?: number } }).mark;
      const reason = (error as { reason?: string }).reason ?? (error as Error).message;
      throw new AdminError(
        "bad_request",
        `the body is not valid YAML${mark?.line === undefined ? "" : ` (line ${mark.line + 1})`}: ${String(reason).split("\n")[0]}`,
      );
    }
    if (documents.length === 0) throw new AdminError("bad_request", "the body holds no document");
  } else {
    try {
      documents = [JSON.parse(text) as unknown];
    } catch (error) {
      throw new AdminError(
        "bad_request",
        `the body is not JSON (send Content-Type: application/yaml for YAML): ${(error as Error).message}`,
      );
    }
  }
  for (const document of documents) checkShape(document);
  return documents;
}

/** Keys that would reach an object's prototype if the value were ever merged into another. */
const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);

/** A collection met while walking a body, with the step from its parent. */
interface Frame {
  item: object;
  depth: number;
  parent: Frame | undefined;
  step: string;
}

/** The path from the body's root to `frame`, then `last` (`$.spec.rules[0].__proto__`). */
function pathOf(frame: Frame, last: string): string {
  const steps = [last];
  for (let f: Frame | undefined = frame; f !== undefined; f = f.parent) steps.push(f.step);
  return `$${steps.reverse().join("")}`;
}

/**
 * Refuses a key `__proto__`, `constructor` or `prototype` anywhere, or a value nested deeper than MAX_DEPTH, or larger than the size limit once shared
 * references are counted every time they occur. Walks without recursion and stops at the limit,
 * so the check itself costs at most that much.
 */
export function checkShape(value: unknown, limit = MAX_CONFIG_BYTES): void {
  let budget = limit;
  const spend = (item: unknown) => {
    budget -= typeof item === "string" ? item.length + 2 : 8;
    if (budget < 0) {
      throw new AdminError(
        "bad_request",
        `the body is over ${limit} bytes once its YAML aliases are expanded`,
      );
    }
  };
  spend(value);
  // Only collections are stacked; scalars are paid for where they are found. Each knows its
  // parent, so a refusal can name the path without building one for every value.
  const stack: Frame[] = [];
  if (value !== null && typeof value === "object") {
    stack.push({ item: value, depth: 0, parent: undefined, step: "" });
  }
  while (stack.length > 0) {
    const frame = stack.pop()!;
    const { item, depth } = frame;
    if (depth >= MAX_DEPTH) {
      throw new AdminError("bad_request", `the body is nested deeper than ${MAX_DEPTH} levels`);
    }
    const visit = (child: unknown, step: string) => {
      spend(child);
      if (child !== null && typeof child === "object") {
        stack.push({ item: child, depth: depth + 1, parent: frame, step });
      }
    };
    if (Array.isArray(item)) {
      item.forEach((child, index) => visit(child, `[${index}]`));
    } else {
      for (const key of Object.keys(item)) {
        spend(key);
        if (FORBIDDEN_KEYS.has(key)) {
          throw new AdminError(
            "bad_request",
            `${pathOf(frame, `.${key}`)}: the key ${JSON.stringify(key)} is not allowed anywhere in a resource`,
          );
        }
        visit((item as Record<string, unknown>)[key], `.${key}`);
      }
    }
  }
}

/** The one document of a body that must hold one (PUT, rollback). */
export function singleDocument(documents: readonly unknown[]): unknown {
  if (documents.length !== 1) {
    throw new AdminError(
      "bad_request",
      `the body holds ${documents.length} YAML documents; this endpoint takes one`,
    );
  }
  return documents[0];
}
