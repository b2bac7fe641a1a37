// `meshctl delete`: remove one resource, as a new version.
import { outputFormat, wholeNumber } from "../args.mjs";
import { CliError, UsageError } from "../errors.mjs";
import { kindAndName } from "../kinds.mjs";
import { changeLines, changesOf, issueText, printStructured } from "../output.mjs";
import { IF_MATCH_OPTION } from "./apply.mjs";

export const deleteCommand = {
  name: "delete",
  summary: "delete one resource",
  usage: "meshctl delete KIND NAME [--if-match N]",
  description: `
Deletes the resource (KIND NAME, or KIND/NAME) as a new version; the admin API warns when
what is left sends calls to it (a route to a deleted Service answers 500 for that rule). A
Service or HTTPRoute that a route or policy is still attached to (parentRefs, targetRefs) is
not deleted: the refusal names each one, to delete or change first.`,
  options: { "if-match": IF_MATCH_OPTION },
  examples: ["meshctl delete httproute echo", "meshctl delete svc/echo-v3 --if-match 14"],
  async run({ values, positionals, io, client }) {
    const { kind, name } = kindAndName(positionals, "delete");
    if (kind === undefined || name === undefined) {
      throw new UsageError("delete needs a KIND and a NAME", "delete");
    }
    const output = outputFormat(values, ["text", "json", "yaml"], "delete");
    const ifMatch = wholeNumber(values["if-match"], "--if-match", "delete");
    let answer;
    try {
      answer = await client().deleteResource(kind, name, { ifMatch });
    } catch (error) {
      if (error.code !== "not_found") throw error;
      throw new CliError(`no ${kind} named '${name}'; nothing deleted`, {
        lines: [`\`meshctl get ${kind.toLowerCase()}\` lists the ${kind} resources there are`],
      });
    }
    if (printStructured(io, output, answer)) return 0;
    io.print(`✓ deleted ${kind}/${name}: now version ${answer.version}`);
    for (const line of changeLines(changesOf(answer))) io.print(line);
    // The admin API names what each warning is about (`HTTPRoute/echo.spec…`).
    for (const warning of answer.warnings ?? []) io.warn(`⚠ ${issueText(warning)}`);
    return 0;
  },
};
