/**
 * The route compiler and matcher.
 *
 * A destination entry is compiled once per config version into a `RouteTable`: every
 * (route, rule, match) triple flattened into one list, sorted by Gateway API precedence, with
 * regular expressions built, header names lower-cased, durations in milliseconds and split
 * tables summed. A request then walks that list and takes the first match that holds.
 *
 * Precedence, first difference wins (Gateway API v1, with regular expressions placed as Envoy
 * Gateway places them, since the spec leaves them to the implementation):
 *   1. path type: Exact, then RegularExpression, then PathPrefix;
 *   2. longer path value;
 *   3. a method match;
 *   4. more header matches;
 *   5. more query parameter matches;
 *   6. the older route (metadata.creationTimestamp), then `namespace/name` alphabetically;
 *   7. the earlier rule, then the earlier match, within a route.
 */
import { compileAuthorization, type CompiledAuthorization } from "../authz/authorization.ts";
import type { DestinationEntry } from "../config/snapshot.ts";
import { effectiveKnobs, type PolicyKnobs } from "../config/policy.ts";
import {
  MESH_GROUP,
  type FaultInjectionResource,
  type HTTPRouteFilter,
  type HTTPRouteMatch,
  type HTTPRouteResource,
  type HTTPRouteRule,
  type ServiceResource,
} from "../config/schema.ts";
import { parseDuration } from "../duration.ts";
import { normalizePath } from "../path-normalization.ts";
import type { FaultSpec } from "../resilience/fault.ts";
import { buildSplitTable, type SplitTable } from "../split/pick-backend.ts";
import {
  compileCallPolicy,
  compileOutlier,
  compileServicePolicy,
  type CallPolicy,
  type OutlierPolicy,
  type ServicePolicy,
} from "./call-policy.ts";
import { compileCors, type CorsPolicy } from "./cors.ts";
import { matchesPrefix, normalizePrefix } from "./path.ts";
import { compileRegex } from "./regex.ts";

/** Where an endpoint's requests go. */
export type EndpointTarget =
  | { readonly kind: "binding"; readonly binding: string }
  | { readonly kind: "url"; readonly base: URL };

export interface CompiledEndpoint {
  readonly name: string;
  readonly weight: number;
  readonly target: EndpointTarget;
}

/** A Service ready to receive traffic: its usable endpoints and their split table. */
export interface CompiledService {
  readonly name: string;
  readonly endpoints: SplitTable<CompiledEndpoint>;
  /** Why some endpoints were left out (for example a binding the router lacks). */
  readonly problems: readonly string[];
  /** What its BackendPolicies say about it: breaker, retry budget, balancer, rate limit … */
  readonly policy: ServicePolicy;
  /** The passports calls to it carry: one per caller (Shared) or one per call (PerRequest). */
  readonly passport: "Shared" | "PerRequest";
  /**
   * Its own peer authentication and authorization — the resources that target it by name —
   * checked when a split (or failover, or mirror) sends a call to it that was addressed to
   * another Service; undefined when it has none. Mesh-wide ones were checked for the call's
   * destination already.
   */
  readonly own: BackendSecurity | undefined;
}

/** A backend Service's own peer authentication and authorization. */
export interface BackendSecurity {
  /** Its PeerAuthentication's mode, when one targets it. */
  readonly peerMode: "STRICT" | "PERMISSIVE" | undefined;
  /** Its AuthorizationPolicies, with ALLOW as the default: no ALLOW policy of its own, no veto. */
  readonly authorization: CompiledAuthorization | undefined;
}

/** Who may call the destination: peer authentication and authorization, compiled. */
export interface DestinationSecurity {
  /** STRICT refuses calls without a verified caller; PERMISSIVE lets them through, labelled. */
  readonly peerMode: "STRICT" | "PERMISSIVE";
  /** The PeerAuthentication that set the mode, or undefined for the default (STRICT). */
  readonly peerPolicy: string | undefined;
  readonly authorization: CompiledAuthorization;
}

/** Header edits (RequestHeaderModifier / ResponseHeaderModifier), applied set, add, remove. */
export interface HeaderEdits {
  readonly set: readonly (readonly [string, string])[];
  readonly add: readonly (readonly [string, string])[];
  readonly remove: readonly string[];
}

export type PathModifier =
  | { readonly type: "ReplaceFullPath"; readonly value: string }
  | { readonly type: "ReplacePrefixMatch"; readonly value: string };

