/**
 * Whole-config validation: each resource against its schema, then the checks that span
 * resources (unique names, per-destination limits, references). Issues name the field path
 * (`resources[1].spec.rules[0].backendRefs[0].weight`) so an operator can find the mistake.
 *
 * References are of two sorts, and treated as the Gateway API's behaviour makes them matter:
 *  - what a resource attaches to (an HTTPRoute's parentRefs, a policy's targetRefs, down to a
 *    route rule's sectionName) must exist: a route or policy attached to nothing applies to no
 *    call, silently, so it is an issue — and deleting a Service that something still attaches to
 *    is refused, naming what does;
 *  - where a call is sent (a backendRef, a mirror, a failover Service, an ExtensionRef filter)
 *    may dangle: the Gateway API serves the route and answers 500 for what that reference would
 *    get, so it is a warning, not an issue, unless `strict` asks otherwise.
 */
import type { z } from "zod";
import { MAX_REGEX_COST_PER_DESTINATION, MIN_REGEX_COST, regexCost } from "../routing/regex.ts";
import {
  MAX_MATCHES_PER_DESTINATION,
  MAX_RESOURCE_BYTES,
  MAX_RESOURCES,
  MAX_ROUTES_PER_SERVICE,
} from "./limits.ts";
import type {
  AuthorizationPolicyResource,
  MeshSettingsResource,
  PeerAuthenticationResource,
  RevocationResource,
  WorkloadCredentialResource,
} from "./identity-schema.ts";
import { MeshResource } from "./resources.ts";
import {
  MESH_GROUP,
  type BackendPolicyResource,
  type FaultInjectionResource,
  type HTTPRouteFilter,
  type HTTPRouteResource,
  type ServiceResource,
} from "./schema.ts";

/** One problem with submitted config: where it is and what is wrong. */
export interface ConfigIssue {
  path: string;
  message: string;
}

/** Formats a zod issue path as `a.b[2].c`. */
export function formatPath(path: readonly PropertyKey[], prefix = ""): string {
  let out = prefix;
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out;
}

/** Turns a zod error into config issues under `prefix`. */
export function issuesFromZod(error: z.ZodError, prefix = ""): ConfigIssue[] {
  return error.issues.map((issue) => ({
    path: formatPath(issue.path, prefix),
    message: issue.message,
  }));
}

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; issues: ConfigIssue[] };

/** The mesh's resources, grouped by kind. */
export interface MeshConfig {
  services: ServiceResource[];
  routes: HTTPRouteResource[];
  policies: BackendPolicyResource[];
  faults: FaultInjectionResource[];
  authorization: AuthorizationPolicyResource[];
  peerAuthentication: PeerAuthenticationResource[];
  /** The mesh's one MeshSettings, when it has one. */
  settings: MeshSettingsResource | undefined;
  revocations: RevocationResource[];
  credentials: WorkloadCredentialResource[];
}

/** A validated config and what is suspicious about it but allowed. */
export type ConfigValidation =
  | { ok: true; value: MeshConfig; warnings: ConfigIssue[] }
  | { ok: false; issues: ConfigIssue[]; warnings: ConfigIssue[] };

/** What `validateResources` can check beyond the resources themselves. */
export interface ValidateOptions {
  /**
   * Refuse dangling forwarding references (backendRefs, mirrors, failover, ExtensionRef filters)
   * instead of warning about them. Attachment references (parentRefs, targetRefs) are always
   * refused.
   */
  strict?: boolean;
  /**
   * The router's service bindings, when known (from its wrangler config): an endpoint naming
   * another binding is refused, naming `file`.
   */
  routerBindings?: { names: ReadonlySet<string>; file: string };
}

/** UTF-8 length of a string, without allocating. */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/** Every regular expression a route uses. */
function routePatterns(route: HTTPRouteResource): string[] {
  const patterns: string[] = [];
  for (const rule of route.spec.rules) {
    for (const match of rule.matches ?? []) {
      if (match.path?.type === "RegularExpression") patterns.push(match.path.value);
      for (const h of [...(match.headers ?? []), ...(match.queryParams ?? [])]) {
        if (h.type === "RegularExpression") patterns.push(h.value);
      }
    }
  }
  return patterns;
}

