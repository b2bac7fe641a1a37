import { describe, expect, it } from "vitest";
import { compileRetry, isRetryableRequest } from "./retry.ts";

describe("retry policy", () => {
  it("defaults to two retries and a 25 ms base backoff capped at ten times the base", () => {
    const spec = compileRetry({});
    expect(spec.attempts).toBe(2);
    expect(spec.backoff).toEqual({ baseMs: 25, maxMs: 250 });
    expect(spec.codes.size).toBe(0);
  });

  it("keeps attempts: 0 (retries off), the codes and the backoff given", () => {
    const spec = compileRetry({ attempts: 0, codes: [500, 503], backoffMs: 100 });
    expect(spec.attempts).toBe(0);
    expect([...spec.codes]).toEqual([500, 503]);
    expect(spec.backoff).toEqual({ baseMs: 100, maxMs: 1000 });
  });

  it("retries idempotent methods only, unless the request carries Idempotency-Key", () => {
    const none = new Headers();
    for (const m of ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]) {
      expect(isRetryableRequest(m, none), m).toBe(true);
    }
    for (const m of ["POST", "PATCH", "PROPFIND"])
      expect(isRetryableRequest(m, none), m).toBe(false);
    expect(isRetryableRequest("POST", new Headers({ "idempotency-key": "order-42" }))).toBe(true);
  });
});
