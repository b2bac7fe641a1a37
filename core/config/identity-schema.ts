/**
 * Resource kinds for identity and authorization (meshwork.dev/v1), shaped like Istio's security
 * API where a user would look for it there:
 *  - AuthorizationPolicy: ALLOW, DENY or AUDIT a call by its caller, method, path and headers.
 *  - PeerAuthentication: whether a destination takes calls without a verified caller.
 *  - MeshSettings: mesh-wide switches (the authorization default).
 *  - Revocation: JWT-SVIDs refused before they expire (by `jti` or by subject).
 *  - WorkloadCredential: how a workload outside Workers proves who it is to the identity Worker
 *    (a bootstrap secret, stored hashed, or an mTLS client certificate).
 * The semantics are in docs/identity.md; the schemas here check shape and syntax only.
 */
import { z } from "zod";
import { ADMIN_ROLES, isReservedService, RESERVED_SERVICES } from "../identity/names.ts";
import { HEADER_NAME, MESH_API_VERSION, Metadata, ResourceName } from "./schema.ts";

/** A SPIFFE ID: `spiffe://<trust domain>/<path>` (lower-case trust domain, non-empty path). */
export const SPIFFE_ID = /^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._~!$&'()+,;=:@%-]+)+$/;

const Http_METHOD = /^[A-Z]+$/;

/**
 * A principal pattern: a SPIFFE ID, `*` (any authenticated caller), or a SPIFFE ID with one
 * `*` at its end (prefix: `spiffe://meshwork.local/*` is the whole trust domain) or its start
 * (suffix: `*\/orders`).
 */
const Principal = z
  .string()
  .min(1)
  .max(512)
  .superRefine((value, ctx) => {
    if (value === "*") return;
    const stars = value.split("*").length - 1;
    const bare = value.replace(/^\*|\*$/g, "");
    if (stars > 1 || (stars === 1 && !value.startsWith("*") && !value.endsWith("*"))) {
      ctx.addIssue({
        code: "custom",
        message: "may hold one '*', at its start (suffix match) or its end (prefix match)",
      });
    } else if (value.endsWith("*")) {
      if (!/^spiffe:\/\/[a-z0-9._-]+\//.test(bare)) {
        ctx.addIssue({
          code: "custom",
          message:
            "a prefix pattern must start with spiffe://<trust domain>/ (e.g. spiffe://meshwork.local/*)",
        });
      }
    } else if (value.startsWith("*")) {
      if (bare === "" || bare.includes("spiffe:")) {
        ctx.addIssue({ code: "custom", message: "a suffix pattern is '*' then the end of an ID" });
      }
    } else if (!SPIFFE_ID.test(value)) {
      ctx.addIssue({
        code: "custom",
        message:
          "must be a SPIFFE ID (spiffe://<trust domain>/<service>), '*', or one with a '*' at its start or end",
      });
    }
  });

/** A path pattern, as Istio writes them: exact (`/admin`), prefix (`/admin/*`), suffix (`*.json`), or `*`. */
const PathPattern = z
  .string()
  .min(1)
  .max(1024)
  .superRefine((value, ctx) => {
    if (value === "*") return;
    const stars = value.split("*").length - 1;
    if (stars > 1 || (stars === 1 && !value.startsWith("*") && !value.endsWith("*"))) {
      ctx.addIssue({
        code: "custom",
        message: "may hold one '*', at its start (suffix match) or its end (prefix match)",
      });
      return;
    }
    if (!value.startsWith("*") && !value.startsWith("/")) {
      ctx.addIssue({ code: "custom", message: "must start with '/' (or '*' for a suffix match)" });
    }
    if (/[?#]/.test(value)) {
      ctx.addIssue({ code: "custom", message: "matches the path only: no '?' or '#'" });
    }
  });

const Method = z
  .string()
  .min(1)
  .max(32)
  .regex(Http_METHOD, "must be an HTTP method in upper case (GET, POST, …)");

/** A value pattern for `when`: exact, `prefix*`, `*suffix`, or `*` (present). */
const ValuePattern = z.string().max(4096);

const list = <T extends z.ZodType>(item: T) => z.array(item).min(1).max(64).optional();

/** Who is calling: ORed within a list, ANDed across fields, the `not` forms must not match. */
const Source = z
  .strictObject({
    principals: list(Principal),
    notPrincipals: list(Principal),
  })
  .refine((s) => s.principals !== undefined || s.notPrincipals !== undefined, {
    message: "set principals or notPrincipals",
  });

/** What is called. */
const Operation = z
  .strictObject({
    methods: list(Method),
    notMethods: list(Method),
    paths: list(PathPattern),
    notPaths: list(PathPattern),
  })
  .refine(
    (o) =>
      o.methods !== undefined ||
      o.notMethods !== undefined ||
      o.paths !== undefined ||
      o.notPaths !== undefined,
    { message: "set methods, notMethods, paths or notPaths" },
  );

/** `request.headers[<name>]`, the one condition key the mesh supports (Istio's name for it). */
const WHEN_KEY = /^request\.headers\[([^\]]+)\]$/;

