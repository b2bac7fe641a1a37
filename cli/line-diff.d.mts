// Types of line-diff.mjs, for the TypeScript tests.

/** The hunks of a unified diff from `before` to `after` (no file headers); empty when equal. */
export function unifiedDiff(
  before: string,
  after: string,
  options?: { context?: number },
): string[];
