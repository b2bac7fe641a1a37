/**
 * Retries: runs the try below it (per-try timeout, forward) once, and again while the rule's
 * retry policy, the request, the destination's retry budget and the call's deadline all allow.
 *
 * The policy is the rule's `retry` merged with the BackendPolicies above it
 * (core/routing/call-policy.ts). A try is retried when its response's status is one the policy
 * lists, when the upstream could not be reached or threw (`connect-failure`), or when it exceeded
 * its own timeout (`timeout`) — never when the whole call ran out of time. Only idempotent
 * requests are retried (or one with `Idempotency-Key`, or any when the policy allows
 * non-idempotent retries), and only a body that could be buffered (at most
 * `MAX_REPLAY_BODY_BYTES`) is sent again. Retries spend the backend Service's retry budget. Between tries the
 * layer waits an exponential backoff with full jitter, or what the upstream's `Retry-After` asks
 * (up to a cap), and a failed try's response body is cancelled, not left to leak.
 *
 * Retries happen at one hop only: a call this router retries goes out marked
 * `X-Mesh-Retry: off`, and a router receiving that mark (or a caller sending it, to ask for no
 * retries) makes a single try — so a chain of routers never multiplies retries.
 */
import { MeshError } from "../../../core/errors.ts";
import { retryAfterMs, retryDelay } from "../../../core/resilience/backoff.ts";
import { isRetryableRequest, type RetrySpec } from "../../../core/resilience/retry.ts";
import type { Attempt, AttemptRecord, Layer, MeshCall } from "../call.ts";

/** Request header: `off` asks the mesh to try once (set by a hop that retries, or a caller). */
export const RETRY_HEADER = "x-mesh-retry";
/** Request header on each try this hop sends: 1 for the first, 2 for the first retry, … */
export const ATTEMPT_HEADER = "x-mesh-attempt";
/** Request bodies up to this size are buffered so a retry can send them again. */
export const MAX_REPLAY_BODY_BYTES = 64 * 1024;

type Body =
  { replayable: true; bytes: Uint8Array | null } | { replayable: false; stream: ReadableStream };

/** Reads `stream` into memory if it holds at most `limit` bytes; else hands back an equivalent stream. */
async function bufferBody(stream: ReadableStream<Uint8Array>, limit: number): Promise<Body> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
    if (size > limit) {
      // Too large to replay: send what was read, then the rest, once.
      const rest = new ReadableStream<Uint8Array>({
        start(controller) {
          for (const chunk of chunks) controller.enqueue(chunk);
        },
        async pull(controller) {
          const next = await reader.read();
          if (next.done) controller.close();
          else controller.enqueue(next.value);
        },
        cancel(reason) {
          return reader.cancel(reason);
        },
      });
      return { replayable: false, stream: rest };
    }
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return { replayable: true, bytes };
}

/** The body to send, and whether it can be sent more than once. */
async function requestBody(call: MeshCall): Promise<Body> {
  if (call.body === null) return { replayable: true, bytes: null };
  const declared = Number(call.request.headers.get("content-length"));
  if (Number.isFinite(declared) && declared > MAX_REPLAY_BODY_BYTES) {
    return { replayable: false, stream: call.body };
  }
  return bufferBody(call.body as ReadableStream<Uint8Array>, MAX_REPLAY_BODY_BYTES);
}

function newAttempt(
  call: MeshCall,
  index: number,
  body: BodyInit | null,
  waitedMs: number,
): Attempt {
  const record: AttemptRecord = {
    index,
    startedAt: call.now(),
    service: call.backend!.service!.name,
    endpoint: undefined,
    latencyMs: undefined,
    timeoutMs: undefined,
    deadlineLimited: false,
    learnsLatency: false,
    status: undefined,
    error: undefined,
    waitedMs,
    probe: false,
  };
  call.attempts.push(record);
  const avoid =
    index === 0
      ? NOTHING_TO_AVOID
      : new Set(
          call.attempts.flatMap((a) =>
            a !== record && a.endpoint !== undefined ? [a.endpoint] : [],
          ),
        );
  return { index, body, signal: undefined, avoid, record };
}