export interface RedirectSpec {
  readonly scheme: "http" | "https" | undefined;
  readonly hostname: string | undefined;
  readonly port: number | undefined;
  readonly path: PathModifier | undefined;
  readonly statusCode: 301 | 302 | 303 | 307 | 308;
}

export interface RewriteSpec {
  readonly hostname: string | undefined;
  readonly path: PathModifier | undefined;
}

export interface MirrorSpec {
  /** Undefined when the reference does not resolve (a warning says why; nothing is mirrored). */
  readonly service: CompiledService | undefined;
  readonly serviceName: string;
  /** Share of requests mirrored, as numerator/denominator. */
  readonly numerator: number;
  readonly denominator: number;
}

/** A filter list compiled: each kind at most once, mirrors as many as given. */
export interface CompiledFilters {
  readonly requestHeaders: HeaderEdits | undefined;
  readonly responseHeaders: HeaderEdits | undefined;
  readonly redirect: RedirectSpec | undefined;
  readonly rewrite: RewriteSpec | undefined;
  readonly mirrors: readonly MirrorSpec[];
  readonly cors: CorsPolicy | undefined;
  /** Faults to inject (an ExtensionRef to a FaultInjection). */
  readonly fault: FaultSpec | undefined;
  /** An ExtensionRef that does not resolve: the requests this list filters are answered 500. */
  readonly unresolved: string | undefined;
}

/** One of a rule's backendRefs, resolved. `service` is undefined for an invalid reference. */
export interface CompiledBackend {
  readonly name: string;
  readonly weight: number;
  readonly service: CompiledService | undefined;
  /** Why the reference does not resolve (when `service` is undefined). */
  readonly problem: string | undefined;
  readonly filters: CompiledFilters;
  /** Timeouts and retries of calls this reference sends (see call-policy.ts). */
  readonly policy: CallPolicy;
  /** Where the call goes instead while the Service's breaker is open (its policy's failover). */
  readonly failover: CompiledBackend | undefined;
}

/** Who may pin a call to one backend with `X-Mesh-Backend` (absent: nobody). */
export interface PinningPolicy {
  readonly allowZeroWeight: boolean;
  /** Calling services allowed to pin; undefined: any caller. */
  readonly callers: ReadonlySet<string> | undefined;
}

export interface SessionSpec {
  readonly type: "Cookie" | "Header";
  /** Lower-cased header name, or the cookie name. */
  readonly name: string;
  /** Max-Age of an issued cookie, when the lifetime is Permanent and a timeout is set. */
  readonly cookieMaxAgeSeconds: number | undefined;
}

export interface CompiledRule {
  /** `route` or `route/rule` (rule name, or its index). */
  readonly id: string;
  readonly filters: CompiledFilters;
  readonly backends: SplitTable<CompiledBackend>;
  readonly session: SessionSpec | undefined;
  /** What happens to the split when backends' breakers are open. */
  readonly outlier: OutlierPolicy;
}

type ValueTest = (value: string) => boolean;

export interface CompiledMatch {
  readonly rule: CompiledRule;
  readonly pathType: "Exact" | "PathPrefix" | "RegularExpression";
  /** The path value (a normalised prefix for PathPrefix). */
  readonly pathValue: string;
  readonly pathTest: ValueTest;
  readonly method: string | undefined;
  readonly headers: readonly (readonly [string, ValueTest])[];
  readonly query: readonly (readonly [string, ValueTest])[];
}

/** A destination compiled for serving. */
export interface RouteTable {
  readonly destination: string;
  /** The destination Service itself (its rate limits apply to every call addressed to it). */
  readonly service: CompiledService;
  /** True when HTTPRoutes are attached; then an unmatched request is `no_route`. */
  readonly hasRoutes: boolean;
  /** Every match of every attached rule, in precedence order. */
  readonly matches: readonly CompiledMatch[];
  /** With no routes attached: the destination's own endpoints. */
  readonly defaultRule: CompiledRule;
  /** `X-Mesh-Backend` pinning, when the destination Service enables it. */
  readonly pinning: PinningPolicy | undefined;
  /** Peer authentication and authorization of calls to the destination. */
  readonly security: DestinationSecurity;
  /** Non-fatal problems found while compiling (unusable endpoints, unknown backends). */
  readonly warnings: readonly string[];
}

