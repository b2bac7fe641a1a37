/**
 * W3C Trace Context (`traceparent`) and request ids: continue what the caller sent, or start
 * anew. Every hop through the mesh is a new span, so the trace id and flags carry over and the
 * parent id becomes a fresh span id.
 */
import type { RandomSource } from "./random.ts";

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const REQUEST_ID = /^[\x21-\x7e]{1,200}$/;

export interface TraceContext {
  readonly traceId: string;
  /** The span id this hop uses as `parent-id` downstream. */
  readonly spanId: string;
  readonly flags: string;
  /** True when the caller's traceparent was valid and continued. */
  readonly continued: boolean;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** `length` (even) random hex digits, a byte per table lookup (cheaper than toString(16)). */
function randomHex(length: number, random: RandomSource): string {
  let out = "";
  for (let i = 0; i < length; i += 2) out += HEX[(random() * 256) | 0];
  return out;
}

function isAllZero(hex: string): boolean {
  return /^0+$/.test(hex);
}

/** Continues a valid `traceparent` with a new span id, or starts a sampled trace. */
export function continueTrace(header: string | null, random: RandomSource): TraceContext {
  const parsed = header ? TRACEPARENT.exec(header.trim().toLowerCase()) : null;
  let spanId = randomHex(16, random);
  while (isAllZero(spanId)) spanId = randomHex(16, random);
  if (parsed) {
    const [, version, traceId, parentId, flags, rest] = parsed;
    const validVersion = version !== "ff" && (version !== "00" || rest === undefined);
    if (validVersion && !isAllZero(traceId!) && !isAllZero(parentId!)) {
      return { traceId: traceId!, spanId, flags: flags!, continued: true };
    }
  }
  let traceId = randomHex(32, random);
  while (isAllZero(traceId)) traceId = randomHex(32, random);
  return { traceId, spanId, flags: "01", continued: false };
}

/** The `traceparent` value to send downstream. */
export function formatTraceparent(trace: TraceContext): string {
  return `00-${trace.traceId}-${trace.spanId}-${trace.flags}`;
}

/** Keeps a caller's request id when it is printable and short; otherwise makes one. */
export function continueRequestId(header: string | null, random: RandomSource): string {
  if (header && REQUEST_ID.test(header)) return header;
  const hex = randomHex(32, random);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-${((parseInt(hex[16]!, 16) & 3) | 8).toString(16)}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
