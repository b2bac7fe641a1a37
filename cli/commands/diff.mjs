// `meshctl diff`: what `apply` would change, field by field. The admin API says which resources
// an apply would add, change or remove (a dry run, so its own rules decide); the field-level
// lines are a unified diff of the stored and the new resource as YAML, both passed through the
// schemas first (when changed) so defaults the server filled in do not show as changes.
import { MeshResource } from "../../core/config/resources.ts";
import { noPositionals, outputFormat } from "../args.mjs";
import { CliError } from "../errors.mjs";
import { resourceKey } from "../kinds.mjs";
import { unifiedDiff } from "../line-diff.mjs";
import { changeCounts, changesOf, hasChanges, printStructured, toYaml } from "../output.mjs";
import { locateIssue, readSources, requireValidSources } from "../sources.mjs";
import { FILE_OPTION } from "./apply.mjs";

/** A resource as the schemas complete it (defaults filled, keys in schema order) when it parses. */
function normalized(resource) {
  const parsed = MeshResource.safeParse(resource);
  return parsed.success ? parsed.data : resource;
}

/**
 * Both sides of a resource's diff as YAML. A changed resource is compared as the schemas complete
 * it, so a default the server filled in is no change; an added or removed one is shown as
 * written.
 */
function yamlPair(before, after) {
  if (before === undefined) return ["", toYaml(after)];
  if (after === undefined) return [toYaml(before), ""];
  return [toYaml(normalized(before)), toYaml(normalized(after))];
}

export const diff = {
  name: "diff",
  summary: "show what apply would change, field by field",
  usage: "meshctl diff -f FILE|DIR [--prune] [--exit-code]",
  description: `
Validates the files offline, asks the admin API what applying them would change (a dry run:
nothing changes), and prints each added, changed or removed resource as a unified diff of its
YAML: \`-\` lines are the current version's, \`+\` lines the files'.`,
  options: {
    file: FILE_OPTION,
    prune: {
      type: "boolean",
      flags: "--prune",
      help: "also show the resources `apply --prune` would remove",
    },
    "exit-code": {
      type: "boolean",
      flags: "--exit-code",
      help: "exit 1 when there are changes (as `git diff --exit-code`), 0 when none",
    },
  },
  examples: ["meshctl diff -f examples/mesh.yaml", "meshctl diff -f config/ --prune --exit-code"],
  async run({ values, positionals, io, client }) {
    noPositionals(positionals, "diff");
    const output = outputFormat(values, ["text", "json", "yaml"], "diff");
    const sources = await readSources(values.file, "diff");
    await requireValidSources(sources, { then: "nothing was sent" });
    const admin = client();
    const current = await admin.config();
    let answer;
    try {
      // Against the version just read, so the diff and the resources shown belong together.
      answer = await admin.apply(sources.resources, {
        prune: values.prune,
        dryRun: true,
        ifMatch: current.version,
        locate: (issue) => locateIssue(sources, issue),
      });
    } catch (error) {
      if (error.code !== "version_conflict") throw error;
      throw new CliError("the config changed while diffing; run `meshctl diff` again");
    }
    const changes = changesOf(answer);
    if (printStructured(io, output, answer)) {
      return values["exit-code"] && hasChanges(changes) ? 1 : 0;
    }

    if (!hasChanges(changes)) {
      io.print(`no changes: version ${current.version} already holds ${sources.label}`);
      return 0;
    }
    const stored = new Map((current.resources ?? []).map((r) => [resourceKey(r), r]));
    const local = new Map(sources.resources.map((r, i) => [resourceKey(r), i]));
    const where = (key) => {
      const i = local.get(key);
      const origin = sources.origins[i];
      return origin ? `${origin.file}${origin.line === undefined ? "" : `:${origin.line}`}` : "";
    };
    const show = (key, before, after) => {
      io.print(`--- ${key}${before === undefined ? " (absent)" : ` (version ${current.version})`}`);
      io.print(`+++ ${key}${after === undefined ? " (removed)" : ` (${where(key)})`}`);
      const hunks = unifiedDiff(...yamlPair(before, after));
      if (hunks.length === 0) io.print("  (no difference once defaults are filled in)");
      for (const line of hunks) io.print(line);
      io.print("");
    };
    for (const key of changes.changed) {
      show(key, stored.get(key), sources.resources[local.get(key)]);
    }
    for (const key of changes.added) show(key, undefined, sources.resources[local.get(key)]);
    for (const key of changes.removed) show(key, stored.get(key), undefined);
    io.print(`${changeCounts(changes)} (against version ${current.version})`);
    for (const warning of answer.warnings ?? []) io.warn(`⚠ ${locateIssue(sources, warning)}`);
    return values["exit-code"] ? 1 : 0;
  },
};