const Condition = z
  .strictObject({
    key: z
      .string()
      .max(300)
      .superRefine((key, ctx) => {
        const name = WHEN_KEY.exec(key)?.[1];
        if (name === undefined) {
          ctx.addIssue({
            code: "custom",
            message: "must be request.headers[<header name>] (the one condition key supported)",
          });
        } else if (!HEADER_NAME.test(name)) {
          ctx.addIssue({ code: "custom", message: `'${name}' is not a valid header name` });
        }
      }),
    values: list(ValuePattern),
    notValues: list(ValuePattern),
  })
  .refine((c) => c.values !== undefined || c.notValues !== undefined, {
    message: "set values or notValues",
  });

/** One rule: matches when every part set matches (an empty rule matches every call). */
const AuthorizationRule = z.strictObject({
  /** Callers; any one entry matching is enough. Unset: any caller, authenticated or not. */
  from: z
    .array(z.strictObject({ source: Source }))
    .min(1)
    .max(16)
    .optional(),
  /** Operations; any one entry matching is enough. Unset: any operation. */
  to: z
    .array(z.strictObject({ operation: Operation }))
    .min(1)
    .max(16)
    .optional(),
  /** Conditions; all must hold. */
  when: z.array(Condition).min(1).max(16).optional(),
});

/** A Service the policy applies to (targetRefs as Gateway API policies write them). */
const ServiceTarget = z.strictObject({
  group: z.literal("").optional(),
  kind: z.literal("Service", { error: "must be Service" }),
  name: ResourceName,
});

const Targets = z
  .array(ServiceTarget)
  .min(1, "name at least one Service, or leave targetRefs out for every destination")
  .max(16)
  .superRefine((refs, ctx) => {
    const seen = new Set<string>();
    refs.forEach((ref, index) => {
      if (seen.has(ref.name)) {
        ctx.addIssue({ code: "custom", path: [index], message: "duplicate target" });
      }
      seen.add(ref.name);
    });
  });

export const AUTHORIZATION_ACTIONS = ["ALLOW", "DENY", "AUDIT"] as const;

/**
 * Who may call what. Attached to destination Services with `targetRefs`, or, without, to every
 * destination. DENY policies are checked first, then ALLOW ones; AUDIT ones only record.
 */
export const AuthorizationPolicyResource = z.strictObject({
  apiVersion: z.literal(MESH_API_VERSION),
  kind: z.literal("AuthorizationPolicy"),
  metadata: Metadata,
  spec: z.strictObject({
    /** Destination Services; unset: every destination (mesh-wide). */
    targetRefs: Targets.optional(),
    /** ALLOW (default), DENY or AUDIT. */
    action: z
      .enum(AUTHORIZATION_ACTIONS, { error: "must be ALLOW, DENY or AUDIT" })
      .default("ALLOW"),
    /** A call matching any rule matches the policy. No rules: the policy matches no call. */
    rules: z.array(AuthorizationRule).max(64).default([]),
    /** Decide and record, but do not enforce (the call goes on whatever this policy says). */
    dryRun: z.boolean().default(false),
  }),
});
export type AuthorizationPolicyResource = z.infer<typeof AuthorizationPolicyResource>;
export type AuthorizationRuleSpec = z.infer<typeof AuthorizationRule>;

/**
 * Whether a destination takes calls without a verified caller: STRICT (default) refuses them
 * (`unauthenticated`), PERMISSIVE lets them through, labelled unauthenticated. Without
 * `targetRefs` it is the mesh-wide default.
 */
export const PeerAuthenticationResource = z.strictObject({
  apiVersion: z.literal(MESH_API_VERSION),
  kind: z.literal("PeerAuthentication"),
  metadata: Metadata,
  spec: z.strictObject({
    targetRefs: Targets.optional(),
    mode: z.enum(["STRICT", "PERMISSIVE"], { error: "must be STRICT or PERMISSIVE" }),
  }),
});
export type PeerAuthenticationResource = z.infer<typeof PeerAuthenticationResource>;