/**
 * What makes the routes attached to one destination too much for a router to serve: too many
 * routes, too many matches to test a request against, or too much regular-expression work.
 * Shared by publish-time validation and the router's check of an entry it loads.
 */
export function destinationLimitProblems(
  service: string,
  routes: readonly HTTPRouteResource[],
): string[] {
  const problems: string[] = [];
  if (routes.length > MAX_ROUTES_PER_SERVICE) {
    problems.push(
      `Service '${service}' has ${routes.length} HTTPRoutes attached; the limit is ${MAX_ROUTES_PER_SERVICE}`,
    );
  }
  let matches = 0;
  let cost = 0;
  for (const route of routes) {
    for (const rule of route.spec.rules) matches += Math.max(1, rule.matches?.length ?? 0);
    for (const pattern of routePatterns(route)) cost += regexCost(pattern);
  }
  if (matches > MAX_MATCHES_PER_DESTINATION) {
    problems.push(
      `the routes attached to Service '${service}' hold ${matches} matches; the limit is ${MAX_MATCHES_PER_DESTINATION}`,
    );
  }
  if (cost > MAX_REGEX_COST_PER_DESTINATION) {
    problems.push(
      `the regular expressions of the routes attached to Service '${service}' cost ${cost} in all (each its RE2 program size, at least ${MIN_REGEX_COST}); the limit is ${MAX_REGEX_COST_PER_DESTINATION}`,
    );
  }
  return problems;
}

/**
 * Validates a full set of resources (what `POST /v1/apply` or a config file holds).
 * Returns typed, defaulted resources and warnings, or every issue found.
 */
