/**
 * Gateway API durations (GEP-2257): one to four `<number><unit>` parts, units h, m, s, ms,
 * for example `10s`, `1m30s`, `500ms`. `0s` means "no timeout".
 */

const DURATION_PATTERN = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;
const PART_PATTERN = /([0-9]{1,5})(h|ms|m|s)/g;
const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

/** True when `text` is a valid Gateway API duration. */
export function isDuration(text: string): boolean {
  return DURATION_PATTERN.test(text);
}

/** Parses a Gateway API duration into milliseconds; throws on malformed input. */
export function parseDuration(text: string): number {
  if (!isDuration(text)) throw new Error(`not a duration: ${JSON.stringify(text)}`);
  let total = 0;
  for (const [, amount, unit] of text.matchAll(PART_PATTERN)) {
    total += Number(amount) * (UNIT_MS[unit ?? "ms"] ?? 1);
  }
  return total;
}
