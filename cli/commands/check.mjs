// `meshctl check`, after `linkerd check`: one line per condition a working mesh needs, ✓ or ✗
// (⚠ for what is allowed but suspicious), each ✗ saying what to do; exit 1 on any ✗. The
// checks run in dependency order and stop where the rest cannot be asked (no server, no auth).
import { validateResources } from "../../core/config/validate.ts";
import { noPositionals } from "../args.mjs";
import { credentialLabel } from "../client.mjs";
import { ApiError, explain, UnreachableError } from "../errors.mjs";
import { namedIssue, summarizeKinds } from "../kinds.mjs";
import { age } from "../output.mjs";
import { readRouterBindings } from "../sources.mjs";
import { driftText, readStatus, routersAt } from "../status-report.mjs";

/** The Service endpoints naming a binding the router's wrangler.toml does not declare. */
function unboundEndpoints(resources, bindings) {
  const missing = [];
  for (const resource of resources) {
    if (resource?.kind !== "Service") continue;
    for (const endpoint of resource.spec?.endpoints ?? []) {
      if (typeof endpoint?.binding === "string" && !bindings.names.has(endpoint.binding)) {
        missing.push({ service: resource.metadata?.name, binding: endpoint.binding });
      }
    }
  }
  return missing;
}

export const check = {
  name: "check",
  summary: "check that the mesh's control plane and routers are healthy",
  usage: "meshctl check",
  description: `
Checks, in order: the admin API is reachable and accepts the credential; the current config is
valid by this checkout's schemas; every Service endpoint's binding is declared in the router's
wrangler.toml (a Service whose binding the router lacks needs a router binding and a
redeploy); references to missing Services (warnings); the config is published to KV without
drift; every router reports the version published to KV (a newer one still to be published is
"publish pending", a warning: the store publishes at most once a second). Prints ✓, ⚠ or ✗ per
check; exits 1 on any ✗.`,
  options: {},
  examples: ["meshctl check", "meshctl check --server https://policy.example.com"],
  async run({ positionals, io, client }) {
    noPositionals(positionals, "check");
    let failures = 0;
    let warnings = 0;
    const pass = (text) => io.print(`✓ ${text}`);
    const warn = (text, lines = []) => {
      warnings++;
      io.print(`⚠ ${text}`);
      for (const line of lines) io.print(`    ${line}`);
    };
    const fail = (text, lines = []) => {
      failures++;
      io.print(`✗ ${text}`);
      for (const line of lines) io.print(`    ${line}`);
    };
    const finish = () => {
      io.print("");
      if (failures > 0) {
        io.print(`✗ ${failures} ${failures === 1 ? "check" : "checks"} failed`);
        return 1;
      }
      io.print(
        `✓ all checks passed${warnings > 0 ? ` (${warnings} ${warnings === 1 ? "warning" : "warnings"})` : ""}`,
      );
      return 0;
    };

    const admin = client();
    const { server, credential } = admin.connection;
    let config;
    try {
      config = await admin.config();
    } catch (error) {
      const { message, lines } = explain(error);
      if (error instanceof UnreachableError) {
        fail(`admin API not reachable at ${server}: ${error.message}`, lines);
      } else if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
        pass(`admin API reachable at ${server}`);
        fail(`not authenticated: ${message}`, lines);
      } else {
        pass(`admin API reachable at ${server}`);
        fail(message, lines);
      }
      return finish();
    }
    pass(`admin API reachable at ${server}`);
    pass(`authenticated with ${credentialLabel(credential)}`);

    const resources = Array.isArray(config.resources) ? config.resources : [];
    const validation = validateResources(resources);
    if (validation.ok) {
      pass(`config version ${config.version} is valid: ${summarizeKinds(resources)}`);
    } else {
      fail(
        `config version ${config.version} is not valid by this checkout's schemas (is meshctl older or newer than the policy Worker?)`,
        validation.issues.map((issue) => namedIssue(resources, issue)),
      );
    }

    let bindings;
    try {
      bindings = await readRouterBindings();
    } catch (error) {
      const { message, lines } = explain(error);
      fail(`cannot check the Services' bindings: ${message}`, lines);
    }
    if (bindings) {
      const unbound = unboundEndpoints(resources, bindings);
      const services = resources.filter((r) => r?.kind === "Service").length;
      if (unbound.length === 0) {
        pass(`every Service's bindings are declared in ${bindings.file} (${services} Services)`);
      }
      for (const { service, binding } of unbound) {
        fail(
          `Service/${service} names binding ${binding}, which ${bindings.file} does not declare: needs a router binding and a redeploy`,
          [`add [[services]] binding = "${binding}" to ${bindings.file} and deploy the router`],
        );
      }
    }

    const dangling = validation.warnings;
    if (!validation.ok) {
      // Validation stopped at the schemas; the references were not looked at.
    } else if (dangling.length === 0) {
      pass("no references to missing resources");
    } else {
      warn(
        `${dangling.length} ${dangling.length === 1 ? "reference" : "references"} to missing resources (what they would get is answered 500, or not mirrored or failed over)`,
        dangling.map((issue) => namedIssue(resources, issue)),
      );
    }

    let status;
    try {
      status = readStatus(await admin.status());
    } catch (error) {
      const { message, lines } = explain(error);
      fail(`cannot read the status: ${message}`, lines);
      return finish();
    }
    const { published } = status;
    if (status.version === 0) {
      warn("the store holds no config yet: `meshctl apply -f FILE` makes version 1");
    } else if (published.error) {
      fail(`publishing to KV fails: ${published.error}`, [
        "the store retries on its alarm; the policy Worker's log has the cause",
      ]);
    } else if (published.pending) {
      // Due within a second or so (or at the retry the alarm is set for): not a failure yet.
      const next = published.nextAttemptAt ? `, next at ${published.nextAttemptAt}` : "";
      warn(
        `version ${status.version}: publish pending (KV holds ${published.version === undefined ? "no version" : `version ${published.version}`}; the store publishes at most once a second${next})`,
      );
    } else if (published.version === undefined) {
      fail(`version ${status.version} has not been published to KV`, [
        "the store publishes on its alarm within a second or so; if this persists, read the policy Worker's log",
      ]);
    } else {
      pass(
        `version ${published.version} published to KV${published.at ? ` ${age(published.at, status.now)} ago` : ""}`,
      );
    }
    if (status.kv.error) {
      fail(`cannot read the router's KV namespace: ${status.kv.error}`);
    } else if (status.drift) {
      fail(`KV was edited outside the store: ${driftText(status.drift)}`, [
        "the next version the store commits replaces the edit (`meshctl apply` or `rollback`)",
      ]);
    } else {
      pass("no drift between KV and the store");
    }

    // Routers can only run what is in KV: they are measured against the published version, and
    // a version the store has yet to publish is pending, not a router falling behind.
    const target = published.version;
    const pending = published.pending ? ` (version ${status.version}: publish pending)` : "";
    const { current, total } = routersAt(status, target);
    const failing = status.routers.filter((router) => router.error);
    if (total === 0) {
      warn("no router has reported its version yet (a router reports once it serves a request)");
    } else if (target === undefined) {
      warn(
        `no version is published yet, so no router can run one${pending}: ${total} ${total === 1 ? "router has" : "routers have"} reported`,
      );
    } else if (current === total) {
      pass(
        `all ${total} ${total === 1 ? "router reports" : "routers report"} version ${target}, the published one${pending}`,
      );
    } else {
      fail(`${current} of ${total} routers report version ${target}, the published one${pending}`, [
        ...status.routers
          .filter((router) => router.version !== target)
          .map(
            (router) =>
              `isolate ${router.isolate} (${router.colo}) runs version ${router.version ?? "none"}, reported ${age(router.reportedAt, status.now)} ago`,
          ),
        "routers refresh their config within seconds of a publish; run the check again shortly",
      ]);
    }
    if (failing.length > 0) {
      fail(
        `${failing.length} ${failing.length === 1 ? "router reports" : "routers report"} a config error`,
        failing.map((router) => `isolate ${router.isolate} (${router.colo}): ${router.error}`),
      );
    }
    return finish();
  },
};
