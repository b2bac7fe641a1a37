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
isolate with the version it has applied, how long ago it applied it (AGE) and how long ago it
last reported (REPORTED: each reports when its version changes and at least once a minute).
Ages are computed against the policy Worker's clock. The last line says how many routers run
the current version ("publish pending" until the store has published it).`,
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
          ["ISOLATE", "COLO", "VERSION", "AGE", "REPORTED", ...(errors ? ["ERROR"] : [])],
          status.routers.map((r) => [
            r.isolate,
            r.colo,
            r.version ?? "none",
            r.appliedAt === undefined ? "-" : age(r.appliedAt, status.now),
            age(r.reportedAt, status.now),
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
