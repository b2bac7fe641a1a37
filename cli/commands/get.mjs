// `meshctl get`: the current config, all of it, one kind, or one resource, as a table (the
// default for lists), YAML (the default for one resource, and applyable as it is), JSON or
// names.
import { outputFormat } from "../args.mjs";
import { CliError } from "../errors.mjs";
import { kindAndName, kindList, resourceKey } from "../kinds.mjs";
import { table, toJson, toYaml, toYamlDocuments } from "../output.mjs";

export const get = {
  name: "get",
  summary: "show resources: all, one kind, or one",
  usage: "meshctl get [KIND [NAME]] [-o table|yaml|json|name]",
  description: `
With no KIND, every resource of the current config; with a KIND, those of that kind; with a
KIND and a NAME (or KIND/NAME), that resource. Lists print as a table by default, one resource
as YAML. YAML and JSON output can be applied again with \`meshctl apply -f\`.

Kinds are taken in any case, singular or plural, or short: ${kindList()}.`,
  options: {},
  examples: [
    "meshctl get",
    "meshctl get svc",
    "meshctl get httproute echo",
    "meshctl get route/echo -o json",
    "meshctl get -o yaml > backup.yaml",
  ],
  async run({ values, positionals, io, client }) {
    const { kind, name } = kindAndName(positionals, "get");
    if (name !== undefined) {
      const output = outputFormat(values, ["yaml", "json", "table", "name"], "get");
      let resource;
      try {
        resource = await client().resource(kind, name);
      } catch (error) {
        if (error.code !== "not_found") throw error;
        throw new CliError(`no ${kind} named '${name}'`, {
          lines: [`\`meshctl get ${kind.toLowerCase()}\` lists the ${kind} resources there are`],
        });
      }
      if (output === "yaml") io.print(toYaml(resource).trimEnd());
      else if (output === "json") io.print(toJson(resource).trimEnd());
      else if (output === "name") io.print(resourceKey(resource));
      else io.print(table(["KIND", "NAME"], [[resource.kind, resource.metadata?.name]]));
      return 0;
    }

    const output = outputFormat(values, ["table", "yaml", "json", "name"], "get");
    const config = await client().config();
    const all = Array.isArray(config.resources) ? config.resources : [];
    const resources = kind === undefined ? all : all.filter((r) => r.kind === kind);
    if (output === "json") {
      io.print(toJson({ version: config.version, resources }).trimEnd());
    } else if (output === "yaml") {
      if (resources.length > 0) io.print(toYamlDocuments(resources).trimEnd());
    } else if (output === "name") {
      for (const resource of resources) io.print(resourceKey(resource));
    } else if (resources.length === 0) {
      io.warn(
        kind === undefined
          ? `the config (version ${config.version}) holds no resources; \`meshctl apply -f FILE\` adds some`
          : `no ${kind} resources (config version ${config.version})`,
      );
    } else {
      io.print(
        table(
          ["KIND", "NAME"],
          resources.map((r) => [r.kind, r.metadata?.name]),
        ),
      );
    }
    return 0;
  },
};
