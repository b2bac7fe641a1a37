// `meshctl status`: is the config the store holds the one the routers run?
import { noPositionals, outputFormat } from "../args.mjs";
import { age, keyValues, printStructured, table } from "../output.mjs";
import { driftText, readStatus, verdict } from "../status-report.mjs";

export const status = {
  name: "status",
  summary: "show the config version, its publishing and which routers run it",
  usage: "meshctl status [-o text|yaml|json]",
  description: `
Shows the store's current version, the version last published to the router's KV namespace
and when (or why publishing fails), drift (an edit made straight to KV), and every router
isolate with the version it has applied and when it last reported (each reports when its
version changes and at least once a minute). The last line says how many routers run the
current version.`,
  options: {},
  examples: ["meshctl status", "meshctl status -o json"],
  async run({ values, positionals, io, client }) {
    noPositionals(positionals, "status");
    const output = outputFormat(values, ["text", "yaml", "json"], "status");
    const body = await client().status();
    if (printStructured(io, output, body)) return 0;
    const status = readStatus(body);
    const { published } = status;
    const publishLine =
      published.version === undefined
        ? "nothing yet"
        : `version ${published.version}${published.at ? `, ${age(published.at, status.now)} ago` : ""}` +
          (published.pending ? " (a newer version is waiting to be published)" : "");
    io.print(
      keyValues([
        ["version", status.version ?? "?"],
        ["published", publishLine],
        ...(published.error ? [["publish error", published.error]] : []),
        ...(status.kv.error ? [["KV", status.kv.error]] : []),
        ["drift", status.drift ? driftText(status.drift) : "none"],
      ]),
    );
    io.print("");
    if (status.routers.length > 0) {
      const errors = status.routers.some((r) => r.error);
      io.print(
        table(
          ["ISOLATE", "COLO", "VERSION", "AGE", ...(errors ? ["ERROR"] : [])],
          status.routers.map((r) => [
            r.isolate,
            r.colo,
            r.version ?? "none",
            age(r.at, status.now),
            ...(errors ? [r.error ?? ""] : []),
          ]),
        ),
      );
      io.print("");
    }
    io.print(verdict(status));
    if (status.routers.length === 0) {
      io.print("(no router has reported yet: a router reports once it has served a request)");
    }
    return 0;
  },
};
