// `meshctl apply`: validate files offline with the router's schemas, then send them to the
// admin API as one all-or-nothing change, and show what changed.
import { noPositionals, outputFormat, wholeNumber } from "../args.mjs";
import { changeLines, changesOf, hasChanges, printStructured } from "../output.mjs";
import { locateIssue, readSources, requireValidSources } from "../sources.mjs";

export const FILE_OPTION = {
  type: "string",
  short: "f",
  multiple: true,
  flags: "-f, --file FILE|DIR",
  help: "a YAML (multi-document) or JSON config file, or a directory: every *.yaml, *.yml and *.json in it, in name order. Repeatable",
};

export const IF_MATCH_OPTION = {
  type: "string",
  flags: "--if-match N",
  help: "change nothing unless the config is still version N (from `meshctl status` or `get`)",
};

export const apply = {
  name: "apply",
  summary: "create or replace resources from files",
  usage: "meshctl apply -f FILE|DIR [--dry-run] [--prune] [--if-match N]",
  description: `
Validates the files offline first, with the same schemas the router and the admin API use and
the service bindings the router's wrangler.toml declares, and prints every issue with its file
and line. Then sends every resource in one POST /v1/apply: all are created or replaced, or
none. Prints the new version, what was added, changed and removed, and the admin API's
warnings (such as references to Services that do not exist).`,
  options: {
    file: FILE_OPTION,
    "dry-run": {
      type: "boolean",
      flags: "--dry-run",
      help: "validate and show what would change; change nothing",
    },
    prune: {
      type: "boolean",
      flags: "--prune",
      help: "make the config exactly these resources: remove every resource the files do not hold",
    },
    "if-match": IF_MATCH_OPTION,
  },
  examples: [
    "meshctl apply -f examples/mesh.yaml --dry-run",
    "meshctl apply -f config/ --prune --if-match 12",
  ],
  async run({ values, positionals, io, client }) {
    noPositionals(positionals, "apply");
    const output = outputFormat(values, ["text", "json", "yaml"], "apply");
    const ifMatch = wholeNumber(values["if-match"], "--if-match", "apply");
    const sources = await readSources(values.file, "apply");
    await requireValidSources(sources, { then: "nothing was sent" });
    const dryRun = values["dry-run"];
    const answer = await client().apply(sources.resources, {
      prune: values.prune,
      dryRun,
      ifMatch,
      locate: (issue) => locateIssue(sources, issue),
    });
    if (printStructured(io, output, answer)) return 0;

    const changes = changesOf(answer);
    const count = `${sources.resources.length} ${sources.resources.length === 1 ? "resource" : "resources"}`;
    if (dryRun) {
      io.print(`✓ ${sources.label}: ${count}, valid`);
      if (hasChanges(changes)) {
        io.print(`would change version ${answer.version}:`);
        for (const line of changeLines(changes)) io.print(line);
      } else {
        io.print(`no changes: version ${answer.version} already holds them`);
      }
    } else if (hasChanges(changes)) {
      io.print(`✓ applied ${count} from ${sources.label}: now version ${answer.version}`);
      for (const line of changeLines(changes)) io.print(line);
    } else {
      io.print(
        `✓ no changes: version ${answer.version} already holds the ${count} of ${sources.label}`,
      );
    }
    for (const warning of answer.warnings ?? []) io.warn(`⚠ ${locateIssue(sources, warning)}`);
    if (dryRun) io.print("dry run: nothing changed");
    return 0;
  },
};
