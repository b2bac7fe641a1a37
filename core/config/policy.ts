/**
 * Which BackendPolicy settings apply to what. Policies attach with `targetRefs`, as Gateway API
 * policies do; when several target one object, each setting comes from the oldest policy that
 * sets it (`metadata.creationTimestamp`, then name: the Gateway API's rule for conflicts), so
 * one policy may hold the breaker and another the rate limit of the same Service.
 */
import type { BackendPolicyResource } from "./schema.ts";

/** A policy's settings, without its targets. */
export type PolicyKnobs = Omit<BackendPolicyResource["spec"], "targetRefs">;

/** What a policy can target. */
export type PolicyTarget =
  | { readonly kind: "Service"; readonly name: string }
  | { readonly kind: "HTTPRoute"; readonly name: string; readonly sectionName?: string };

function created(policy: BackendPolicyResource): number {
  const stamp = policy.metadata.creationTimestamp;
  return stamp ? Date.parse(stamp) : Number.MAX_SAFE_INTEGER;
}

/** Oldest first, then by name: the order in which conflicting policies win. */
export function oldestFirst(a: BackendPolicyResource, b: BackendPolicyResource): number {
  return (
    created(a) - created(b) ||
    (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0)
  );
}

/**
 * True when `policy` targets exactly `target`: a Service by name; a whole HTTPRoute (a ref without
 * `sectionName`); or one rule of it (a ref whose `sectionName` is the rule's name).
 */
function targets(policy: BackendPolicyResource, target: PolicyTarget): boolean {
  return policy.spec.targetRefs.some(
    (ref) =>
      ref.kind === target.kind &&
      ref.name === target.name &&
      (target.kind === "Service" || ref.sectionName === target.sectionName),
  );
}

/** The settings in effect on `target`: each from the oldest policy that sets it. */
export function effectiveKnobs(
  policies: readonly BackendPolicyResource[],
  target: PolicyTarget,
): { readonly knobs: PolicyKnobs; readonly names: readonly string[] } {
  const knobs: Record<string, unknown> = {};
  const names: string[] = [];
  for (const policy of policies.filter((p) => targets(p, target)).sort(oldestFirst)) {
    let used = false;
    for (const [knob, value] of Object.entries(policy.spec)) {
      if (knob === "targetRefs" || value === undefined || knob in knobs) continue;
      knobs[knob] = value;
      used = true;
    }
    if (used) names.push(policy.metadata.name);
  }
  return { knobs: knobs as PolicyKnobs, names };
}