/** What the matcher needs of a request. */
export interface RequestFacts {
  readonly method: string;
  readonly path: string;
  readonly headers: { get(name: string): string | null };
  readonly query: { get(name: string): string | null };
}

const NO_FILTERS: CompiledFilters = {
  requestHeaders: undefined,
  responseHeaders: undefined,
  redirect: undefined,
  rewrite: undefined,
  mirrors: [],
  cors: undefined,
  fault: undefined,
  unresolved: undefined,
};

/** A resolved backend reference: the Service, or why there is none. */
type Resolution =
  { service: CompiledService; problem: undefined } | { service: undefined; problem: string };

/** Options for compiling: which router bindings exist. */
export interface CompileOptions {
  hasBinding(name: string): boolean;
}

function compileService(
  service: ServiceResource,
  policy: ServicePolicy,
  options: CompileOptions,
  own: BackendSecurity | undefined,
): CompiledService {
  const problems: string[] = [];
  const endpoints: CompiledEndpoint[] = [];
  for (const endpoint of service.spec.endpoints) {
    if ("binding" in endpoint) {
      if (!options.hasBinding(endpoint.binding)) {
        problems.push(
          `Service '${service.metadata.name}': the router has no service binding '${endpoint.binding}'`,
        );
        continue;
      }
      endpoints.push({
        name: endpoint.binding,
        weight: endpoint.weight,
        target: { kind: "binding", binding: endpoint.binding },
      });
    } else {
      endpoints.push({
        name: endpoint.url,
        weight: endpoint.weight,
        target: { kind: "url", base: new URL(endpoint.url) },
      });
    }
  }
  return {
    name: service.metadata.name,
    endpoints: buildSplitTable(endpoints),
    problems,
    policy,
    passport: service.spec.passport?.mode ?? "Shared",
    own,
  };
}

function compileHeaderEdits(m: {
  set?: { name: string; value: string }[] | undefined;
  add?: { name: string; value: string }[] | undefined;
  remove?: string[] | undefined;
}): HeaderEdits {
  return {
    set: (m.set ?? []).map((h) => [h.name, h.value] as const),
    add: (m.add ?? []).map((h) => [h.name, h.value] as const),
    remove: m.remove ?? [],
  };
}

function compilePathModifier(
  path:
    | { type: "ReplaceFullPath"; replaceFullPath: string }
    | { type: "ReplacePrefixMatch"; replacePrefixMatch: string }
    | undefined,
): PathModifier | undefined {
  if (!path) return undefined;
  return path.type === "ReplaceFullPath"
    ? { type: "ReplaceFullPath", value: path.replaceFullPath }
    : { type: "ReplacePrefixMatch", value: path.replacePrefixMatch };
}

function compileFault(fault: FaultInjectionResource): FaultSpec {
  const { delay, abort, callers, headers } = fault.spec;
  return {
    name: fault.metadata.name,
    delay: delay ? { percent: delay.percent, ms: parseDuration(delay.fixedDelay) } : undefined,
    abort: abort ? { percent: abort.percent, status: abort.status } : undefined,
    callers: callers ? new Set(callers) : undefined,
    headers: (headers ?? []).map(
      (h) => [h.name.toLowerCase(), valueTest(h.type, h.value)] as const,
    ),
  };
}

function compileFilters(
  filters: readonly HTTPRouteFilter[] | undefined,
  resolve: (ref: BackendReference) => Resolution,
  faults: ReadonlyMap<string, FaultInjectionResource>,
): CompiledFilters {
  if (!filters || filters.length === 0) return NO_FILTERS;
  let requestHeaders: HeaderEdits | undefined;
  let responseHeaders: HeaderEdits | undefined;
  let redirect: RedirectSpec | undefined;
  let rewrite: RewriteSpec | undefined;
  let cors: CorsPolicy | undefined;
  let fault: FaultSpec | undefined;
  let unresolved: string | undefined;
  const mirrors: MirrorSpec[] = [];
  for (const filter of filters) {
    switch (filter.type) {
      case "RequestHeaderModifier":
        requestHeaders = compileHeaderEdits(filter.requestHeaderModifier);
        break;
      case "ResponseHeaderModifier":
        responseHeaders = compileHeaderEdits(filter.responseHeaderModifier);
        break;
      case "RequestRedirect": {
        const r = filter.requestRedirect;
        redirect = {
          scheme: r.scheme,
          hostname: r.hostname,
          port: r.port,
          path: compilePathModifier(r.path),
          statusCode: r.statusCode,
        };
        break;
      }
      case "URLRewrite":
        rewrite = {
          hostname: filter.urlRewrite.hostname,
          path: compilePathModifier(filter.urlRewrite.path),
        };
        break;
      case "RequestMirror": {
        const m = filter.requestMirror;
        const name = m.backendRef.name;
        const [numerator, denominator] = m.fraction
          ? [m.fraction.numerator, m.fraction.denominator]
          : [m.percent ?? 100, 100];
        const { service } = resolve(m.backendRef);
        mirrors.push({ service, serviceName: name, numerator, denominator });
        break;
      }
      case "CORS":
        cors = compileCors(filter.cors);
        break;
      case "ExtensionRef": {
        const { group, kind, name } = filter.extensionRef;
        const found =
          group === MESH_GROUP && kind === "FaultInjection" ? faults.get(name) : undefined;
        if (found) fault = compileFault(found);
        else
          unresolved ??= `the filter ExtensionRef ${kind} '${name}' (group '${group}') does not resolve`;
        break;
      }
    }
  }
  return { requestHeaders, responseHeaders, redirect, rewrite, mirrors, cors, fault, unresolved };
}

