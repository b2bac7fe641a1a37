// `meshctl history`: the config's versions, newest first, with who made each and what changed.
import { noPositionals, outputFormat, wholeNumber } from "../args.mjs";
import { age, printStructured, table } from "../output.mjs";

export const history = {
  name: "history",
  summary: "list the config's versions, newest first",
  usage: "meshctl history [--limit N] [-o table|yaml|json]",
  description: `
Every change (apply, delete, rollback) is a version, kept whole; \`meshctl rollback VERSION\`
makes a new version equal to an old one.`,
  options: {
    limit: {
      type: "string",
      flags: "--limit N",
      help: "show at most N versions (default: what the admin API returns)",
    },
  },
  examples: ["meshctl history --limit 5"],
  async run({ values, positionals, io, client }) {
    noPositionals(positionals, "history");
    const output = outputFormat(values, ["table", "yaml", "json"], "history");
    const limit = wholeNumber(values.limit, "--limit", "history", 1);
    const answer = await client().history({ limit });
    if (printStructured(io, output, answer)) return 0;
    const versions = Array.isArray(answer.versions) ? answer.versions : [];
    if (versions.length === 0) {
      io.warn("no versions yet: `meshctl apply -f FILE` makes the first");
      return 0;
    }
    const count = (list) => (Array.isArray(list) ? list.length : 0);
    io.print(
      table(
        ["VERSION", "AGE", "AUTHOR", "CHANGES", "SUMMARY"],
        versions.map((v) => [
          v.version,
          age(v.at),
          v.author ?? "-",
          `+${count(v.added)} ~${count(v.changed)} -${count(v.removed)}`,
          v.summary ?? "",
        ]),
      ),
    );
    return 0;
  },
};
