// meshctl as a function: one command line in, an exit code out, everything printed through `io`.
// cli/meshctl.mjs calls it with the process's argv, environment and console; tests call it in
// process too. Finds the command, runs it, and prints any failure through the one rescue
// (errors.mjs).
import { readFileSync } from "node:fs";
import { commandHelp, mainHelp, parseCommandLine } from "./args.mjs";
import { AdminClient, resolveConnection } from "./client.mjs";
import { COMMANDS } from "./commands/index.mjs";
import { explain, EXIT_USAGE } from "./errors.mjs";

/** meshctl's version: the package's. */
function version() {
  const manifest = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  return manifest.version;
}

/**
 * Runs one command line. `io` has `print(line)` (results, stdout) and `warn(line)` (warnings and
 * errors, stderr), and may say `isTTY` (stdout is a terminal) and give `interrupt`, an
 * AbortSignal that stands for Ctrl-C (`meshctl top` catches SIGINT itself without one); `env`
 * supplies MESH_ADMIN_URL, MESH_ADMIN_TOKEN and USER. Resolves to the
 * exit code: 0, 1 when the operation (or a check) failed, 2 for a wrong command line.
 */
export async function main(argv, { io, env }) {
  try {
    const { command, values, positionals } = parseCommandLine(argv, COMMANDS);
    if (values.version) {
      io.print(`meshctl ${version()}`);
      return 0;
    }
    if (values.help) {
      io.print(command ? commandHelp(command) : mainHelp(COMMANDS));
      return 0;
    }
    if (!command) {
      io.warn(mainHelp(COMMANDS));
      return EXIT_USAGE;
    }
    // Resolved only by commands that talk to the server (validate does not).
    let admin;
    const client = () => (admin ??= new AdminClient(resolveConnection(values, env, io.warn)));
    return await command.run({ values, positionals, io, client });
  } catch (error) {
    const { message, lines, exitCode } = explain(error);
    io.warn(`✗ ${message}`);
    for (const line of lines) io.warn(`  ${line}`);
    return exitCode;
  }
}