function compileSession(rule: HTTPRouteRule): SessionSpec | undefined {
  const s = rule.sessionPersistence;
  if (!s) return undefined;
  const permanent = s.cookieConfig?.lifetimeType === "Permanent";
  return s.type === "Header"
    ? { type: "Header", name: (s.sessionName ?? "").toLowerCase(), cookieMaxAgeSeconds: undefined }
    : {
        type: "Cookie",
        name: s.sessionName ?? "mesh-session",
        cookieMaxAgeSeconds:
          permanent && s.absoluteTimeout
            ? Math.floor(parseDuration(s.absoluteTimeout) / 1000)
            : undefined,
      };
}

function valueTest(type: "Exact" | "RegularExpression", value: string): ValueTest {
  return type === "Exact" ? (candidate) => candidate === value : compileRegex(value);
}

/**
 * An Exact or PathPrefix value in the normal form requests are matched in (`/%7euser` →
 * `/~user`, `/caf%c3%a9` → `/caf%C3%A9`), so every spelling of a configured path matches.
 */
function normalPathValue(value: string): string {
  const normalized = normalizePath(value, "keep");
  return normalized.ok ? normalized.path : value;
}

function compileMatch(rule: CompiledRule, match: HTTPRouteMatch): CompiledMatch {
  const pathType = match.path?.type ?? "PathPrefix";
  const rawValue = match.path?.value ?? "/";
  const pathValue =
    pathType === "PathPrefix"
      ? normalizePrefix(normalPathValue(rawValue))
      : pathType === "Exact"
        ? normalPathValue(rawValue)
        : rawValue;
  const pathTest: ValueTest =
    pathType === "Exact"
      ? (path) => path === pathValue
      : pathType === "PathPrefix"
        ? (path) => matchesPrefix(path, pathValue)
        : compileRegex(pathValue);
  return {
    rule,
    pathType,
    pathValue,
    pathTest,
    method: match.method,
    headers: (match.headers ?? []).map(
      (h) => [h.name.toLowerCase(), valueTest(h.type, h.value)] as const,
    ),
    query: (match.queryParams ?? []).map((q) => [q.name, valueTest(q.type, q.value)] as const),
  };
}

const PATH_TYPE_RANK = { Exact: 0, RegularExpression: 1, PathPrefix: 2 } as const;

interface Ranked {
  match: CompiledMatch;
  created: number;
  qualifiedName: string;
  order: number;
}

function compareMatches(a: Ranked, b: Ranked): number {
  const x = a.match;
  const y = b.match;
  return (
    PATH_TYPE_RANK[x.pathType] - PATH_TYPE_RANK[y.pathType] ||
    y.pathValue.length - x.pathValue.length ||
    Number(y.method !== undefined) - Number(x.method !== undefined) ||
    y.headers.length - x.headers.length ||
    y.query.length - x.query.length ||
    a.created - b.created ||
    (a.qualifiedName < b.qualifiedName ? -1 : a.qualifiedName > b.qualifiedName ? 1 : 0) ||
    a.order - b.order
  );
}

function routeCreated(route: HTTPRouteResource): number {
  const stamp = route.metadata.creationTimestamp;
  // Routes without a timestamp sort after dated ones, then by name.
  return stamp ? Date.parse(stamp) : Number.MAX_SAFE_INTEGER;
}