export function validateResources(input: unknown, options: ValidateOptions = {}): ConfigValidation {
  const warnings: ConfigIssue[] = [];
  if (!Array.isArray(input)) {
    return {
      ok: false,
      issues: [{ path: "resources", message: "must be a list of resources" }],
      warnings,
    };
  }
  if (input.length > MAX_RESOURCES) {
    return {
      ok: false,
      issues: [
        {
          path: "resources",
          message: `holds ${input.length} resources; the limit is ${MAX_RESOURCES}`,
        },
      ],
      warnings,
    };
  }
  const issues: ConfigIssue[] = [];
  const services: ServiceResource[] = [];
  const routes: HTTPRouteResource[] = [];
  const policies: BackendPolicyResource[] = [];
  const faults: FaultInjectionResource[] = [];
  const authorization: AuthorizationPolicyResource[] = [];
  const peerAuthentication: PeerAuthenticationResource[] = [];
  const settings: MeshSettingsResource[] = [];
  const revocations: RevocationResource[] = [];
  const credentials: WorkloadCredentialResource[] = [];
  const where = new Map<string, number>();
  input.forEach((raw, index) => {
    const size = utf8Length(JSON.stringify(raw) ?? "");
    if (size > MAX_RESOURCE_BYTES) {
      issues.push({
        path: `resources[${index}]`,
        message: `is ${size} bytes as JSON; the limit is ${MAX_RESOURCE_BYTES} (large annotations are the usual cause)`,
      });
      return;
    }
    const parsed = MeshResource.safeParse(raw);
    if (!parsed.success) {
      issues.push(...issuesFromZod(parsed.error, `resources[${index}]`));
      return;
    }
    const resource = parsed.data;
    const key = `${resource.kind}/${resource.metadata.name}`;
    const first = where.get(key);
    if (first !== undefined) {
      issues.push({
        path: `resources[${index}].metadata.name`,
        message: `duplicate ${key} (also resources[${first}])`,
      });
      return;
    }
    where.set(key, index);
    if (resource.kind === "Service") services.push(resource);
    else if (resource.kind === "HTTPRoute") routes.push(resource);
    else if (resource.kind === "BackendPolicy") policies.push(resource);
    else if (resource.kind === "FaultInjection") faults.push(resource);
    else if (resource.kind === "AuthorizationPolicy") authorization.push(resource);
    else if (resource.kind === "PeerAuthentication") peerAuthentication.push(resource);
    else if (resource.kind === "MeshSettings") settings.push(resource);
    else if (resource.kind === "Revocation") revocations.push(resource);
    else credentials.push(resource);
  });
  if (settings.length > 1) {
    issues.push({
      path: `resources[${where.get(`MeshSettings/${settings[1]!.metadata.name}`)}]`,
      message: `a mesh has one MeshSettings; '${settings[0]!.metadata.name}' is another`,
    });
  }
  if (issues.length > 0) return { ok: false, issues, warnings };

  const at = (kind: string, name: string) => `resources[${where.get(`${kind}/${name}`)}]`;
  const serviceNames = new Set(services.map((s) => s.metadata.name));
  const dangling = (path: string, message: string) =>
    (options.strict ? issues : warnings).push({ path, message });
  /** What a resource attaches to is missing: always an issue, saying how to fix it. */
  const detached = (path: string, what: string, target: string, kind: string) => {
    // HTTPRoute and AuthorizationPolicy read "an …".
    const one = `${/^[AEIOH]/.test(kind) ? "an" : "a"} ${kind}`;
    issues.push({
      path,
      message: `${what}, which does not exist: ${one} attached to nothing would apply to no call. Add the ${target}, or fix or remove this reference (to delete a ${target} that ${one} is attached to, delete or change the ${kind} first)`,
    });
  };

  if (options.routerBindings) {
    const { names, file } = options.routerBindings;
    const declared = [...names].sort().join(", ") || "none";
    for (const service of services) {
      service.spec.endpoints.forEach((endpoint, e) => {
        if ("binding" in endpoint && !names.has(endpoint.binding)) {
          issues.push({
            path: `${at("Service", service.metadata.name)}.spec.endpoints[${e}].binding`,
            message: `the router has no service binding '${endpoint.binding}': ${file} declares ${declared}. Add a [[services]] binding to ${file} (and redeploy the router) or fix the name`,
          });
        }
      });
    }
  }

  const BACKEND = "requests for it will be answered 500";
  const MIRROR = "nothing will be mirrored";
  const checkBackend = (
    ref: { group?: string | undefined; kind: string; name: string },
    path: string,
    consequence: string,
  ) => {
    const group = ref.group ?? "";
    if (group !== "" || ref.kind !== "Service") {
      dangling(
        path,
        `refers to ${ref.kind} '${ref.name}'${group ? ` in group ${group}` : ""}; the mesh sends only to Services, so ${consequence}`,
      );
    } else if (!serviceNames.has(ref.name)) {
      dangling(`${path}.name`, `names Service '${ref.name}', which does not exist; ${consequence}`);
    }
  };
  const faultNames = new Set(faults.map((f) => f.metadata.name));
  const checkExtension = (filter: HTTPRouteFilter, path: string) => {
    if (filter.type !== "ExtensionRef") return;
    const { group, kind, name } = filter.extensionRef;
    if (group !== MESH_GROUP || kind !== "FaultInjection") {
      dangling(
        `${path}.extensionRef`,
        `refers to ${kind} '${name}' in group '${group}', a filter the mesh does not have (only ${MESH_GROUP} FaultInjection); the rule's requests will be answered 500`,
      );
    } else if (!faultNames.has(name)) {
      dangling(
        `${path}.extensionRef.name`,
        `names FaultInjection '${name}', which does not exist; the rule's requests will be answered 500`,
      );
    }
  };
  const attached = new Map<string, HTTPRouteResource[]>();
  for (const route of routes) {
    const base = `${at("HTTPRoute", route.metadata.name)}.spec`;
    route.spec.parentRefs.forEach((ref, i) => {
      if (serviceNames.has(ref.name)) {
        const list = attached.get(ref.name) ?? [];
        if (!list.includes(route)) list.push(route);
        attached.set(ref.name, list);
      } else {
        detached(
          `${base}.parentRefs[${i}].name`,
          `names Service '${ref.name}'`,
          "Service",
          "HTTPRoute",
        );
      }
    });
    route.spec.rules.forEach((rule, r) => {
      const rulePath = `${base}.rules[${r}]`;
      rule.backendRefs?.forEach((ref, b) => {
        checkBackend(ref, `${rulePath}.backendRefs[${b}]`, BACKEND);
        ref.filters?.forEach((f, fi) => {
          checkExtension(f, `${rulePath}.backendRefs[${b}].filters[${fi}]`);
          if (f.type === "RequestMirror") {
            checkBackend(
              f.requestMirror.backendRef,
              `${rulePath}.backendRefs[${b}].filters[${fi}].requestMirror.backendRef`,
              MIRROR,
            );
          }
        });
      });
      rule.filters?.forEach((f, fi) => {
        checkExtension(f, `${rulePath}.filters[${fi}]`);
        if (f.type === "RequestMirror") {
          checkBackend(
            f.requestMirror.backendRef,
            `${rulePath}.filters[${fi}].requestMirror.backendRef`,
            MIRROR,
          );
        }
      });
    });
  }
  const routesByName = new Map(routes.map((r) => [r.metadata.name, r]));
  for (const policy of policies) {
    const base = `${at("BackendPolicy", policy.metadata.name)}.spec`;
    policy.spec.targetRefs.forEach((ref, i) => {
      const path = `${base}.targetRefs[${i}]`;
      if (ref.kind === "Service") {
        if (!serviceNames.has(ref.name)) {
          detached(`${path}.name`, `names Service '${ref.name}'`, "Service", "BackendPolicy");
        }
        return;
      }
      const route = routesByName.get(ref.name);
      if (!route) {
        detached(`${path}.name`, `names HTTPRoute '${ref.name}'`, "HTTPRoute", "BackendPolicy");
      } else if (
        ref.sectionName !== undefined &&
        !route.spec.rules.some((rule) => rule.name === ref.sectionName)
      ) {
        detached(
          `${path}.sectionName`,
          `names rule '${ref.sectionName}' of HTTPRoute '${ref.name}'`,
          "rule",
          "BackendPolicy",
        );
      }
    });
    const failover = policy.spec.failover?.service;
    if (failover !== undefined) {
      if (!serviceNames.has(failover)) {
        dangling(
          `${base}.failover.service`,
          `names Service '${failover}', which does not exist; there is no failover`,
        );
      } else if (policy.spec.targetRefs.some((ref) => ref.name === failover)) {
        issues.push({
          path: `${base}.failover.service`,
          message: `'${failover}' is also a target of this policy: a Service cannot fail over to itself`,
        });
      }
    }
  }
  const checkServiceTargets = (
    kind: string,
    resource: { metadata: { name: string }; spec: { targetRefs?: { name: string }[] | undefined } },
  ) => {
    resource.spec.targetRefs?.forEach((ref, i) => {
      if (!serviceNames.has(ref.name)) {
        detached(
          `${at(kind, resource.metadata.name)}.spec.targetRefs[${i}].name`,
          `names Service '${ref.name}'`,
          "Service",
          kind,
        );
      }
    });
  };
  for (const policy of authorization) checkServiceTargets("AuthorizationPolicy", policy);
  for (const peer of peerAuthentication) checkServiceTargets("PeerAuthentication", peer);
  for (const [name, list] of attached) {
    for (const message of destinationLimitProblems(name, list)) {
      issues.push({ path: `${at("Service", name)}`, message });
    }
  }
  return issues.length > 0
    ? { ok: false, issues, warnings }
    : {
        ok: true,
        value: {
          services,
          routes,
          policies,
          faults,
          authorization,
          peerAuthentication,
          settings: settings[0],
          revocations,
          credentials,
        },
        warnings,
      };
}
