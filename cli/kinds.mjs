// Resource kinds as users type them: any case, singular or plural, or a short form, the way
// kubectl takes `svc` for services. The canonical spellings come from the schemas.
import { RESOURCE_KINDS } from "../core/config/resources.ts";
import { UsageError } from "./errors.mjs";

/** Plural and short names of each kind (lower case); the singular is always accepted. */
const KIND_NAMES = {
  Service: { plural: "services", short: ["svc"] },
  HTTPRoute: { plural: "httproutes", short: ["route", "routes"] },
  BackendPolicy: { plural: "backendpolicies", short: ["bp"] },
  FaultInjection: { plural: "faultinjections", short: ["fault", "faults"] },
  AuthorizationPolicy: { plural: "authorizationpolicies", short: ["authz"] },
  PeerAuthentication: { plural: "peerauthentications", short: ["peerauthn", "pa"] },
  MeshSettings: { plural: "meshsettings", short: ["settings"] },
  Revocation: { plural: "revocations", short: ["revoke"] },
  WorkloadCredential: { plural: "workloadcredentials", short: ["credential", "credentials"] },
};

/** A kind's names; a kind the schemas gained since this table was written gets a plain plural. */
const namesOf = (kind) => KIND_NAMES[kind] ?? { plural: `${kind.toLowerCase()}s`, short: [] };

const BY_NAME = new Map();
for (const kind of RESOURCE_KINDS) {
  const names = namesOf(kind);
  for (const name of [kind.toLowerCase(), names.plural, ...names.short]) BY_NAME.set(name, kind);
}

/** A kind's plural for counts ("3 HTTPRoutes"). */
export function pluralKind(kind, count) {
  if (count === 1 || kind === "MeshSettings") return kind;
  return kind.endsWith("Policy") ? `${kind.slice(0, -1)}ies` : `${kind}s`;
}

/** Every kind with its short forms, for help and error messages. */
export function kindList() {
  return RESOURCE_KINDS.map((kind) => {
    const short = namesOf(kind).short;
    return short.length > 0 ? `${kind} (${short.join(", ")})` : kind;
  }).join(", ");
}

/** The canonical kind for what the user typed; a UsageError naming the kinds otherwise. */
export function resolveKind(input, command) {
  const kind = BY_NAME.get(String(input).toLowerCase());
  if (!kind) throw new UsageError(`unknown kind '${input}': one of ${kindList()}`, command);
  return kind;
}

/**
 * A kind and an optional name from positionals: `svc echo`, or `svc/echo` as kubectl takes it.
 * Returns `{ kind, name }` (either may be undefined).
 */
export function kindAndName(positionals, command) {
  const [first, second, ...rest] = positionals;
  if (rest.length > 0) {
    throw new UsageError(`too many arguments: ${positionals.join(" ")}`, command);
  }
  if (first === undefined) return { kind: undefined, name: undefined };
  const slash = first.indexOf("/");
  if (slash !== -1) {
    if (second !== undefined) {
      throw new UsageError(
        `give KIND/NAME or KIND NAME, not both: ${positionals.join(" ")}`,
        command,
      );
    }
    return { kind: resolveKind(first.slice(0, slash), command), name: first.slice(slash + 1) };
  }
  return { kind: resolveKind(first, command), name: second };
}

/** "Kind/name" of a resource, as the admin API's diffs name it. */
export const resourceKey = (resource) => `${resource?.kind}/${resource?.metadata?.name}`;

/** Counts by kind, in the schemas' order: "2 Services, 1 HTTPRoute". */
export function summarizeKinds(resources) {
  const counts = new Map();
  for (const resource of resources) counts.set(resource.kind, (counts.get(resource.kind) ?? 0) + 1);
  const ordered = [
    ...RESOURCE_KINDS,
    ...[...counts.keys()].filter((k) => !RESOURCE_KINDS.includes(k)),
  ];
  const parts = ordered
    .filter((kind) => counts.has(kind))
    .map((kind) => `${counts.get(kind)} ${pluralKind(kind, counts.get(kind))}`);
  return parts.length > 0 ? parts.join(", ") : "no resources";
}

/**
 * An issue about a stored config as the user reads it, named as the admin API names issues about
 * resources it holds: the path's `resources[i]` start replaced by that resource's `Kind/name`
 * ("HTTPRoute/echo.spec.rules[0]…: message").
 */
export function namedIssue(resources, issue) {
  if (typeof issue !== "object" || issue === null) return String(issue);
  const path = String(issue.path).replace(/^resources\[(\d+)\]/, (whole, i) => {
    const resource = resources[Number(i)];
    return resource ? resourceKey(resource) : whole;
  });
  return `${path}: ${issue.message}`;
}