/** What a backendRef or mirror names. */
interface BackendReference {
  readonly group?: string | undefined;
  readonly kind: string;
  readonly name: string;
}

/** Compiles one destination entry. Never throws on a validated entry. */
export function compileRouteTable(entry: DestinationEntry, options: CompileOptions): RouteTable {
  const destinationName = entry.service.metadata.name;
  const services = new Map<string, CompiledService>();
  const serviceKnobs = new Map<string, PolicyKnobs>();
  const warnings: string[] = [];
  for (const service of [entry.service, ...entry.backends]) {
    const name = service.metadata.name;
    const { knobs, names } = effectiveKnobs(entry.policies, { kind: "Service", name });
    const compiled = compileService(
      service,
      compileServicePolicy(knobs, names),
      options,
      ownSecurity(entry, name),
    );
    services.set(name, compiled);
    serviceKnobs.set(name, knobs);
    warnings.push(...compiled.problems);
  }
  // Gateway API: a reference to another kind, or to a Service that does not exist, leaves the
  // route in place; the requests it would receive are answered 500 (and mirrors are skipped).
  const resolve = (ref: BackendReference): Resolution => {
    const group = ref.group ?? "";
    if (group !== "" || ref.kind !== "Service") {
      const problem = `${ref.kind} '${ref.name}'${group ? ` (group ${group})` : ""} is not a kind the mesh can send to (only Service)`;
      warnings.push(problem);
      return { service: undefined, problem };
    }
    const service = services.get(ref.name);
    if (service) return { service, problem: undefined };
    const problem = `Service '${ref.name}' does not exist`;
    warnings.push(problem);
    return { service: undefined, problem };
  };

  const faults = new Map(entry.faults.map((f) => [f.metadata.name, f]));
  const filtersOf = (list: readonly HTTPRouteFilter[] | undefined) => {
    const compiled = compileFilters(list, resolve, faults);
    if (compiled.unresolved) warnings.push(compiled.unresolved);
    return compiled;
  };
  const destinationKnobs = serviceKnobs.get(destinationName)!;
  /**
   * One backend reference of a rule, with the policy of its calls: the rule's fields, then
   * `chain` (policies on the rule, the route and the destination), then the backend's own.
   */
  const backendOf = (
    ref: { name: string; weight: number },
    filters: CompiledFilters,
    rule: HTTPRouteRule | undefined,
    chain: readonly PolicyKnobs[],
    resolution: Resolution,
  ): CompiledBackend => {
    const service = resolution.service;
    const policy = (name: string | undefined) =>
      compileCallPolicy(rule, [...chain, ...(name ? [serviceKnobs.get(name)!] : [])]);
    const failoverName = service?.policy.failover;
    const failoverService = failoverName ? services.get(failoverName) : undefined;
    return {
      name: ref.name,
      weight: ref.weight,
      ...resolution,
      filters,
      policy: policy(service?.name),
      failover: failoverService && {
        name: failoverService.name,
        weight: ref.weight,
        service: failoverService,
        problem: undefined,
        filters,
        policy: policy(failoverService.name),
        failover: undefined,
      },
    };
  };
  const destination = services.get(destinationName)!;
  const defaultRule: CompiledRule = {
    id: destinationName,
    filters: NO_FILTERS,
    backends: buildSplitTable([
      backendOf({ name: destinationName, weight: 1 }, NO_FILTERS, undefined, [destinationKnobs], {
        service: destination,
        problem: undefined,
      }),
    ]),
    session: undefined,
    outlier: compileOutlier([destinationKnobs]),
  };

  const ranked: Ranked[] = [];
  for (const route of entry.routes) {
    const routeName = route.metadata.name;
    const qualifiedName = `${route.metadata.namespace ?? "default"}/${routeName}`;
    const routeKnobs = effectiveKnobs(entry.policies, { kind: "HTTPRoute", name: routeName }).knobs;
    route.spec.rules.forEach((rule, ruleIndex) => {
      const ruleKnobs = rule.name
        ? effectiveKnobs(entry.policies, {
            kind: "HTTPRoute",
            name: routeName,
            sectionName: rule.name,
          }).knobs
        : {};
      const chain = [ruleKnobs, routeKnobs, destinationKnobs];
      const compiled: CompiledRule = {
        id: `${routeName}/${rule.name ?? ruleIndex}`,
        filters: filtersOf(rule.filters),
        backends: buildSplitTable(
          (rule.backendRefs ?? []).map((ref) =>
            backendOf(ref, filtersOf(ref.filters), rule, chain, resolve(ref)),
          ),
        ),
        session: compileSession(rule),
        outlier: compileOutlier(chain),
      };
      const matches = rule.matches && rule.matches.length > 0 ? rule.matches : [{}];
      matches.forEach((match) => {
        ranked.push({
          match: compileMatch(compiled, match),
          created: routeCreated(route),
          qualifiedName,
          order: ranked.length,
        });
      });
    });
  }
  ranked.sort(compareMatches);
  const pinning = entry.service.spec.backendPinning;
  return {
    destination: destinationName,
    service: destination,
    hasRoutes: entry.routes.length > 0,
    matches: ranked.map((r) => r.match),
    defaultRule,
    pinning: pinning?.enabled
      ? {
          allowZeroWeight: pinning.allowZeroWeight,
          callers: pinning.callers ? new Set(pinning.callers) : undefined,
        }
      : undefined,
    security: compileSecurity(entry),
    warnings: [...new Set(warnings)],
  };
}

