import { describe, expect, it } from "vitest";
import { seededRandom } from "./random.ts";
import { continueRequestId, continueTrace, formatTraceparent } from "./trace-context.ts";

const PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

describe("trace context", () => {
  it("continues a valid traceparent with a new span id", () => {
    const trace = continueTrace(PARENT, seededRandom(1));
    expect(trace.continued).toBe(true);
    expect(trace.traceId).toBe("0af7651916cd43dd8448eb211c80319c");
    expect(trace.spanId).not.toBe("b7ad6b7169203331");
    expect(formatTraceparent(trace)).toMatch(
      /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/,
    );
  });

  it("keeps the caller's sampling flag", () => {
    const trace = continueTrace(PARENT.replace(/-01$/, "-00"), seededRandom(1));
    expect(trace.flags).toBe("00");
  });

  it("starts a new trace when the header is missing or malformed", () => {
    for (const bad of [
      null,
      "garbage",
      "00-00000000000000000000000000000000-b7ad6b7169203331-01",
      "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
      "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      `${PARENT}-extra`,
    ]) {
      const trace = continueTrace(bad, seededRandom(2));
      expect(trace.continued, String(bad)).toBe(false);
      expect(trace.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(trace.flags).toBe("01");
    }
  });

  it("accepts a future version with extra fields", () => {
    expect(continueTrace(`01-${PARENT.slice(3)}-ab`, seededRandom(3)).continued).toBe(true);
  });

  it("keeps a sane request id and replaces a hostile one", () => {
    expect(continueRequestId("abc-123", seededRandom(4))).toBe("abc-123");
    const made = continueRequestId("bad id with spaces", seededRandom(4));
    expect(made).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(continueRequestId("x".repeat(201), seededRandom(4))).not.toBe("x".repeat(201));
  });
});
