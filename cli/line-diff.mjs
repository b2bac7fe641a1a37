// A unified line diff (`diff -u` hunks) of two texts, for `meshctl diff`. Resources are small
// and most edits touch a few lines, so the common head and tail are trimmed and the rest is a
// plain longest-common-subsequence table: simple, exact, and fast enough here.

/** Edit script of two line lists: `[{ op: " " | "-" | "+", line }]`. */
function editScript(before, after) {
  let head = 0;
  while (head < before.length && head < after.length && before[head] === after[head]) head++;
  let tail = 0;
  while (
    tail < before.length - head &&
    tail < after.length - head &&
    before[before.length - 1 - tail] === after[after.length - 1 - tail]
  ) {
    tail++;
  }
  const a = before.slice(head, before.length - tail);
  const b = after.slice(head, after.length - tail);
  // lcs[i][j]: length of the longest common subsequence of a[i..] and b[j..].
  const width = b.length + 1;
  const lcs = new Uint32Array((a.length + 1) * width);
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i * width + j] =
        a[i] === b[j]
          ? lcs[(i + 1) * width + j + 1] + 1
          : Math.max(lcs[(i + 1) * width + j], lcs[i * width + j + 1]);
    }
  }
  const script = before.slice(0, head).map((line) => ({ op: " ", line }));
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      script.push({ op: " ", line: a[i++] });
      j++;
    } else if (
      i < a.length &&
      (j === b.length || lcs[(i + 1) * width + j] >= lcs[i * width + j + 1])
    ) {
      // Removals before additions, as diff -u prints a replaced line.
      script.push({ op: "-", line: a[i++] });
    } else {
      script.push({ op: "+", line: b[j++] });
    }
  }
  for (const line of before.slice(before.length - tail)) script.push({ op: " ", line });
  return script;
}

const lines = (text) => (text === "" ? [] : text.replace(/\n$/, "").split("\n"));

/** A hunk's range as `diff -u` writes it: `start,count` (start 0 for an empty side). */
const range = (start, count) => `${count === 0 ? start - 1 : start},${count}`;

/**
 * The hunks of a unified diff from `before` to `after` (no file headers), each change with
 * `context` unchanged lines around it. Empty when the texts are equal.
 */
export function unifiedDiff(before, after, { context = 3 } = {}) {
  const script = editScript(lines(before), lines(after));
  const changed = script
    .map((entry, index) => (entry.op === " " ? -1 : index))
    .filter((i) => i >= 0);
  if (changed.length === 0) return [];
  // Group changes whose context overlaps into one hunk.
  const groups = [];
  for (const index of changed) {
    const last = groups.at(-1);
    if (last && index - last.end <= 2 * context + 1) last.end = index;
    else groups.push({ start: index, end: index });
  }
  // Line numbers on each side of every script entry.
  const oldLine = [];
  const newLine = [];
  let o = 1;
  let n = 1;
  for (const entry of script) {
    oldLine.push(o);
    newLine.push(n);
    if (entry.op !== "+") o++;
    if (entry.op !== "-") n++;
  }
  const out = [];
  for (const group of groups) {
    const from = Math.max(0, group.start - context);
    const to = Math.min(script.length - 1, group.end + context);
    const hunk = script.slice(from, to + 1);
    const oldCount = hunk.filter((entry) => entry.op !== "+").length;
    const newCount = hunk.filter((entry) => entry.op !== "-").length;
    out.push(`@@ -${range(oldLine[from], oldCount)} +${range(newLine[from], newCount)} @@`);
    for (const entry of hunk) out.push(`${entry.op}${entry.line}`);
  }
  return out;
}
