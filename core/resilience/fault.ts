/**
 * Fault injection (a FaultInjection resource referenced by a route's filter): which calls it
 * applies to — callers, headers — and, for each, whether to hold it for a delay and whether to
 * answer it with an abort instead of calling the backend, each by its own percentage. Decided
 * with the random source passed in, so a test can pin the draws.
 */
import type { RandomSource } from "../random.ts";

export interface FaultSpec {
  /** The FaultInjection resource's name, for the answer's header and the call's outcome. */
  readonly name: string;
  readonly delay: { readonly percent: number; readonly ms: number } | undefined;
  readonly abort: { readonly percent: number; readonly status: number } | undefined;
  /** Callers it applies to; undefined: any. */
  readonly callers: ReadonlySet<string> | undefined;
  /** Header conditions, all of which must hold (lower-case names). */
  readonly headers: readonly (readonly [string, (value: string) => boolean])[];
}

/** What to do to one call. */
export interface FaultDecision {
  readonly delayMs: number;
  /** The status to answer with instead of calling the backend, when aborted. */
  readonly abortStatus: number | undefined;
}

export const NO_FAULT: FaultDecision = { delayMs: 0, abortStatus: undefined };

/** Whether `spec` applies to a call from `caller` with `headers`, and what it does to it. */
export function decideFault(
  spec: FaultSpec,
  caller: string | undefined,
  headers: { get(name: string): string | null },
  random: RandomSource,
): FaultDecision {
  if (spec.callers && (caller === undefined || !spec.callers.has(caller))) return NO_FAULT;
  for (const [name, test] of spec.headers) {
    const value = headers.get(name);
    if (value === null || !test(value)) return NO_FAULT;
  }
  const delayMs = spec.delay && random() * 100 < spec.delay.percent ? spec.delay.ms : 0;
  const abortStatus =
    spec.abort && random() * 100 < spec.abort.percent ? spec.abort.status : undefined;
  return { delayMs, abortStatus };
}
