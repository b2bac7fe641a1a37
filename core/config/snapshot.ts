/**
 * The published config snapshot, as it sits in KV.
 *
 * Laid out for thousands of isolates and thousands of services: one small
 * index names the version and, per destination, the key of an immutable entry that holds
 * everything a router needs to serve that destination — its Service, the HTTPRoutes attached to
 * it and the Services those routes send to. A cold isolate reads the index and the entries of the
 * destinations it actually serves, nothing more. Entry keys are content-addressed, so a publish
 * rewrites only the entries that changed, and a reader never sees half of a new entry.
 */
import { z } from "zod";
import { hashHex } from "../hash.ts";
import {
  AuthorizationPolicyResource,
  MeshSettingsResource,
  PeerAuthenticationResource,
  RevocationResource,
  WorkloadCredentialResource,
} from "./identity-schema.ts";
import { effectiveKnobs } from "./policy.ts";
import { MAX_ENTRY_BYTES, MAX_INDEX_BYTES } from "./limits.ts";
import {
  BackendPolicyResource,
  FaultInjectionResource,
  HTTPRouteResource,
  MESH_GROUP,
  ServiceResource,
} from "./schema.ts";
import {
  destinationLimitProblems,
  issuesFromZod,
  utf8Length,
  type ConfigIssue,
  type MeshConfig,
  type ValidationResult,
} from "./validate.ts";

/** Format version of the snapshot; bumped only with a migration. */
export const SNAPSHOT_SCHEMA = 1;
/** KV key of the snapshot index. */
export const INDEX_KEY = "mesh/index";
/** KV key prefix of destination entries: `mesh/dest/<service>/<content hash>`. */
export const ENTRY_PREFIX = "mesh/dest/";
/** KV key prefix of the identity entry (for the identity Worker): `mesh/identity/<hash>`. */
export const IDENTITY_PREFIX = "mesh/identity/";

/** A revocation as routers check it: compact, in the index every isolate reads. */
export const RevokedToken = z.strictObject({ jti: z.string().min(1).max(256) });
export const RevokedSubject = z.strictObject({
  subject: z.string().min(1).max(512),
  /** Tokens issued (iat) before this instant (ISO 8601) are refused; unset: every token. */
  issuedBefore: z.iso.datetime({ offset: true }).optional(),
});
export const Revocations = z.strictObject({
  tokens: z.array(RevokedToken).default([]),
  subjects: z.array(RevokedSubject).default([]),
});
export type Revocations = z.infer<typeof Revocations>;

/** The snapshot index: version and where each destination's entry lives. */
export const SnapshotIndex = z.strictObject({
  schema: z.literal(SNAPSHOT_SCHEMA),
  /** Monotonic config version, as the admin API reports it. */
  version: z.int().min(0),
  /** When this version was published (ISO 8601). */
  publishedAt: z.iso.datetime({ offset: true }),
  /** Destination Service name → KV key of its entry. */
  destinations: z.record(
    z.string(),
    z.string().refine((key) => key.startsWith(ENTRY_PREFIX), {
      message: `must be a key under ${ENTRY_PREFIX}`,
    }),
  ),
  /** JWT-SVIDs refused before they expire (absent: none). */
  revocations: Revocations.optional(),
  /** KV key of the identity entry (workload credentials and revocations), when there is one. */
  identity: z
    .string()
    .refine((key) => key.startsWith(IDENTITY_PREFIX), {
      message: `must be a key under ${IDENTITY_PREFIX}`,
    })
    .optional(),
});
export type SnapshotIndex = z.infer<typeof SnapshotIndex>;

/** Everything a router needs to serve one destination. */
export const DestinationEntry = z
  .strictObject({
    schema: z.literal(SNAPSHOT_SCHEMA),
    /** The destination Service. */
    service: ServiceResource,
    /** HTTPRoutes whose parentRefs name this Service. */
    routes: z.array(HTTPRouteResource),
    /** Services those routes send to or mirror to (other than the destination itself). */
    backends: z.array(ServiceResource),
    /** BackendPolicies that target the destination or one of those Services. */
    policies: z.array(BackendPolicyResource).default([]),
    /** FaultInjections the routes' filters refer to. */
    faults: z.array(FaultInjectionResource).default([]),
    /** AuthorizationPolicies that target the destination or one of its backends, and the mesh-wide ones. */
    authorization: z.array(AuthorizationPolicyResource).default([]),
    /** PeerAuthentications that target the destination or one of its backends, and the mesh-wide ones. */
    peerAuthentication: z.array(PeerAuthenticationResource).default([]),
    /** The mesh's MeshSettings (copied into each entry, so a change recompiles every table). */
    settings: MeshSettingsResource.optional(),
  })
  .superRefine((entry, ctx) => {
    const name = entry.service.metadata.name;
    entry.routes.forEach((route, index) => {
      if (!route.spec.parentRefs.some((ref) => ref.name === name)) {
        ctx.addIssue({
          code: "custom",
          path: ["routes", index, "spec", "parentRefs"],
          message: `route '${route.metadata.name}' is not attached to '${name}'`,
        });
      }
    });
    for (const message of destinationLimitProblems(name, entry.routes)) {
      ctx.addIssue({ code: "custom", path: ["routes"], message });
    }
  });
