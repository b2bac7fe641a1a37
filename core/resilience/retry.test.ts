import { describe, expect, it } from "vitest";
import { compileRetry, isRetryableRequest } from "./retry.ts";

describe("retry policy", () => {
  it("a rule's retry alone: two retries, 25 ms base backoff capped at ten times, no statuses", () => {
    const spec = compileRetry({}, []);
    expect(spec.attempts).toBe(2);
    expect(spec.backoff).toEqual({ baseMs: 25, maxMs: 250, minMs: 0 });
    expect(spec.codes.size).toBe(0);
    expect(spec.onConnectFailure && spec.onTimeout).toBe(true);
    expect(spec.nonIdempotent).toBe(false);
    expect(spec.retryAfterCapMs).toBe(10_000);
  });

  it("keeps attempts: 0 (retries off), the codes, and the rule's backoff as the shortest wait", () => {
    const spec = compileRetry({ attempts: 0, codes: [500, 503], backoffMs: 100 }, []);
    expect(spec.attempts).toBe(0);
    expect([...spec.codes]).toEqual([500, 503]);
    expect(spec.backoff).toEqual({ baseMs: 100, maxMs: 1000, minMs: 100 });
  });

  it("a rule's backoff stays the floor under a policy's jitter base and cap", () => {
    const spec = compileRetry({ backoffMs: 200 }, [{ backoffMs: 10, maxBackoffMs: 50 }]);
    expect(spec.backoff).toEqual({ baseMs: 10, maxMs: 200, minMs: 200 });
  });

  it("a policy alone retries gateway errors, connection failures and timeouts", () => {
    const spec = compileRetry(undefined, [{}]);
    expect([...spec.codes].sort()).toEqual([502, 503, 504]);
    expect(spec.onConnectFailure && spec.onTimeout).toBe(true);
  });

  it("takes each field from the first policy that sets it", () => {
    const spec = compileRetry(undefined, [
      { attempts: 4 },
      { on: ["5xx"], codes: [429], backoffMs: 50 },
      { attempts: 1, backoffMs: 10, maxBackoffMs: 70, maxRetryAfterMs: 0, nonIdempotent: true },
    ]);
    expect(spec.attempts).toBe(4);
    expect(spec.codes.has(429) && spec.codes.has(500) && spec.codes.has(599)).toBe(true);
    expect(spec.codes.size).toBe(101);
    expect(spec.onConnectFailure || spec.onTimeout).toBe(false);
    expect(spec.backoff).toEqual({ baseMs: 50, maxMs: 70, minMs: 0 });
    expect(spec.retryAfterCapMs).toBe(0);
    expect(spec.nonIdempotent).toBe(true);
  });

  it("a rule's codes are the whole list of retried statuses (Gateway API)", () => {
    const spec = compileRetry({ codes: [500] }, [
      { on: ["gateway-error", "timeout"], codes: [429] },
    ]);
    expect([...spec.codes]).toEqual([500]);
    // … and it retries connection failures and timeouts, as a rule's retry always does.
    expect(spec.onTimeout && spec.onConnectFailure).toBe(true);
  });

  it("never lets the backoff cap fall below its base", () => {
    expect(compileRetry({ backoffMs: 500 }, [{ maxBackoffMs: 100 }]).backoff).toEqual({
      baseMs: 500,
      maxMs: 500,
      minMs: 500,
    });
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
