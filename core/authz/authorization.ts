/**
 * Authorization with Istio's AuthorizationPolicy semantics: who (the verified caller's SPIFFE
 * ID) may call what (method, path, headers) on one destination.
 *
 * The policies that apply to a destination are compiled once, into sorted lists of small
 * predicates over precomputed sets, because `authorize` runs on every call within a budget of a
 * few microseconds. Per call it allocates nothing in the common case: the decisions a policy or
 * the mesh default can make are built at compile time and shared (frozen), the canonical path
 * is computed at most once and only when a path pattern is reached, and a fresh decision is
 * built only when an AUDIT or dry-run policy has something to record.
 *
 * Decision order: an enforced DENY policy that matches denies; otherwise, when enforced ALLOW
 * policies exist, the call is allowed only if one matches; otherwise the mesh default decides.
 * AUDIT and dry-run policies are evaluated and recorded, never enforced.
 */
import type {
  AuthorizationPolicyResource,
  AuthorizationRuleSpec,
} from "../config/identity-schema.ts";
import { canonicalAuthorizationPath, canonicalPathSuffix, endsInsideSegment } from "./auth-path.ts";

export type AuthorizationAction = AuthorizationPolicyResource["spec"]["action"];
export type DefaultAuthorizationAction = "ALLOW" | "DENY";

/** The call as authorization sees it. */
export interface AuthorizationRequest {
  /** The verified caller's SPIFFE ID; undefined when the call is unauthenticated. */
  principal: string | undefined;
  method: string;
  /** The path only, without the query. */
  path: string;
  headers: Headers;
}

/** What a dry-run policy would have done to the call. */
export interface DryRunResult {
  readonly policy: string;
  readonly action: AuthorizationAction;
  /** Whether one of the policy's rules matched the call. */
  readonly matched: boolean;
  /**
   * Whether the call would have been denied had this policy been enforced, beside the enforced
   * policies as they are. Where this differs from `!allowed`, enforcing the policy changes the
   * call's outcome.
   */
  readonly wouldDeny: boolean;
}

export interface AuthorizationDecision {
  readonly allowed: boolean;
  /** The enforced policy that decided, or undefined when the mesh default decided. */
  readonly policy: string | undefined;
  /**
   * Short reason for logs and the call's outcome, e.g. "denied by DENY policy 'block-admin'",
   * "no ALLOW policy matched", "mesh default DENY". Never includes header values.
   */
  readonly reason: string;
  /** The AUDIT policies (enforced, not dry-run) that matched the call. */
  readonly audited: readonly string[];
  /** One record per dry-run policy, in policy order. */
  readonly dryRun: readonly DryRunResult[];
}

/** The per-call view predicates read: the request, and its canonical path once computed. */
class CallView {
  readonly request: AuthorizationRequest;
  #canonicalPath: string | undefined;

  constructor(request: AuthorizationRequest) {
    this.request = request;
  }

