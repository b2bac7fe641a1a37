// `meshctl validate`: the offline check apply runs first, on its own; no server needed.
import { noPositionals } from "../args.mjs";
import { summarizeKinds } from "../kinds.mjs";
import { readSources, requireValidSources } from "../sources.mjs";
import { FILE_OPTION } from "./apply.mjs";

export const validate = {
  name: "validate",
  summary: "check config files offline, with the router's own schemas",
  usage: "meshctl validate -f FILE|DIR [--strict]",
  description: `
Validates the files as one config, exactly as the router and the admin API would (schemas,
limits, RE2 regexes, SPIFFE IDs, cross-resource checks) and against the service bindings the
router's wrangler.toml declares. Every issue is printed with its file and line. What a route or
policy is attached to (parentRefs, targetRefs) must exist; a backendRef, mirror, failover or
filter naming a missing resource is a warning (the Gateway API serves such a route and answers
500 for that rule) unless --strict. Exits 1 when the config is not valid.`,
  options: {
    file: FILE_OPTION,
    strict: {
      type: "boolean",
      flags: "--strict",
      help: "refuse backendRefs, mirrors, failovers and filters naming missing resources too",
    },
  },
  examples: ["meshctl validate -f examples/mesh.yaml", "meshctl validate -f config/ --strict"],
  async run({ values, positionals, io }) {
    noPositionals(positionals, "validate");
    const sources = await readSources(values.file, "validate");
    const validation = await requireValidSources(sources, { strict: values.strict });
    io.print(`✓ ${sources.label} is a valid mesh config: ${summarizeKinds(sources.resources)}`);
    for (const warning of validation.warnings) io.warn(`⚠ ${warning}`);
    return 0;
  },
};
