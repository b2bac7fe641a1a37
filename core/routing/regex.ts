/**
 * Regular expressions for route matching, in linear time.
 *
 * JavaScript's own RegExp backtracks: a pattern such as `(a+)+$` takes exponential time on
 * `aaaa…a!`, and one such request stalls the isolate and every call in it. Gateway API leaves the
 * regex dialect to the implementation; Envoy (and so Istio and Envoy Gateway) uses RE2, whose
 * automata match in time linear in the input. Meshwork uses RE2 too, through re2js (a pure
 * JavaScript port that runs on Workers), so a pattern written for Envoy means the same here.
 *
 * Linear is not the same as cheap: RE2's cost is (input length) × (program size), so both are
 * bounded — patterns by their compiled program size (as Envoy bounds `max_program_size`), the
 * sum over one destination by a budget, and the input by a maximum length beyond which a value
 * never matches.
 */
import { RE2JS } from "re2js";

/** Longest pattern accepted, in characters (as Gateway API bounds a path value). */
export const MAX_REGEX_LENGTH = 1024;
/** Largest compiled RE2 program accepted for one pattern (roughly one unit per character). */
export const MAX_REGEX_PROGRAM_SIZE = 256;
/**
 * Largest total cost of the patterns one destination's routes use, each pattern costing its
 * program size but at least `MIN_REGEX_COST`: a request may run every one of them, and each run
 * costs time per input character however small the pattern, so this also caps their number (64).
 */
export const MAX_REGEX_COST_PER_DESTINATION = 4096;
/** What the smallest pattern counts toward `MAX_REGEX_COST_PER_DESTINATION`. */
export const MIN_REGEX_COST = 64;
/** Longest value (path, header or query value) a pattern is run against; longer never matches. */
export const MAX_REGEX_SUBJECT_LENGTH = 4096;

/** A compiled, anchored pattern: true when the whole value matches. */
export type RegexTest = ((value: string) => boolean) & { readonly programSize: number };

/** Why `pattern` cannot be used, or undefined when it can. */
export function regexProblem(pattern: string): string | undefined {
  if (pattern.length > MAX_REGEX_LENGTH) {
    return `is ${pattern.length} characters long; the limit is ${MAX_REGEX_LENGTH}`;
  }
  let compiled: RE2JS;
  try {
    compiled = RE2JS.compile(pattern);
  } catch (error) {
    return `is not a valid RE2 regular expression: ${(error as Error).message}`;
  }
  const size = compiled.programSize();
  if (size > MAX_REGEX_PROGRAM_SIZE) {
    return (
      `compiles to an RE2 program of size ${size}; the limit is ${MAX_REGEX_PROGRAM_SIZE} ` +
      "(large counted repetitions such as {100} and long alternations cost the most)"
    );
  }
  return undefined;
}

/**
 * What `pattern` counts toward a destination's regex budget: its program size, at least
 * `MIN_REGEX_COST`. 0 for a pattern RE2 refuses (the schema reports it, with its field).
 */
export function regexCost(pattern: string): number {
  try {
    return Math.max(RE2JS.compile(pattern).programSize(), MIN_REGEX_COST);
  } catch {
    return 0;
  }
}

/**
 * Compiles `pattern` to a whole-value test. The pattern must have passed `regexProblem`
 * (validation does that at the config boundary); a value longer than
 * `MAX_REGEX_SUBJECT_LENGTH` never matches.
 */
export function compileRegex(pattern: string): RegexTest {
  const compiled = RE2JS.compile(pattern);
  const test = (value: string) =>
    value.length <= MAX_REGEX_SUBJECT_LENGTH && compiled.testExact(value);
  return Object.assign(test, { programSize: compiled.programSize() });
}