  get canonicalPath(): string {
    return (this.#canonicalPath ??= canonicalAuthorizationPath(this.request.path));
  }
}

type CallPredicate = (call: CallView) => boolean;
type StringMatcher = (value: string) => boolean;

/** One policy, its rules compiled into a single predicate. */
export interface CompiledPolicy {
  readonly name: string;
  readonly action: AuthorizationAction;
  readonly matches: CallPredicate;
}

/** An enforced ALLOW or DENY policy, with the decision it makes when it decides a call. */
export interface DecidingPolicy extends CompiledPolicy {
  readonly decision: AuthorizationDecision;
}

/** The policies of one destination, compiled; build with `compileAuthorization`. */
export interface CompiledAuthorization {
  /** True when no policy applies: the mesh default decides every call. */
  readonly empty: boolean;
  readonly defaultAction: DefaultAuthorizationAction;
  readonly deny: readonly DecidingPolicy[];
  readonly allow: readonly DecidingPolicy[];
  readonly audit: readonly CompiledPolicy[];
  /** Dry-run policies of every action. */
  readonly dryRun: readonly CompiledPolicy[];
  readonly defaultDecision: AuthorizationDecision;
  readonly noAllowMatched: AuthorizationDecision;
}

const NOTHING: readonly never[] = Object.freeze([]);

const matchAll: CallPredicate = () => true;
const matchNone: CallPredicate = () => false;

function decision(allowed: boolean, policy: string | undefined, reason: string) {
  return Object.freeze({ allowed, policy, reason, audited: NOTHING, dryRun: NOTHING });
}

function allOf(parts: readonly CallPredicate[]): CallPredicate {
  if (parts.length === 0) return matchAll;
  if (parts.length === 1) return parts[0]!;
  return (call) => {
    for (const part of parts) if (!part(call)) return false;
    return true;
  };
}

function anyOf(parts: readonly CallPredicate[]): CallPredicate {
  if (parts.length === 0) return matchNone;
  if (parts.length === 1) return parts[0]!;
  return (call) => {
    for (const part of parts) if (part(call)) return true;
    return false;
  };
}

/** Exact values, string prefixes and suffixes, or everything: what every pattern kind becomes. */
class PatternSet {
  matchesEverything = false;
  readonly exact = new Set<string>();
  readonly prefixes: string[] = [];
  readonly suffixes: string[] = [];

  /** `*` is everything, `*x` a suffix, `x*` a prefix, anything else exact (Istio's order). */
  addPattern(pattern: string): void {
    if (pattern === "*") this.matchesEverything = true;
    else if (pattern.startsWith("*")) this.suffixes.push(pattern.slice(1));
    else if (pattern.endsWith("*")) this.prefixes.push(pattern.slice(0, -1));
    else this.exact.add(pattern);
  }

