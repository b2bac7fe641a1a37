// How meshctl shows things: aligned tables (kubectl's plain style), YAML as js-yaml writes it
// (so `get -o yaml` output can be applied again), JSON, ages and the admin API's change lists.
import { dump } from "js-yaml";

/** A value as YAML; several resources as one multi-document stream. */
export function toYaml(value) {
  return dump(value, { noRefs: true, lineWidth: -1 });
}

/** Resources as a multi-document YAML stream, `---` between them. */
export function toYamlDocuments(resources) {
  return resources.map((resource) => toYaml(resource).trimEnd()).join("\n---\n") + "\n";
}

/** A value as indented JSON. */
export const toJson = (value) => `${JSON.stringify(value, null, 2)}\n`;

/** Rows under headers, columns padded to their widest cell and three spaces apart. */
export function table(headers, rows) {
  const cells = [headers, ...rows].map((row) => row.map((cell) => String(cell ?? "")));
  const widths = headers.map((_, c) => Math.max(...cells.map((row) => row[c].length)));
  return cells
    .map((row) =>
      row
        .map((cell, c) => (c === row.length - 1 ? cell : cell.padEnd(widths[c])))
        .join("   ")
        .trimEnd(),
    )
    .join("\n");
}

/** `label: value` lines with the values aligned. */
export function keyValues(pairs) {
  const width = Math.max(...pairs.map(([label]) => label.length)) + 2;
  return pairs.map(([label, value]) => `${`${label}:`.padEnd(width)}${value}`).join("\n");
}

/** How long ago `at` (an ISO time or epoch ms) was, in the largest sensible unit: 4s, 3m, 2h. */
export function age(at, now = Date.now()) {
  const then = typeof at === "number" ? at : Date.parse(at ?? "");
  if (!Number.isFinite(then)) return "?";
  const seconds = Math.max(0, Math.round((now - then) / 1000));
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 120) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h`;
  return `${Math.floor(hours / 24)}d`;
}

/** The admin API's `diff` with every list present. */
export function changesOf(answer) {
  const diff = answer?.diff ?? {};
  const list = (value) => (Array.isArray(value) ? value.map(String) : []);
  return { added: list(diff.added), changed: list(diff.changed), removed: list(diff.removed) };
}

/** Whether a change list changes anything. */
export const hasChanges = (changes) =>
  changes.added.length + changes.changed.length + changes.removed.length > 0;

/** A change list as lines: `+ Kind/name`, `~ Kind/name`, `- Kind/name`. */
export function changeLines(changes, indent = "  ") {
  return [
    ...changes.added.map((key) => `${indent}+ ${key}`),
    ...changes.changed.map((key) => `${indent}~ ${key}`),
    ...changes.removed.map((key) => `${indent}- ${key}`),
  ];
}

/** "1 added, 2 changed, 0 removed". */
export const changeCounts = (changes) =>
  `${changes.added.length} added, ${changes.changed.length} changed, ${changes.removed.length} removed`;

/** A validation issue or warning (`{ path, message }`, or already text) as one line. */
export const issueText = (issue) =>
  typeof issue === "object" && issue !== null ? `${issue.path}: ${issue.message}` : String(issue);

/** Prints an API answer in the format `-o` asks for; false when it asked for none. */
export function printStructured(io, output, value) {
  if (output === "json") io.print(toJson(value).trimEnd());
  else if (output === "yaml") io.print(toYaml(value).trimEnd());
  else return false;
  return true;
}