const NOTHING_TO_AVOID: ReadonlySet<string> = new Set();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The retry layer, around `tryOnce` (the layers that make one try). */
export function retry(tryOnce: (call: MeshCall, attempt: Attempt) => Promise<Response>): Layer {
  const attemptOnce = async (call: MeshCall, attempt: Attempt): Promise<Response> => {
    const record = attempt.record;
    try {
      const response = await tryOnce(call, attempt);
      record.status = response.status;
      return response;
    } catch (error) {
      record.error = error instanceof MeshError ? error.code : "internal_error";
      throw error;
    } finally {
      record.latencyMs = call.now() - record.startedAt;
    }
  };

  return async (call) => {
    const spec = call.backend!.policy.retry;
    if (spec && spec.attempts > 0) {
      // Every original request to a Service whose calls may be retried earns its share of the
      // budget — a POST tried once, or a call another hop retries, as much as a retried GET.
      call.backendState!.deposit(call.backend!.service!.policy.budget, call.now());
    }
    const offRequested = call.request.headers.get(RETRY_HEADER)?.trim().toLowerCase() === "off";
    if (
      !spec ||
      spec.attempts === 0 ||
      offRequested ||
      !(spec.nonIdempotent || isRetryableRequest(call.request.method, call.request.headers))
    ) {
      if (offRequested) call.headers.set(RETRY_HEADER, "off");
      return attemptOnce(call, newAttempt(call, 0, call.body, 0));
    }
    // This hop retries: the hops after it must not.
    call.headers.set(RETRY_HEADER, "off");
    // Most retried requests have no body: no need to wait on one.
    if (call.body === null) return retryLoop(call, spec, null, attemptOnce);
    const body = await requestBody(call);
    if (!body.replayable) return attemptOnce(call, newAttempt(call, 0, body.stream, 0));
    return retryLoop(call, spec, body.bytes, attemptOnce);
  };
}

async function retryLoop(
  call: MeshCall,
  spec: RetrySpec,
  body: Uint8Array | null,
  attemptOnce: (call: MeshCall, attempt: Attempt) => Promise<Response>,
): Promise<Response> {
  const state = call.backendState!;
  const budget = call.backend!.service!.policy.budget;
  let waitedMs = 0;
  for (let index = 0; ; index++) {
    call.headers.set(ATTEMPT_HEADER, String(index + 1));
    let response: Response | undefined;
    let failure: unknown;
    try {
      response = await attemptOnce(call, newAttempt(call, index, body, waitedMs));
      if (!spec.codes.has(response.status)) return response;
    } catch (error) {
      if (!retriesFailure(spec, error)) throw error;
      failure = error;
    }
    const give = () => {
      if (response) return response;
      throw failure;
    };
    if (index >= spec.attempts) return give();
    const wait = retryDelay(
      { ...spec.backoff, retryAfterCapMs: spec.retryAfterCapMs },
      index,
      response ? retryAfterMs(response.headers.get("retry-after"), call.now()) : undefined,
      call.random,
    );
    if (wait === undefined) {
      call.retryStopped = "retry-after";
      return give();
    }
    if (call.deadline !== undefined && call.now() + wait >= call.deadline) {
      // The call's time runs out before another try could start: a timeout, as the Gateway API
      // specifies, whatever the last try answered.
      call.retryStopped = "deadline";
      await response?.body?.cancel().catch(() => undefined);
      throw new MeshError(
        "upstream_timeout",
        `no response within the request timeout of ${call.backend!.policy.requestTimeoutMs} ms (${index + 1} tries; the last ${response ? `answered ${response.status}` : "failed"})`,
        { destination: call.destination, route: call.rule!.id },
      );
    }
    const breaker = call.backend!.service!.policy.breaker;
    if (breaker && !call.breakerBypass && state.refuses(breaker, call.now())) {
      // The breaker would refuse the next try (a failed probe holds it half-open until the
      // call's outcome is recorded): the caller gets the upstream's answer, not circuit_open.
      call.retryStopped = "breaker";
      return give();
    }
    if (!state.tryWithdraw(budget, call.now())) {
      call.retryStopped = "budget";
      return give();
    }
    // The failed try's answer is not the caller's: let its body go.
    await response?.body?.cancel().catch(() => undefined);
    if (wait > 0) await sleep(wait);
    waitedMs = wait;
  }
}

/**
 * True when the policy retries this failure: a connection failure or exception (`upstream_error`)
 * under `connect-failure`, a try past its own timeout under `timeout` — never the whole call's
 * deadline, nor a refusal by the mesh itself.
 */
function retriesFailure(spec: RetrySpec, error: unknown): boolean {
  if (!(error instanceof MeshError && error.retryable)) return false;
  if (error.code === "upstream_error") return spec.onConnectFailure;
  if (error.code === "upstream_timeout") return spec.onTimeout;
  return false;
}
