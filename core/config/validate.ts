/**
 * Whole-config validation: each resource against its schema, then the checks that span
 * resources (unique names, references to Services that exist). Issues name the field path
 * (`resources[1].spec.rules[0].backendRefs[0].weight`) so an operator can find the mistake.
 */
import type { z } from "zod";
import { MeshResource, type HTTPRouteResource, type ServiceResource } from "./schema.ts";

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
}

/**
 * Validates a full set of resources (what `POST /v1/apply` or a config file holds).
 * Returns typed, defaulted resources, or every issue found.
 */
export function validateResources(input: unknown): ValidationResult<MeshConfig> {
  if (!Array.isArray(input)) {
    return { ok: false, issues: [{ path: "resources", message: "must be a list of resources" }] };
  }
  const issues: ConfigIssue[] = [];
  const services: ServiceResource[] = [];
  const routes: HTTPRouteResource[] = [];
  const where = new Map<string, number>();
  input.forEach((raw, index) => {
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
    else routes.push(resource);
  });
  if (issues.length > 0) return { ok: false, issues };

  const serviceNames = new Set(services.map((s) => s.metadata.name));
  const checkRef = (name: string, path: string) => {
    if (!serviceNames.has(name)) {
      issues.push({ path, message: `names Service '${name}', which does not exist` });
    }
  };
  for (const route of routes) {
    const base = `resources[${where.get(`HTTPRoute/${route.metadata.name}`)}].spec`;
    route.spec.parentRefs.forEach((ref, i) => checkRef(ref.name, `${base}.parentRefs[${i}].name`));
    route.spec.rules.forEach((rule, r) => {
      const rulePath = `${base}.rules[${r}]`;
      rule.backendRefs?.forEach((ref, b) => {
        checkRef(ref.name, `${rulePath}.backendRefs[${b}].name`);
        ref.filters?.forEach((f, fi) => {
          if (f.type === "RequestMirror") {
            checkRef(
              f.requestMirror.backendRef.name,
              `${rulePath}.backendRefs[${b}].filters[${fi}].requestMirror.backendRef.name`,
            );
          }
        });
      });
      rule.filters?.forEach((f, fi) => {
        if (f.type === "RequestMirror") {
          checkRef(
            f.requestMirror.backendRef.name,
            `${rulePath}.filters[${fi}].requestMirror.backendRef.name`,
          );
        }
      });
    });
  }
  return issues.length > 0 ? { ok: false, issues } : { ok: true, value: { services, routes } };
}