  toMatcher(): StringMatcher {
    if (this.matchesEverything) return () => true;
    const { exact, prefixes, suffixes } = this;
    if (prefixes.length === 0 && suffixes.length === 0) return (value) => exact.has(value);
    return (value) => {
      if (exact.has(value)) return true;
      for (const prefix of prefixes) if (value.startsWith(prefix)) return true;
      for (const suffix of suffixes) if (value.endsWith(suffix)) return true;
      return false;
    };
  }
}

/**
 * Principal patterns, compared case-sensitively. An unauthenticated call (no principal)
 * matches none of them, not even `*` (any authenticated caller).
 */
function compilePrincipals(
  patterns: readonly string[],
): (principal: string | undefined) => boolean {
  const set = new PatternSet();
  for (const pattern of patterns) set.addPattern(pattern);
  const matches = set.toMatcher();
  return (principal) => principal !== undefined && matches(principal);
}

/**
 * Path patterns, compared on canonical paths. A prefix ending on a segment boundary
 * (`/admin/*`) becomes the path itself plus a string prefix ending in `/`, so it matches
 * `/admin` and `/admin/x` but not `/administrator`; `/*` matches everything.
 */
function compilePaths(patterns: readonly string[]): StringMatcher {
  const set = new PatternSet();
  for (const pattern of patterns) {
    if (pattern === "*") {
      set.matchesEverything = true;
    } else if (pattern.startsWith("*")) {
      set.suffixes.push(canonicalPathSuffix(pattern.slice(1)));
    } else if (pattern.endsWith("*")) {
      const text = pattern.slice(0, -1);
      const base = canonicalAuthorizationPath(text);
      if (endsInsideSegment(text)) {
        set.prefixes.push(base);
      } else if (base === "/") {
        set.matchesEverything = true;
      } else {
        set.exact.add(base);
        set.prefixes.push(`${base}/`);
      }
    } else {
      set.exact.add(canonicalAuthorizationPath(pattern));
    }
  }
  return set.toMatcher();
}

type SourceSpec = NonNullable<AuthorizationRuleSpec["from"]>[number]["source"];
type OperationSpec = NonNullable<AuthorizationRuleSpec["to"]>[number]["operation"];
type ConditionSpec = NonNullable<AuthorizationRuleSpec["when"]>[number];

function compileSource(source: SourceSpec): CallPredicate {
  const parts: CallPredicate[] = [];
  if (source.principals !== undefined) {
    const matches = compilePrincipals(source.principals);
    parts.push((call) => matches(call.request.principal));
  }
  if (source.notPrincipals !== undefined) {
    const matches = compilePrincipals(source.notPrincipals);
    parts.push((call) => !matches(call.request.principal));
  }
  return allOf(parts);
}

// Methods before paths: a method check is a set lookup, a path check may canonicalise.
function compileOperation(operation: OperationSpec): CallPredicate {
  const parts: CallPredicate[] = [];
  if (operation.methods !== undefined) {
    const methods = new Set(operation.methods);
    parts.push((call) => methods.has(call.request.method));
  }
  if (operation.notMethods !== undefined) {
    const methods = new Set(operation.notMethods);
    parts.push((call) => !methods.has(call.request.method));
  }
  if (operation.paths !== undefined) {
    const matches = compilePaths(operation.paths);
    parts.push((call) => matches(call.canonicalPath));
  }
  if (operation.notPaths !== undefined) {
    const matches = compilePaths(operation.notPaths);
    parts.push((call) => !matches(call.canonicalPath));
  }
  return allOf(parts);
}

const HEADER_KEY_PREFIX = "request.headers[";

/**
 * A `when` condition on a header's value (repeated headers joined with ", ", as
 * `Headers.get` gives them). A missing header matches no `values` and every `notValues`.
 */
function compileCondition(condition: ConditionSpec): CallPredicate {
  // The schema has checked the key is request.headers[<name>].
  const name = condition.key.slice(HEADER_KEY_PREFIX.length, -1).toLowerCase();
  const parts: CallPredicate[] = [];
  if (condition.values !== undefined) {
    const set = new PatternSet();
    for (const pattern of condition.values) set.addPattern(pattern);
    const matches = set.toMatcher();
    parts.push((call) => {
      const value = call.request.headers.get(name);
      return value !== null && matches(value);
    });
  }
  if (condition.notValues !== undefined) {
    const set = new PatternSet();
    for (const pattern of condition.notValues) set.addPattern(pattern);
    const matches = set.toMatcher();
    parts.push((call) => {
      const value = call.request.headers.get(name);
      return value === null || !matches(value);
    });
  }
  return allOf(parts);
}

/** A rule: `from`, `to` and every `when` must hold; an empty rule matches every call. */
function compileRule(rule: AuthorizationRuleSpec): CallPredicate {
  const parts: CallPredicate[] = [];
  if (rule.from !== undefined) parts.push(anyOf(rule.from.map((f) => compileSource(f.source))));
  if (rule.to !== undefined) parts.push(anyOf(rule.to.map((t) => compileOperation(t.operation))));
  for (const condition of rule.when ?? []) parts.push(compileCondition(condition));
  return allOf(parts);
}

function compilePolicy(policy: AuthorizationPolicyResource): CompiledPolicy {
  return {
    name: policy.metadata.name,
    action: policy.spec.action,
    // No rules: the policy matches no call (an ALLOW policy without rules allows nothing).
    matches: anyOf(policy.spec.rules.map(compileRule)),
  };
}

function deciding(policy: CompiledPolicy): DecidingPolicy {
  const { name, action } = policy;
  return {
    ...policy,
    decision:
      action === "DENY"
        ? decision(false, name, `denied by DENY policy '${name}'`)
        : decision(true, name, `allowed by ALLOW policy '${name}'`),
  };
}

/** Older first (an unset creationTimestamp counts as oldest), then by name. */
function byAge(a: AuthorizationPolicyResource, b: AuthorizationPolicyResource): number {
  const created = (p: AuthorizationPolicyResource) =>
    p.metadata.creationTimestamp === undefined
      ? -Infinity
      : Date.parse(p.metadata.creationTimestamp);
  const difference = created(a) - created(b);
  if (difference !== 0 && !Number.isNaN(difference)) return difference;
  return a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
}

/**
 * Compiles the policies that apply to one destination (those targeting it and the mesh-wide
 * ones; the caller filters by `targetRefs`) with the mesh's default action.
 */
export function compileAuthorization(
  policies: readonly AuthorizationPolicyResource[],
  defaultAction: DefaultAuthorizationAction,
): CompiledAuthorization {
  const sorted = [...policies].sort(byAge);
  const enforced = (action: AuthorizationAction) =>
    sorted.filter((p) => !p.spec.dryRun && p.spec.action === action).map(compilePolicy);
  return {
    empty: policies.length === 0,
    defaultAction,
    deny: enforced("DENY").map(deciding),
    allow: enforced("ALLOW").map(deciding),
    audit: enforced("AUDIT"),
    dryRun: sorted.filter((p) => p.spec.dryRun).map(compilePolicy),
    defaultDecision: decision(
      defaultAction === "ALLOW",
      undefined,
      `mesh default ${defaultAction}`,
    ),
    noAllowMatched: decision(false, undefined, "no ALLOW policy matched"),
  };
}

/** The enforced outcome, with what dry-run records need to know about how it was reached. */
interface EnforcedOutcome {
  decision: AuthorizationDecision;
  deniedByDenyPolicy: boolean;
  allowPolicyMatched: boolean;
}

function dryRunResults(
  policies: readonly CompiledPolicy[],
  call: CallView,
  outcome: EnforcedOutcome,
): readonly DryRunResult[] {
  return policies.map((policy): DryRunResult => {
    const matched = policy.matches(call);
    let wouldDeny: boolean;
    if (policy.action === "DENY") {
      wouldDeny = matched || !outcome.decision.allowed;
    } else if (policy.action === "ALLOW") {
      // Enforced, it would make the destination allow-listed, itself among the list.
      wouldDeny = outcome.deniedByDenyPolicy || !(outcome.allowPolicyMatched || matched);
    } else {
      wouldDeny = !outcome.decision.allowed;
    }
    return { policy: policy.name, action: policy.action, matched, wouldDeny };
  });
}

function auditedBy(policies: readonly CompiledPolicy[], call: CallView): readonly string[] {
  let audited: string[] | undefined;
  for (const policy of policies) {
    if (policy.matches(call)) (audited ??= []).push(policy.name);
  }
  return audited ?? NOTHING;
}

/** Decides one call to the destination `compiled` was built for. */
export function authorize(
  compiled: CompiledAuthorization,
  request: AuthorizationRequest,
): AuthorizationDecision {
  if (compiled.empty) return compiled.defaultDecision;
  const call = new CallView(request);
  let decided: AuthorizationDecision | undefined;
  let allowPolicyMatched = false;
  for (const policy of compiled.deny) {
    if (policy.matches(call)) {
      decided = policy.decision;
      break;
    }
  }
  const deniedByDenyPolicy = decided !== undefined;
  if (decided === undefined && compiled.allow.length > 0) {
    decided = compiled.noAllowMatched;
    for (const policy of compiled.allow) {
      if (policy.matches(call)) {
        decided = policy.decision;
        allowPolicyMatched = true;
        break;
      }
    }
  }
  decided ??= compiled.defaultDecision;
  if (compiled.audit.length === 0 && compiled.dryRun.length === 0) return decided;

  const audited = auditedBy(compiled.audit, call);
  const dryRun =
    compiled.dryRun.length === 0
      ? NOTHING
      : dryRunResults(compiled.dryRun, call, {
          decision: decided,
          deniedByDenyPolicy,
          allowPolicyMatched,
        });
  if (audited.length === 0 && dryRun.length === 0) return decided;
  return { ...decided, audited, dryRun };
}