export type DestinationEntry = z.infer<typeof DestinationEntry>;

/** What the identity Worker reads: how workloads prove who they are, and what is revoked. */
export const IdentityEntry = z.strictObject({
  schema: z.literal(SNAPSHOT_SCHEMA),
  credentials: z.array(WorkloadCredentialResource).default([]),
  revocations: z.array(RevocationResource).default([]),
});
export type IdentityEntry = z.infer<typeof IdentityEntry>;

/** Sorts resources by name, for entries whose content (and key) depends only on the config. */
function byName<T extends { metadata: { name: string } }>(a: T, b: T): number {
  return a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
}

/** The resources that apply to any of `names`: those targeting one, and those with no targetRefs. */
function applying<T extends { spec: { targetRefs?: { name: string }[] | undefined } }>(
  resources: readonly T[],
  names: readonly string[],
): T[] {
  return resources.filter(
    (r) =>
      r.spec.targetRefs === undefined || r.spec.targetRefs.some((ref) => names.includes(ref.name)),
  );
}

/** The index's compact form of the config's Revocations. */
function compactRevocations(revocations: readonly RevocationResource[]): Revocations | undefined {
  if (revocations.length === 0) return undefined;
  const tokens = new Set<string>();
  const subjects: Revocations["subjects"] = [];
  for (const { spec } of [...revocations].sort(byName)) {
    if (spec.jti !== undefined) tokens.add(spec.jti);
    else if (spec.subject !== undefined) {
      subjects.push({
        subject: spec.subject,
        ...(spec.issuedBefore !== undefined ? { issuedBefore: spec.issuedBefore } : {}),
      });
    }
  }
  return { tokens: [...tokens].sort().map((jti) => ({ jti })), subjects };
}

/** One KV write of a snapshot. */
export interface SnapshotWrite {
  key: string;
  value: string;
}

function referencedServices(routes: readonly HTTPRouteResource[]): Set<string> {
  const names = new Set<string>();
  const add = (ref: { group?: string | undefined; kind: string; name: string }) => {
    if ((ref.group ?? "") === "" && ref.kind === "Service") names.add(ref.name);
  };
  for (const route of routes) {
    for (const rule of route.spec.rules) {
      for (const filter of rule.filters ?? []) {
        if (filter.type === "RequestMirror") add(filter.requestMirror.backendRef);
      }
      for (const ref of rule.backendRefs ?? []) {
        add(ref);
        for (const filter of ref.filters ?? []) {
          if (filter.type === "RequestMirror") add(filter.requestMirror.backendRef);
        }
      }
    }
  }
  return names;
}

/** Names of the FaultInjections the routes' filters refer to. */
function referencedFaults(routes: readonly HTTPRouteResource[]): Set<string> {
  const names = new Set<string>();
  for (const route of routes) {
    for (const rule of route.spec.rules) {
      for (const filter of [
        ...(rule.filters ?? []),
        ...(rule.backendRefs ?? []).flatMap((b) => b.filters ?? []),
      ]) {
        if (
          filter.type === "ExtensionRef" &&
          filter.extensionRef.group === MESH_GROUP &&
          filter.extensionRef.kind === "FaultInjection"
        ) {
          names.add(filter.extensionRef.name);
        }
      }
    }
  }
  return names;
}

/** A config turned into KV writes, or why it cannot be (an entry or the index too large). */
export type SnapshotBuild =
  | { ok: true; index: SnapshotIndex; writes: SnapshotWrite[] }
  | { ok: false; issues: ConfigIssue[] };

/**
 * Builds the KV writes for a validated config: the entries first, the index last, so a reader
 * that sees the new index finds every entry it names. Linear in the size of the config.
 */