/** Mesh-wide switches; at most one MeshSettings per mesh. */
export const MeshSettingsResource = z.strictObject({
  apiVersion: z.literal(MESH_API_VERSION),
  kind: z.literal("MeshSettings"),
  metadata: Metadata,
  spec: z.strictObject({
    authorization: z
      .strictObject({
        /**
         * What a call no AuthorizationPolicy decides gets: DENY (default: zero trust, a call
         * needs an ALLOW) or ALLOW (Istio's default: a destination with no ALLOW policy takes
         * every call DENY policies let through).
         */
        defaultAction: z.enum(["ALLOW", "DENY"], { error: "must be ALLOW or DENY" }),
      })
      .optional(),
  }),
});
export type MeshSettingsResource = z.infer<typeof MeshSettingsResource>;

/**
 * JWT-SVIDs refused before they expire: one token (`jti`), or every token of a subject — issued
 * before `issuedBefore`, or all of them (and the identity Worker issues it no new one).
 */
export const RevocationResource = z.strictObject({
  apiVersion: z.literal(MESH_API_VERSION),
  kind: z.literal("Revocation"),
  metadata: Metadata,
  spec: z
    .strictObject({
      jti: z.string().min(1).max(256).optional(),
      subject: z.string().max(512).regex(SPIFFE_ID, "must be a SPIFFE ID").optional(),
      issuedBefore: z.iso.datetime({ offset: true }).optional(),
      /** Free text for the audit trail. */
      reason: z.string().max(1024).optional(),
    })
    .superRefine((spec, ctx) => {
      if ((spec.jti === undefined) === (spec.subject === undefined)) {
        ctx.addIssue({ code: "custom", message: "set exactly one of jti and subject" });
      }
      if (spec.issuedBefore !== undefined && spec.subject === undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["issuedBefore"],
          message: "applies to a subject revocation only",
        });
      }
    }),
});
export type RevocationResource = z.infer<typeof RevocationResource>;

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** A workload's service: any service name but the mesh's own (core/identity/names.ts). */
const WorkloadServiceName = ResourceName.refine((name) => !isReservedService(name), {
  message: `is one of the mesh's own services (${RESERVED_SERVICES.join(", ")}); a workload may not prove it is one`,
});

/**
 * How a workload outside Workers proves it is `service` to the identity Worker: a bootstrap
 * secret (only its SHA-256 is stored) or a verified mTLS client certificate (by its SHA-256
 * fingerprint or its subject DN). Delete it, or set `disabled`, to revoke it.
 */
export const WorkloadCredentialResource = z.strictObject({
  apiVersion: z.literal(MESH_API_VERSION),
  kind: z.literal("WorkloadCredential"),
  metadata: Metadata,
  spec: z
    .strictObject({
      /** The service the credential proves (its SVID's subject is spiffe://<domain>/<service>). */
      service: WorkloadServiceName,
      bootstrap: z
        .strictObject({
          secretSha256: z
            .string()
            .regex(SHA256_HEX, "must be the secret's SHA-256, 64 lower-case hex digits"),
        })
        .optional(),
      certificate: z
        .strictObject({
          fingerprintSHA256: z
            .string()
            .regex(SHA256_HEX, "must be 64 lower-case hex digits")
            .optional(),
          subjectDN: z.string().min(1).max(1024).optional(),
        })
        .refine((c) => c.fingerprintSHA256 !== undefined || c.subjectDN !== undefined, {
          message: "set fingerprintSHA256 or subjectDN",
        })
        .optional(),
      /**
       * Control-plane roles of the SVIDs this credential attests (their `meshwork.dev/roles`
       * claim): `admin` may read and change the config through the policy Worker's admin API,
       * `viewer` may read it. Unset: none.
       */
      roles: z
        .array(z.enum(ADMIN_ROLES, { error: `must be ${ADMIN_ROLES.join(" or ")}` }))
        .min(1, "name a role, or leave roles out")
        .max(ADMIN_ROLES.length)
        .refine((roles) => new Set(roles).size === roles.length, { message: "duplicate role" })
        .optional(),
      /** After this the credential proves nothing. */
      expires: z.iso.datetime({ offset: true }).optional(),
      disabled: z.boolean().default(false),
    })
    .refine((s) => (s.bootstrap === undefined) !== (s.certificate === undefined), {
      message: "set exactly one of bootstrap and certificate",
    }),
});
export type WorkloadCredentialResource = z.infer<typeof WorkloadCredentialResource>;
