// `meshctl rollback`: a new version whose resources are an old version's.
import { outputFormat, wholeNumber } from "../args.mjs";
import { CliError, UsageError } from "../errors.mjs";
import { changeLines, changesOf, issueText, hasChanges, printStructured } from "../output.mjs";
import { IF_MATCH_OPTION } from "./apply.mjs";

export const rollback = {
  name: "rollback",
  summary: "make a new version equal to an old one",
  usage: "meshctl rollback VERSION [--if-match N]",
  description: `
History is never rewritten: the rollback is a new version, numbered above the current one,
whose resources are those of VERSION (\`meshctl history\` lists them).`,
  options: { "if-match": IF_MATCH_OPTION },
  examples: ["meshctl rollback 11", "meshctl rollback 11 --if-match 14"],
  async run({ values, positionals, io, client }) {
    if (positionals.length !== 1) {
      throw new UsageError("rollback needs one VERSION (`meshctl history` lists them)", "rollback");
    }
    const version = wholeNumber(positionals[0], "VERSION", "rollback", 1);
    const output = outputFormat(values, ["text", "json", "yaml"], "rollback");
    const ifMatch = wholeNumber(values["if-match"], "--if-match", "rollback");
    let answer;
    try {
      answer = await client().rollback(version, { ifMatch });
    } catch (error) {
      if (error.code !== "not_found") throw error;
      throw new CliError(`there is no version ${version} to roll back to`, {
        lines: ["`meshctl history` lists the versions there are"],
      });
    }
    if (printStructured(io, output, answer)) return 0;
    const changes = changesOf(answer);
    if (!hasChanges(changes)) {
      io.print(`✓ no changes: version ${answer.version} already equals version ${version}`);
      return 0;
    }
    io.print(`✓ rolled back to version ${version}'s config: now version ${answer.version}`);
    for (const line of changeLines(changes)) io.print(line);
    // The admin API names what each warning is about (`HTTPRoute/echo.spec…`).
    for (const warning of answer.warnings ?? []) io.warn(`⚠ ${issueText(warning)}`);
    return 0;
  },
};
