#!/usr/bin/env node
// meshctl: the command line for the mesh's admin API (docs/control-plane.md; cli/README.md).
// It loads the repository's TypeScript core directly, as scripts/ do, so this entry checks the
// Node first and imports the rest (cli/main.mjs) only once the Node is known to strip types.
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  console.error(
    `✗ Node ${process.versions.node} is too old for meshctl: it needs Node ≥ 22.18 (it loads the ` +
      "mesh's TypeScript core directly). `npm run meshctl -- …` runs it with the project's pinned Node.",
  );
  process.exit(1);
}

const { main } = await import("./main.mjs");
process.exitCode = await main(process.argv.slice(2), {
  io: {
    print: (line) => console.log(line),
    warn: (line) => console.error(line),
    // Whether stdout is a terminal: `meshctl top` redraws in place only there.
    isTTY: process.stdout.isTTY === true,
  },
  env: process.env,
});