export function buildSnapshot(
  config: MeshConfig,
  version: number,
  publishedAt: Date,
): SnapshotBuild {
  const services = new Map(config.services.map((s) => [s.metadata.name, s]));
  const attached = new Map<string, HTTPRouteResource[]>();
  for (const route of config.routes) {
    for (const parent of new Set(route.spec.parentRefs.map((ref) => ref.name))) {
      const list = attached.get(parent) ?? [];
      list.push(route);
      attached.set(parent, list);
    }
  }
  // Policies by what they target: `Service/<name>` or `HTTPRoute/<name>`.
  const policiesFor = new Map<string, BackendPolicyResource[]>();
  for (const policy of config.policies) {
    for (const key of new Set(policy.spec.targetRefs.map((ref) => `${ref.kind}/${ref.name}`))) {
      const list = policiesFor.get(key) ?? [];
      list.push(policy);
      policiesFor.set(key, list);
    }
  }
  const servicePolicies = (name: string) => policiesFor.get(`Service/${name}`) ?? [];
  // Where calls to a Service go while its breaker is open.
  const failoverOf = (name: string) =>
    effectiveKnobs(servicePolicies(name), { kind: "Service", name }).knobs.failover?.service;
  const faultsByName = new Map(config.faults.map((f) => [f.metadata.name, f]));
  const issues: ConfigIssue[] = [];
  const writes: SnapshotWrite[] = [];
  const destinations: Record<string, string> = {};
  for (const service of config.services) {
    const name = service.metadata.name;
    const routes = (attached.get(name) ?? []).sort(byName);
    const referenced = referencedServices(routes);
    for (const backend of [name, ...referenced]) {
      const failover = failoverOf(backend);
      if (failover !== undefined) referenced.add(failover);
    }
    const backends = [...referenced]
      .filter((backend) => backend !== name)
      .sort()
      .flatMap((backend) => services.get(backend) ?? []);
    const policies = [
      ...new Set([
        ...[name, ...backends.map((b) => b.metadata.name)].flatMap(servicePolicies),
        ...routes.flatMap((r) => policiesFor.get(`HTTPRoute/${r.metadata.name}`) ?? []),
      ]),
    ].sort(byName);
    const faults = [...referencedFaults(routes)].sort().flatMap((n) => faultsByName.get(n) ?? []);
    // The destination's policies, the mesh-wide ones, and those of the Services it sends to
    // (a backend's own policies apply to calls the split sends it).
    const served = [name, ...backends.map((b) => b.metadata.name)];
    const authorization = applying(config.authorization, served).sort(byName);
    const peerAuthentication = applying(config.peerAuthentication, served).sort(byName);
    // No key for what a destination does not have: an entry's content (and key) stays what it
    // was before these fields existed.
    const entry: z.input<typeof DestinationEntry> = {
      schema: SNAPSHOT_SCHEMA,
      service,
      routes,
      backends,
      ...(policies.length > 0 ? { policies } : {}),
      ...(faults.length > 0 ? { faults } : {}),
      ...(authorization.length > 0 ? { authorization } : {}),
      ...(peerAuthentication.length > 0 ? { peerAuthentication } : {}),
      ...(config.settings ? { settings: config.settings } : {}),
    };
    const value = JSON.stringify(entry);
    const size = utf8Length(value);
    if (size > MAX_ENTRY_BYTES) {
      issues.push({
        path: `Service/${name}`,
        message: `its snapshot entry (the Service, its ${routes.length} routes and ${backends.length} backend Services) is ${size} bytes; the limit is ${MAX_ENTRY_BYTES}`,
      });
      continue;
    }
    const key = `${ENTRY_PREFIX}${name}/${hashHex(value)}`;
    destinations[name] = key;
    writes.push({ key, value });
  }
  // The identity Worker's entry, before the index that names it.
  let identity: string | undefined;
  if (config.credentials.length > 0 || config.revocations.length > 0) {
    const value = JSON.stringify({
      schema: SNAPSHOT_SCHEMA,
      credentials: [...config.credentials].sort(byName),
      revocations: [...config.revocations].sort(byName),
    } satisfies IdentityEntry);
    if (utf8Length(value) > MAX_ENTRY_BYTES) {
      issues.push({
        path: "WorkloadCredential",
        message: `the identity entry (credentials and revocations) is ${utf8Length(value)} bytes; the limit is ${MAX_ENTRY_BYTES}`,
      });
    } else {
      identity = `${IDENTITY_PREFIX}${hashHex(value)}`;
      writes.push({ key: identity, value });
    }
  }
  const revocations = compactRevocations(config.revocations);
  const index: SnapshotIndex = {
    schema: SNAPSHOT_SCHEMA,
    version,
    publishedAt: publishedAt.toISOString(),
    destinations,
    ...(revocations ? { revocations } : {}),
    ...(identity ? { identity } : {}),
  };
  const indexValue = JSON.stringify(index);
  if (utf8Length(indexValue) > MAX_INDEX_BYTES) {
    issues.push({
      path: INDEX_KEY,
      message: `the snapshot index is ${utf8Length(indexValue)} bytes; the limit is ${MAX_INDEX_BYTES}`,
    });
  }
  if (issues.length > 0) return { ok: false, issues };
  writes.push({ key: INDEX_KEY, value: indexValue });
  return { ok: true, index, writes };
}

/** Validates a snapshot index read from KV. */
export function parseIndex(json: unknown): ValidationResult<SnapshotIndex> {
  const parsed = SnapshotIndex.safeParse(json);
  return parsed.success
    ? { ok: true, value: parsed.data }
    : { ok: false, issues: issuesFromZod(parsed.error, INDEX_KEY) };
}

/** Validates the identity entry read from KV. */
export function parseIdentityEntry(json: unknown, key: string): ValidationResult<IdentityEntry> {
  const parsed = IdentityEntry.safeParse(json);
  return parsed.success
    ? { ok: true, value: parsed.data }
    : { ok: false, issues: issuesFromZod(parsed.error, key) };
}

/** Validates a destination entry read from KV. */
export function parseEntry(json: unknown, key: string): ValidationResult<DestinationEntry> {
  const parsed = DestinationEntry.safeParse(json);
  return parsed.success
    ? { ok: true, value: parsed.data }
    : { ok: false, issues: issuesFromZod(parsed.error, key) };
}
