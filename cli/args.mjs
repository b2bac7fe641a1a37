// The command line: global flags, finding the subcommand, parsing its flags with node:util's
// parseArgs (strict, so a typo is an error rather than ignored), and every help text. Global
// flags may come before or after the subcommand, as with kubectl.
import { parseArgs } from "node:util";
import { UsageError } from "./errors.mjs";

/** Flags every command takes. `flags` and `help` are for the help text only. */
export const GLOBAL_OPTIONS = {
  server: {
    type: "string",
    flags: "--server URL",
    help: "the admin API (default: $MESH_ADMIN_URL, else http://127.0.0.1:8788)",
  },
  token: {
    type: "string",
    flags: "--token TOKEN",
    help: "admin bearer token (default: $MESH_ADMIN_TOKEN; for a loopback server, the local development token)",
  },
  svid: {
    type: "string",
    flags: "--svid TOKEN",
    help: "authenticate with a JWT-SVID (sent as X-Mesh-SVID) instead of a token",
  },
  output: {
    type: "string",
    short: "o",
    flags: "-o, --output FORMAT",
    help: "output format where the command has several: table, yaml, json, name",
  },
  timeout: {
    type: "string",
    flags: "--timeout SECONDS",
    help: "how long to wait for the admin API (default 10)",
  },
  help: { type: "boolean", short: "h", flags: "-h, --help", help: "show help" },
  version: { type: "boolean", flags: "--version", help: "print meshctl's version" },
};

/** The part of an option spec parseArgs takes. */
const forParseArgs = (options) =>
  Object.fromEntries(
    Object.entries(options).map(([name, { type, short, multiple }]) => [
      name,
      { type, ...(short ? { short } : {}), ...(multiple ? { multiple } : {}) },
    ]),
  );

/** Option lines, flags left and help right, wrapped to the terminal-friendly 100 columns. */
function optionLines(options) {
  const entries = Object.values(options);
  const width = Math.max(...entries.map((option) => option.flags.length)) + 3;
  return entries.flatMap((option) => {
    const words = option.help.split(" ");
    const lines = [];
    let line = "";
    for (const word of words) {
      if (line !== "" && 2 + width + line.length + 1 + word.length > 100) {
        lines.push(line);
        line = word;
      } else {
        line = line === "" ? word : `${line} ${word}`;
      }
    }
    lines.push(line);
    return lines.map((text, i) =>
      `  ${(i === 0 ? option.flags : "").padEnd(width)}${text}`.trimEnd(),
    );
  });
}

/** `meshctl --help`. */
export function mainHelp(commands) {
  const width = Math.max(...commands.map((command) => command.name.length)) + 3;
  return [
    "meshctl — manage a Meshwork service mesh through its admin API (the policy Worker)",
    "",
    "Usage: meshctl COMMAND [options]",
    "",
    "Commands:",
    ...commands.map((command) => `  ${command.name.padEnd(width)}${command.summary}`),
    "",
    "Global options:",
    ...optionLines(GLOBAL_OPTIONS),
    "",
    "Run `meshctl COMMAND --help` for a command's options and examples.",
  ].join("\n");
}

/** `meshctl COMMAND --help`. */
export function commandHelp(command) {
  const own = Object.keys(command.options ?? {}).length > 0;
  return [
    `meshctl ${command.name} — ${command.summary}`,
    "",
    `Usage: ${command.usage}`,
    "",
    command.description.trim(),
    ...(own ? ["", "Options:", ...optionLines(command.options)] : []),
    "",
    "Global options:",
    ...optionLines(GLOBAL_OPTIONS),
    ...(command.examples?.length
      ? ["", "Examples:", ...command.examples.map((example) => `  ${example}`)]
      : []),
  ].join("\n");
}

/**
 * Splits argv into the command and its parsed flags. Returns `{ command, values, positionals }`;
 * `command` is undefined when none was named (then only --help or --version make sense).
 * Throws a UsageError for an unknown command or flag, or a missing flag value.
 */
export function parseCommandLine(argv, commands) {
  const every = Object.assign(
    {},
    ...commands.map((command) => command.options ?? {}),
    GLOBAL_OPTIONS,
  );
  // First pass, lenient: where is the command? (Flags that take a value are known, so a value
  // such as `-o yaml` is not mistaken for it.)
  const { tokens } = parseArgs({
    args: argv,
    options: forParseArgs(every),
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const [first, second] = tokens.filter((token) => token.kind === "positional");
  // `meshctl help [COMMAND]` is `meshctl [COMMAND] --help`.
  if (first?.value === "help") {
    const command = second && findCommand(second.value, commands);
    return { command, values: { help: true }, positionals: [] };
  }
  const command = first && findCommand(first.value, commands);
  const rest = first ? argv.filter((_, index) => index !== first.index) : argv;
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      options: forParseArgs({ ...GLOBAL_OPTIONS, ...(command?.options ?? {}) }),
      strict: true,
      allowPositionals: true,
    });
  } catch (error) {
    throw new UsageError(error.message.split(". To specify")[0], command?.name);
  }
  return { command, values: parsed.values, positionals: parsed.positionals };
}

function findCommand(name, commands) {
  const command = commands.find((c) => c.name === name);
  if (!command) {
    throw new UsageError(
      `unknown command '${name}': one of ${commands.map((c) => c.name).join(", ")}`,
    );
  }
  return command;
}

/** A whole number ≥ `min` from a flag or argument, or a UsageError naming it. */
export function wholeNumber(value, what, command, min = 0) {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!/^\d+$/.test(String(value)) || !Number.isSafeInteger(number) || number < min) {
    throw new UsageError(`${what} must be a whole number ≥ ${min}, got '${value}'`, command);
  }
  return number;
}

/** The `-o` format, checked against what the command offers (the first is the default). */
export function outputFormat(values, allowed, command) {
  const format = values.output ?? allowed[0];
  if (!allowed.includes(format)) {
    throw new UsageError(`-o must be one of ${allowed.join(", ")}, got '${format}'`, command);
  }
  return format;
}

/** Refuses positionals a command does not take. */
export function noPositionals(positionals, command) {
  if (positionals.length > 0) {
    throw new UsageError(`unexpected argument '${positionals[0]}'`, command);
  }
}