/** True when every condition of `match` holds for the request. */
function holds(match: CompiledMatch, request: RequestFacts): boolean {
  if (match.method !== undefined && match.method !== request.method) return false;
  if (!match.pathTest(request.path)) return false;
  for (const [name, test] of match.headers) {
    const value = request.headers.get(name);
    if (value === null || !test(value)) return false;
  }
  for (const [name, test] of match.query) {
    const value = request.query.get(name);
    if (value === null || !test(value)) return false;
  }
  return true;
}

/**
 * The highest-precedence match that holds, or undefined (which, with routes attached, is
 * `no_route`; a table without routes serves every request by its `defaultRule`).
 */
export function matchRoute(table: RouteTable, request: RequestFacts): CompiledMatch | undefined {
  if (!table.hasRoutes) return undefined;
  for (const match of table.matches) {
    if (holds(match, request)) return match;
  }
  return undefined;
}

/** Oldest first (`metadata.creationTimestamp`, unset counting as oldest), then by name. */
function oldestFirst<
  T extends { metadata: { name: string; creationTimestamp?: string | undefined } },
>(a: T, b: T): number {
  const ta = a.metadata.creationTimestamp ? Date.parse(a.metadata.creationTimestamp) : -Infinity;
  const tb = b.metadata.creationTimestamp ? Date.parse(b.metadata.creationTimestamp) : -Infinity;
  if (ta !== tb) return ta < tb ? -1 : 1;
  return a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
}

const targets = (r: { spec: { targetRefs?: { name: string }[] | undefined } }, name: string) =>
  r.spec.targetRefs?.some((ref) => ref.name === name) ?? false;

/** What targets `name` by name: its own peer authentication and authorization, if any. */
function ownSecurity(entry: DestinationEntry, name: string): BackendSecurity | undefined {
  const peer = entry.peerAuthentication.filter((p) => targets(p, name)).sort(oldestFirst)[0];
  const policies = entry.authorization.filter((p) => targets(p, name));
  if (!peer && policies.length === 0) return undefined;
  return {
    peerMode: peer?.spec.mode,
    authorization: policies.length > 0 ? compileAuthorization(policies, "ALLOW") : undefined,
  };
}

/**
 * The destination's peer authentication — a PeerAuthentication that targets it, else a
 * mesh-wide one (the oldest wins in each), else STRICT — and its authorization policies with the
 * mesh's default action (MeshSettings; DENY when unset).
 */
function compileSecurity(entry: DestinationEntry): DestinationSecurity {
  const name = entry.service.metadata.name;
  const applies = (r: { spec: { targetRefs?: { name: string }[] | undefined } }) =>
    r.spec.targetRefs === undefined || targets(r, name);
  const peers = entry.peerAuthentication.filter(applies).sort(oldestFirst);
  const peer =
    peers.find((p) => p.spec.targetRefs !== undefined) ??
    peers.find((p) => p.spec.targetRefs === undefined);
  return {
    peerMode: peer?.spec.mode ?? "STRICT",
    peerPolicy: peer?.metadata.name,
    authorization: compileAuthorization(
      entry.authorization.filter(applies),
      entry.settings?.spec.authorization?.defaultAction ?? "DENY",
    ),
  };
}
