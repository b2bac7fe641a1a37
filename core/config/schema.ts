/**
 * The mesh's resource schemas: the one place config is checked.
 *
 * Everything that reaches the mesh as JSON or YAML — the admin API, `meshctl`, the KV snapshot the
 * router loads — passes through these zod schemas once and comes out as typed values; code past
 * this boundary trusts them. Objects are strict, so a misspelt or unsupported field is an error
 * naming its path rather than a setting silently ignored. HTTPRoute follows Gateway API v1
 * (`gateway.networking.k8s.io/v1`) field for field, including its limits and cross-field rules.
 */
import { z } from "zod";
import { isDuration, parseDuration } from "../duration.ts";
import { regexProblem } from "../routing/regex.ts";
import {
  MAX_ANNOTATIONS_LENGTH,
  MAX_LABEL_VALUE_LENGTH,
  MAX_MATCHES_PER_ROUTE,
  MAX_METADATA_ENTRIES,
  MAX_METADATA_KEY_LENGTH,
} from "./limits.ts";

/** API group/version of the mesh's own kinds. */
export const MESH_API_VERSION = "meshwork.dev/v1";
/** API group/version of HTTPRoute, as in the Gateway API. */
export const GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1";

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** An HTTP header name (an RFC 9110 token). */
export const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;
const BINDING_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const HOSTNAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** A resource name: an RFC 1123 DNS label, as Kubernetes Service names are. */
export const ResourceName = z
  .string()
  .min(1)
  .max(63)
  .regex(DNS_LABEL, "must be a DNS label: lower-case letters, digits and '-', 1-63 characters");

/** A Kubernetes object name that need not be a Service's (for references to other kinds). */
const ObjectName = z
  .string()
  .min(1)
  .max(253)
  .regex(
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
    "must be a DNS subdomain: lower-case letters, digits, '-' and '.'",
  );

const MetadataKey = z.string().min(1).max(MAX_METADATA_KEY_LENGTH);

function checkEntryCount(record: Record<string, string>, ctx: z.RefinementCtx): void {
  const count = Object.keys(record).length;
  if (count > MAX_METADATA_ENTRIES) {
    ctx.addIssue({
      code: "custom",
      message: `has ${count} entries; the limit is ${MAX_METADATA_ENTRIES}`,
    });
  }
}

/** Kubernetes-style object metadata, shared by every kind. */
export const Metadata = z.strictObject({
  /** The resource's name, unique per kind. */
  name: ResourceName,
  /** Accepted for Kubernetes compatibility; the mesh has one namespace, `default`. */
  namespace: ResourceName.optional(),
  /** Optional; breaks precedence ties between HTTPRoutes (older first), as in the Gateway API. */
  creationTimestamp: z.iso.datetime({ offset: true }).optional(),
  /** Free-form labels: at most 64, values up to 63 characters. */
  labels: z
    .record(MetadataKey, z.string().max(MAX_LABEL_VALUE_LENGTH))
    .superRefine(checkEntryCount)
    .optional(),
  /** Free-form annotations: at most 64, values together up to 16 KiB. */
  annotations: z
    .record(MetadataKey, z.string())
    .superRefine((annotations, ctx) => {
      checkEntryCount(annotations, ctx);
      const length = Object.values(annotations).reduce((sum, value) => sum + value.length, 0);
      if (length > MAX_ANNOTATIONS_LENGTH) {
        ctx.addIssue({
          code: "custom",
          message: `values add up to ${length} characters; the limit is ${MAX_ANNOTATIONS_LENGTH}`,
        });
      }
    })
    .optional(),
});

const Duration = z.string().refine(isDuration, {
  message: "must be a Gateway API duration such as 500ms, 10s or 1m30s",
});

function isLoopbackHost(hostname: string): boolean {
  return (
    hostname === "localhost" ||
    hostname === "[::1]" ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname)
  );
}

// ---------------------------------------------------------------------------------------------
// Service

const BindingEndpoint = z.strictObject({
  /** Name of one of the router's service bindings (for example `ECHO_V1`). */
  binding: z
    .string()
    .regex(BINDING_NAME, "must be a binding name such as ECHO_V1 (letters, digits, '_')"),
  /** Relative share of the Service's traffic when no route splits it (default 1). */
  weight: z.int().min(0).max(1_000_000).default(1),
});

const UrlEndpoint = z.strictObject({
  /**
   * Base URL of an endpoint outside Workers (a hybrid workload). HTTPS; plain `http://` only for
   * loopback addresses, in local development and tests. The request path is appended to its path.
   */
  url: z.string().superRefine((text, ctx) => {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      ctx.addIssue({
        code: "custom",
        message: "must be an absolute URL such as https://api.example.com",
      });
      return;
    }
    if (url.protocol === "https:") return;
    if (url.protocol === "http:" && isLoopbackHost(url.hostname)) return;
    ctx.addIssue({
      code: "custom",
      message:
        "must use https:// (plain http:// is allowed only for loopback addresses in local development)",
    });
  }),
  weight: z.int().min(0).max(1_000_000).default(1),
});

/** One place a Service's requests can go: a router service binding or a URL. */
export const Endpoint = z.union([BindingEndpoint, UrlEndpoint], {
  error: "an endpoint is either { binding: NAME } or { url: https://... }",
});

/**
 * Whether callers may pin a call to one backend with `X-Mesh-Backend`. Off unless enabled: a pin
 * overrides the configured weights, so it is a privilege the destination's owner grants.
 */
const BackendPinning = z.strictObject({
  /** Honour `X-Mesh-Backend` on calls to this Service (default false). */
  enabled: z.boolean().default(false),
  /** Allow pinning a backend whose weight is 0 (a version not yet live; default false). */
  allowZeroWeight: z.boolean().default(false),
  /**
   * Only these calling services may pin (their identity as attested by the caller's binding);
   * unset: any caller.
   */
  callers: z.array(ResourceName).min(1).max(64).optional(),
});

/** The registry entry for a service: its name and endpoints. */
export const ServiceResource = z.strictObject({
  apiVersion: z.literal(MESH_API_VERSION),
  kind: z.literal("Service"),
  metadata: Metadata,
  spec: z.strictObject({
    /** Where the service runs; with no HTTPRoute attached, calls balance across these. */
    endpoints: z.array(Endpoint).min(1, "a Service needs at least one endpoint").max(64),
    /** `X-Mesh-Backend` pinning for calls to this Service; off by default. */
    backendPinning: BackendPinning.optional(),
    /**
     * The `X-Mesh-Passport` calls to this Service carry: `Shared` (default) — one passport per
     * caller, reused until shortly before it expires — or `PerRequest`, bound to the call's
     * method and path, with its own `jti`.
     */
    passport: z
      .strictObject({
        mode: z.enum(["Shared", "PerRequest"], { error: "must be Shared or PerRequest" }),
      })
      .optional(),
  }),
});

// ---------------------------------------------------------------------------------------------
// HTTPRoute (Gateway API v1)

const PathValue = z
  .string()
  .min(1)
  .max(1024)
  .refine((v) => v.startsWith("/"), { message: "must start with '/'" });

/** Gateway API's path characters: RFC 3986 pchar and '/', anything else percent-encoded. */
const PATH_CHARACTERS = /^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})+$/;

function checkPlainPath(value: string, ctx: z.RefinementCtx): void {
  if (!PATH_CHARACTERS.test(value)) {
    ctx.addIssue({
      code: "custom",
      message:
        "may hold only URL path characters (letters, digits, - . _ ~ ! $ & ' ( ) * + , ; = : @ /) and %XX escapes: percent-encode anything else (é as %C3%A9, a space as %20)",
    });
  }
  for (const bad of ["//", "/./", "/../", "%2f", "%2F", "#"]) {
    if (value.includes(bad)) {
      ctx.addIssue({ code: "custom", message: `must not contain '${bad}'` });
    }
  }
  if (value.endsWith("/..") || value.endsWith("/.")) {
    ctx.addIssue({ code: "custom", message: "must not end with '/.' or '/..'" });
  }
}

/** Refuses a pattern outside RE2's linear-time dialect, at the match's `value`. */
function checkRegex(value: string, ctx: z.RefinementCtx): void {
  const problem = regexProblem(value);
  if (problem) ctx.addIssue({ code: "custom", path: ["value"], message: problem });
}

const PathMatch = z
  .strictObject({
    /** Exact, PathPrefix (default) or RegularExpression (matched against the whole path). */
    type: z.enum(["Exact", "PathPrefix", "RegularExpression"]).default("PathPrefix"),
    value: PathValue.default("/"),
  })
  .superRefine((m, ctx) => {
    if (m.type === "RegularExpression") checkRegex(m.value, ctx);
    else checkPlainPath(m.value, ctx);
  });

const ValueMatch = (what: string) =>
  z
    .strictObject({
      /** Exact (default) or RegularExpression (matched against the whole value). */
      type: z.enum(["Exact", "RegularExpression"]).default("Exact"),
      name: z.string().min(1).max(256),
      value: z.string().max(4096),
    })
    .superRefine((m, ctx) => {
      if (what === "header" && !HEADER_NAME.test(m.name)) {
        ctx.addIssue({ code: "custom", path: ["name"], message: "is not a valid header name" });
      }
      if (m.type === "RegularExpression") checkRegex(m.value, ctx);
    });

const HTTP_METHODS = [
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "CONNECT",
  "OPTIONS",
  "TRACE",
  "PATCH",
] as const;

function uniqueNames(
  items: readonly { name: string }[] | undefined,
  ctx: z.RefinementCtx,
  what: string,
  caseInsensitive: boolean,
): void {
  const seen = new Set<string>();
  items?.forEach((item, index) => {
    const key = caseInsensitive ? item.name.toLowerCase() : item.name;
    if (seen.has(key)) {
      ctx.addIssue({
        code: "custom",
        path: [index, "name"],
        message: `duplicate ${what} name '${item.name}'`,
      });
    }
    seen.add(key);
  });
}

/** One set of conditions; all must hold. A rule's matches are alternatives. */
export const HTTPRouteMatch = z.strictObject({
  path: PathMatch.optional(),
  headers: z
    .array(ValueMatch("header"))
    .max(16)
    .superRefine((h, ctx) => uniqueNames(h, ctx, "header", true))
    .optional(),
  queryParams: z
    .array(ValueMatch("query"))
    .max(16)
    .superRefine((q, ctx) => uniqueNames(q, ctx, "query parameter", false))
    .optional(),
  method: z.enum(HTTP_METHODS).optional(),
});

const HeaderValue = z.strictObject({
  name: z.string().min(1).max(256).regex(HEADER_NAME, "is not a valid header name"),
  value: z.string().max(4096),
});

const HeaderModifier = z
  .strictObject({
    /** Replace (or add) these headers. */
    set: z.array(HeaderValue).max(16).optional(),
    /** Append these values, keeping any existing ones. */
    add: z.array(HeaderValue).max(16).optional(),
    /** Remove these headers. */
    remove: z.array(z.string().min(1).max(256).regex(HEADER_NAME)).max(16).optional(),
  })
  .superRefine((m, ctx) => {
    uniqueNames(m.set, ctx, "header", true);
    uniqueNames(m.add, ctx, "header", true);
    const removed = new Set<string>();
    m.remove?.forEach((name, index) => {
      if (removed.has(name.toLowerCase())) {
        ctx.addIssue({ code: "custom", path: ["remove", index], message: `duplicate '${name}'` });
      }
      removed.add(name.toLowerCase());
    });
  });

const PathModifier = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("ReplaceFullPath"), replaceFullPath: PathValue }),
  z.strictObject({ type: z.literal("ReplacePrefixMatch"), replacePrefixMatch: PathValue }),
]);

/**
 * A reference to the object that receives traffic. The mesh resolves references to Services
 * (group `""`, kind `Service`); as the Gateway API specifies, a reference to another kind, or to
 * a Service that does not exist, is accepted, reported as a warning, and the requests it would
 * receive are answered 500.
 */
const BackendObjectReference = z.strictObject({
  /** API group of the referent; `""` (the default) is the core group, where Service lives. */
  group: z
    .string()
    .max(253)
    .regex(/^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, {
      message: "must be an API group such as '' (core) or example.com",
    })
    .optional(),
  /** Kind of the referent (default `Service`). */
  kind: z
    .string()
    .min(1)
    .max(63)
    .regex(/^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/, { message: "must be a kind such as Service" })
    .default("Service"),
  name: ObjectName,
  namespace: ResourceName.optional(),
  /**
   * The Service port (Gateway API requires it for Services). A mesh Service has one implicit
   * port, so any value selects it.
   */
  port: z.int().min(1).max(65535).optional(),
});

const RequestHeaderModifierFilter = z.strictObject({
  type: z.literal("RequestHeaderModifier"),
  requestHeaderModifier: HeaderModifier,
});
const ResponseHeaderModifierFilter = z.strictObject({
  type: z.literal("ResponseHeaderModifier"),
  responseHeaderModifier: HeaderModifier,
});
const RequestRedirectFilter = z.strictObject({
  type: z.literal("RequestRedirect"),
  requestRedirect: z.strictObject({
    scheme: z.enum(["http", "https"]).optional(),
    hostname: z.string().max(253).regex(HOSTNAME, "must be a lower-case DNS name").optional(),
    path: PathModifier.optional(),
    port: z.int().min(1).max(65535).optional(),
    /** 302 unless set. */
    statusCode: z
      .union([z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)])
      .default(302),
  }),
});
const URLRewriteFilter = z.strictObject({
  type: z.literal("URLRewrite"),
  urlRewrite: z.strictObject({
    hostname: z.string().max(253).regex(HOSTNAME, "must be a lower-case DNS name").optional(),
    path: PathModifier.optional(),
  }),
});
const RequestMirrorFilter = z.strictObject({
  type: z.literal("RequestMirror"),
  requestMirror: z
    .strictObject({
      backendRef: BackendObjectReference,
      /** Share of requests mirrored, 0-100 (default: all). */
      percent: z.int().min(0).max(100).optional(),
      /** Share of requests mirrored as a fraction (denominator defaults to 100). */
      fraction: z
        .strictObject({
          numerator: z.int().min(0),
          denominator: z.int().min(1).default(100),
        })
        .refine((f) => f.numerator <= f.denominator, {
          message: "numerator must be ≤ denominator",
        })
        .optional(),
    })
    .refine((m) => m.percent === undefined || m.fraction === undefined, {
      message: "set percent or fraction, not both",
    }),
});

/** `scheme://host[:port]`, the host possibly starting with `*.`; or `*` for any origin. */
const CORS_ORIGIN = /^(\*|https?:\/\/(\*|(\*\.)?([a-zA-Z0-9-]+\.)*[a-zA-Z0-9-]+)(:[0-9]{1,5})?)$/;

function noWildcardWithOthers(what: string) {
  return (list: readonly string[], ctx: z.RefinementCtx) => {
    if (list.includes("*") && list.length > 1) {
      ctx.addIssue({ code: "custom", message: `'*' must be the only entry of ${what}` });
    }
    const seen = new Set<string>();
    list.forEach((item, index) => {
      const key = item.toLowerCase();
      if (seen.has(key)) {
        ctx.addIssue({ code: "custom", path: [index], message: `duplicate '${item}'` });
      }
      seen.add(key);
    });
  };
}

const CORSHeaderList = (what: string) =>
  z
    .array(z.string().min(1).max(256).regex(HEADER_NAME, "is not a valid header name"))
    .max(64)
    .superRefine(noWildcardWithOthers(what));

/** Gateway API CORS filter (GEP-1767): the mesh answers preflights and labels responses. */
const CORSFilter = z.strictObject({
  type: z.literal("CORS"),
  cors: z.strictObject({
    /**
     * Origins allowed to make cross-origin calls: `https://app.example.com`, `https://*.example.com`
     * (any number of labels), `http://localhost:3000`, or `*` alone for any origin. Unset: none.
     */
    allowOrigins: z
      .array(
        z
          .string()
          .min(1)
          .max(253)
          .regex(
            CORS_ORIGIN,
            "must be scheme://host[:port] (http or https; host may start with *.) or *",
          )
          .refine(
            (origin) => !/:(\d+)$/.test(origin) || Number(/:(\d+)$/.exec(origin)![1]) <= 65535,
            {
              message: "has a port above 65535",
            },
          ),
      )
      .max(64)
      .superRefine(noWildcardWithOthers("allowOrigins"))
      .optional(),
    /** Send `Access-Control-Allow-Credentials: true` (default false). */
    allowCredentials: z.boolean().optional(),
    /** Methods a preflight allows (`*` alone: any). */
    allowMethods: z
      .array(z.enum([...HTTP_METHODS, "*"]))
      .max(9)
      .superRefine(noWildcardWithOthers("allowMethods"))
      .optional(),
    /** Request headers a preflight allows (`*` alone: any). */
    allowHeaders: CORSHeaderList("allowHeaders").optional(),
    /** Response headers the browser may expose to the page (`*` alone: any, without credentials). */
    exposeHeaders: CORSHeaderList("exposeHeaders").optional(),
    /** Seconds a browser may cache a preflight answer (default 5). */
    maxAge: z.int().min(1).max(2_147_483_647).default(5),
  }),
});

/** The API group of the mesh's own kinds, as ExtensionRef filters name it. */
export const MESH_GROUP = "meshwork.dev";

/**
 * A filter implemented by the mesh itself, named by reference (Gateway API ExtensionRef): today
 * `{ group: meshwork.dev, kind: FaultInjection, name }`. A reference that does not resolve is
 * not skipped: the requests that rule would filter are answered 500, as the Gateway API says.
 */
const ExtensionRefFilter = z.strictObject({
  type: z.literal("ExtensionRef"),
  extensionRef: z.strictObject({
    group: z.string().max(253),
    kind: z.string().min(1).max(63),
    name: ObjectName,
  }),
});

/** The filters the mesh supports. */
export const HTTPRouteFilter = z.discriminatedUnion(
  "type",
  [
    RequestHeaderModifierFilter,
    ResponseHeaderModifierFilter,
    RequestRedirectFilter,
    URLRewriteFilter,
    RequestMirrorFilter,
    CORSFilter,
    ExtensionRefFilter,
  ],
  {
    error: (issue) =>
      issue.code === "invalid_union"
        ? "type must be one of RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect, URLRewrite, RequestMirror, CORS, ExtensionRef"
        : undefined,
  },
);
export type HTTPRouteFilter = z.infer<typeof HTTPRouteFilter>;

function checkFilterList(filters: readonly HTTPRouteFilter[] | undefined, ctx: z.RefinementCtx) {
  if (!filters) return;
  const counts = new Map<string, number>();
  filters.forEach((filter, index) => {
    const count = (counts.get(filter.type) ?? 0) + 1;
    counts.set(filter.type, count);
    if (count > 1 && filter.type !== "RequestMirror") {
      ctx.addIssue({
        code: "custom",
        path: [index, "type"],
        message: `${filter.type} may appear only once in a filter list`,
      });
    }
  });
  if (counts.has("RequestRedirect") && counts.has("URLRewrite")) {
    ctx.addIssue({
      code: "custom",
      path: [],
      message: "RequestRedirect and URLRewrite cannot be used together",
    });
  }
}

/** A weighted reference to a Service that receives a share of a rule's traffic. */
export const HTTPBackendRef = BackendObjectReference.extend({
  /** Relative share of the rule's traffic, 0-1,000,000 (default 1); 0 is never chosen. */
  weight: z.int().min(0).max(1_000_000).default(1),
  /** Filters applied only when this backend is chosen. */
  filters: z
    .array(HTTPRouteFilter)
    .max(16)
    .superRefine((f, ctx) => checkFilterList(f, ctx))
    .optional(),
});

/** Gateway API session persistence, implemented as consistent hashing (see README). */
const SessionPersistence = z
  .strictObject({
    /** Cookie or header name carrying the session key (cookie default `mesh-session`). */
    sessionName: z.string().min(1).max(128).optional(),
    /** Cookie (default): the mesh issues a cookie if absent. Header: hash on a header. */
    type: z.enum(["Cookie", "Header"]).default("Cookie"),
    /** Cookie lifetime when the mesh issues one. */
    absoluteTimeout: Duration.optional(),
    /** Accepted; sessions are stateless hashes, so idle time has no effect. */
    idleTimeout: Duration.optional(),
    cookieConfig: z
      .strictObject({ lifetimeType: z.enum(["Permanent", "Session"]).default("Session") })
      .optional(),
  })
  .superRefine((s, ctx) => {
    if (s.type === "Header" && !s.sessionName) {
      ctx.addIssue({
        code: "custom",
        path: ["sessionName"],
        message: "is required when type is Header (the header to hash on)",
      });
    }
    if (s.sessionName && s.type === "Header" && !HEADER_NAME.test(s.sessionName)) {
      ctx.addIssue({ code: "custom", path: ["sessionName"], message: "is not a header name" });
    }
  });

const RuleTimeouts = z
  .strictObject({
    /** Whole-request deadline, from receipt until the response is complete. */
    request: Duration.optional(),
    /** Deadline for each request to a backend. Must not exceed `request`. */
    backendRequest: Duration.optional(),
  })
  .superRefine((t, ctx) => {
    if (t.request === undefined || t.backendRequest === undefined) return;
    const request = parseDuration(t.request);
    const backend = parseDuration(t.backendRequest);
    if (request !== 0 && (backend === 0 || backend > request)) {
      ctx.addIssue({
        code: "custom",
        path: ["backendRequest"],
        message: "must not be longer than timeouts.request",
      });
    }
  });

/** Response statuses to retry (400–599), each once. */
const RetryCodes = z
  .array(z.int().min(400).max(599))
  .max(32)
  .superRefine((codes, ctx) => {
    const seen = new Set<number>();
    codes.forEach((code, index) => {
      if (seen.has(code))
        ctx.addIssue({ code: "custom", path: [index], message: `duplicate ${code}` });
      seen.add(code);
    });
  });

/**
 * Gateway API HTTPRoute retry (GEP-1731): retry a failed try of this rule's requests. Retries go
 * to the same backend Service (another endpoint when it has several), within
 * `timeouts.request`, only for idempotent requests, and within the destination's retry budget.
 */
const RuleRetry = z.strictObject({
  /** Response statuses that are retried (400–599); connection failures and per-try timeouts always are. */
  codes: RetryCodes.optional(),
  /** Retries after the first try (default 2); 0 turns retries off. */
  attempts: z.int().min(0).max(100).optional(),
  /** Base interval of the backoff between tries (default 25ms); waits grow exponentially, with jitter. */
  backoff: Duration.optional(),
});

/** One rule: when any of its matches holds, apply its filters and send to its backends. */
export const HTTPRouteRule = z
  .strictObject({
    /** Optional section name, shown in status and errors. */
    name: z.string().min(1).max(253).optional(),
    /** Alternatives; none means "every request" (PathPrefix `/`). */
    matches: z.array(HTTPRouteMatch).max(64).optional(),
    filters: z
      .array(HTTPRouteFilter)
      .max(16)
      .superRefine((f, ctx) => checkFilterList(f, ctx))
      .optional(),
    backendRefs: z.array(HTTPBackendRef).max(16).optional(),
    timeouts: RuleTimeouts.optional(),
    /** Retries of failed tries (Gateway API GEP-1731). */
    retry: RuleRetry.optional(),
    sessionPersistence: SessionPersistence.optional(),
  })
  .superRefine((rule, ctx) => {
    const filters = [
      ...(rule.filters ?? []),
      ...(rule.backendRefs ?? []).flatMap((b) => b.filters ?? []),
    ];
    const prefixReplaced = filters.some(
      (f) =>
        (f.type === "URLRewrite" && f.urlRewrite.path?.type === "ReplacePrefixMatch") ||
        (f.type === "RequestRedirect" && f.requestRedirect.path?.type === "ReplacePrefixMatch"),
    );
    if (!prefixReplaced) return;
    (rule.matches ?? []).forEach((match, index) => {
      if (match.path && match.path.type !== "PathPrefix") {
        ctx.addIssue({
          code: "custom",
          path: ["matches", index, "path", "type"],
          message: "ReplacePrefixMatch needs every match of the rule to be a PathPrefix match",
        });
      }
    });
  });

const ParentReference = z.strictObject({
  /** Only the core group (`""`); mesh routes attach to Services (GAMMA). */
  group: z.literal("").optional(),
  kind: z
    .literal("Service", {
      error:
        "must be Service: mesh routes attach to the destination Service (there are no Gateways)",
    })
    .default("Service"),
  name: ResourceName,
  namespace: ResourceName.optional(),
  /**
   * Refused: in GAMMA a port narrows the route to traffic for that port of the Service, and mesh
   * Services have no ports, so accepting it would silently widen the route to every call.
   */
  port: z
    .unknown()
    .refine(() => false, {
      message:
        "is not supported: mesh Services have no ports, so a route applies to every call to its Service; remove port",
    })
    .optional(),
  /** Refused for the same reason as `port`. */
  sectionName: z
    .unknown()
    .refine(() => false, {
      message:
        "is not supported: mesh Services have no named ports; remove sectionName to attach the route to the whole Service",
    })
    .optional(),
});

/** Gateway API v1 HTTPRoute, mesh style: `parentRefs` name the destination Services. */
export const HTTPRouteResource = z.strictObject({
  apiVersion: z.literal(GATEWAY_API_VERSION),
  kind: z.literal("HTTPRoute"),
  metadata: Metadata,
  spec: z.strictObject({
    parentRefs: z.array(ParentReference).min(1, "name at least one destination Service").max(32),
    /** Accepted and ignored, as GAMMA specifies for mesh routes. */
    hostnames: z.array(z.string().max(253)).max(16).optional(),
    /** Default: one rule that sends every request to the Service's own endpoints. */
    rules: z
      .array(HTTPRouteRule)
      .min(1)
      .max(16)
      .prefault([{}])
      .superRefine((rules, ctx) => {
        const matches = rules.reduce((sum, rule) => sum + (rule.matches?.length ?? 0), 0);
        if (matches > MAX_MATCHES_PER_ROUTE) {
          ctx.addIssue({
            code: "custom",
            message: `hold ${matches} matches in all; a route may have at most ${MAX_MATCHES_PER_ROUTE} (split it into several routes)`,
          });
        }
      }),
  }),
});

export type ServiceResource = z.infer<typeof ServiceResource>;
export type HTTPRouteResource = z.infer<typeof HTTPRouteResource>;
export type HTTPRouteRule = z.infer<typeof HTTPRouteRule>;
export type HTTPRouteMatch = z.infer<typeof HTTPRouteMatch>;
export type HTTPBackendRef = z.infer<typeof HTTPBackendRef>;
export type Endpoint = z.infer<typeof Endpoint>;

// ---------------------------------------------------------------------------------------------
// BackendPolicy (the mesh's own kind, attached as Gateway API policies are)

/**
 * The circuit breaker of calls to a backend Service (see core/resilience/breaker.ts): trips on a
 * streak of failures or a failure rate, stays open for a growing, jittered time, then admits a few
 * probes. A failure is a 5xx response, a connection failure or exception, or a timeout.
 */
const CircuitBreaker = z
  .strictObject({
    /** Trip after this many failures in a row (default 5; 0: never on a streak). */
    consecutiveFailures: z.int().min(0).max(1000).default(5),
    /** Trip when this share of the window's calls failed (0–1; default: off). */
    failureRate: z.number().gt(0).max(1).optional(),
    /** ... once the window holds at least this many calls (default 20). */
    minimumRequests: z.int().min(1).max(100_000).default(20),
    /** The failure-rate window (default 10s). */
    window: Duration.default("10s"),
    /** How long the first trip stays open (default 5s); each trip in a row doubles it. */
    baseOpenTime: Duration.default("5s"),
    /** The longest an open period grows to (default 5m). */
    maxOpenTime: Duration.default("5m"),
    /** Random extra open time, as a share of the open period (0–1, default 0.1). */
    openJitter: z.number().min(0).max(1).default(0.1),
    /** Calls let through while half-open; that many successes close it (default 1). */
    halfOpenProbes: z.int().min(1).max(100).default(1),
  })
  .superRefine((b, ctx) => {
    positiveDuration(b.window, ["window"], ctx);
    positiveDuration(b.baseOpenTime, ["baseOpenTime"], ctx);
    if (parseDuration(b.maxOpenTime) < parseDuration(b.baseOpenTime)) {
      ctx.addIssue({
        code: "custom",
        path: ["maxOpenTime"],
        message: "must not be shorter than baseOpenTime",
      });
    }
  });

function positiveDuration(
  value: string | undefined,
  path: (string | number)[],
  ctx: z.RefinementCtx,
): void {
  if (value !== undefined && isDuration(value) && parseDuration(value) === 0) {
    ctx.addIssue({ code: "custom", path, message: "must be longer than 0s" });
  }
}

/** How `backendRequest: auto` sets each try's timeout from the backend's observed latency. */
const AutoTimeout = z
  .strictObject({
    /** The latency quantile the timeout follows (default 0.99, the p99). */
    quantile: z.number().min(0.5).max(0.9999).default(0.99),
    /** The timeout is the quantile times this (default 2). */
    factor: z.number().min(1).max(100).default(2),
    /** Never shorter than this (default 100ms). */
    min: Duration.default("100ms"),
    /** Never longer than this, and the timeout until there are enough samples (default 10s). */
    max: Duration.default("10s"),
    /** Samples, across the mesh, before the estimate is trusted (default 100). */
    minSamples: z.int().min(1).max(1_000_000).default(100),
  })
  .superRefine((a, ctx) => {
    positiveDuration(a.min, ["min"], ctx);
    if (parseDuration(a.max) < parseDuration(a.min)) {
      ctx.addIssue({ code: "custom", path: ["max"], message: "must not be shorter than min" });
    }
  });

const PolicyTimeouts = z
  .strictObject({
    /** The whole call's deadline, every try and backoff included (default: none). */
    request: Duration.optional(),
    /** Each try's deadline: a duration, or `auto` to learn it from the backend (default: none). */
    backendRequest: z
      .union([Duration, z.literal("auto")], {
        error: "must be a duration such as 2s, or auto",
      })
      .optional(),
    /** The knobs of `backendRequest: auto`. */
    auto: AutoTimeout.optional(),
  })
  .superRefine((t, ctx) => {
    if (
      t.request !== undefined &&
      t.backendRequest !== undefined &&
      t.backendRequest !== "auto" &&
      parseDuration(t.request) !== 0 &&
      (parseDuration(t.backendRequest) === 0 ||
        parseDuration(t.backendRequest) > parseDuration(t.request))
    ) {
      ctx.addIssue({
        code: "custom",
        path: ["backendRequest"],
        message: "must not be longer than timeouts.request",
      });
    }
  });

/** Failures a retry policy can retry, as Envoy names them. */
export const RETRY_CONDITIONS = ["5xx", "gateway-error", "connect-failure", "timeout"] as const;

/**
 * A retry policy's defaults for calls to the target (a rule's own `retry` overrides them field by
 * field). Setting it turns retries on.
 */
const PolicyRetry = z
  .strictObject({
    /** Retries after the first try (default 2); 0 turns retries off. */
    attempts: z.int().min(0).max(100).optional(),
    /**
     * What is retried (default: gateway-error, connect-failure, timeout): `5xx` (any 5xx status),
     * `gateway-error` (502, 503, 504), `connect-failure` (the upstream could not be reached, or the
     * binding threw), `timeout` (a try exceeded its own timeout).
     */
    on: z
      .array(z.enum(RETRY_CONDITIONS))
      .max(RETRY_CONDITIONS.length)
      .refine((on) => new Set(on).size === on.length, { message: "lists a condition twice" })
      .optional(),
    /** Further response statuses that are retried (400–599), for example 429. */
    codes: RetryCodes.optional(),
    /** Base interval of the exponential backoff (default 25ms). */
    backoff: Duration.optional(),
    /** The longest backoff (default ten times `backoff`). */
    maxBackoff: Duration.optional(),
    /** The longest `Retry-After` honoured; an upstream asking for longer is not retried (default 10s). */
    maxRetryAfter: Duration.optional(),
    /** Retry non-idempotent requests (POST, PATCH) without an `Idempotency-Key` too (default false). */
    nonIdempotent: z.boolean().optional(),
  })
  .superRefine((r, ctx) => {
    positiveDuration(r.backoff, ["backoff"], ctx);
    if (
      r.backoff !== undefined &&
      r.maxBackoff !== undefined &&
      isDuration(r.backoff) &&
      isDuration(r.maxBackoff) &&
      parseDuration(r.maxBackoff) < parseDuration(r.backoff)
    ) {
      ctx.addIssue({
        code: "custom",
        path: ["maxBackoff"],
        message: "must not be shorter than backoff",
      });
    }
  });

/** How many retries a backend may receive, mesh-wide (Linkerd's retry budget). */
const RetryBudget = z
  .strictObject({
    /** Retries per original request over the window (default 0.2: retries add at most 20%). */
    ratio: z.number().min(0).max(10).default(0.2),
    /** Retries a second allowed however little traffic there is (default 10). */
    minPerSecond: z.number().min(0).max(100_000).default(10),
    /** The window the ratio is counted over, 1s to 10m (default 10s). */
    window: Duration.default("10s"),
  })
  .superRefine((b, ctx) => {
    const ms = parseDuration(b.window);
    if (ms < 1000 || ms > 600_000) {
      ctx.addIssue({ code: "custom", path: ["window"], message: "must be between 1s and 10m" });
    }
  });

/** What happens to a split whose backends' circuit breakers are open. */
const OutlierDetection = z.strictObject({
  /**
   * At most this share of a split's backends (by count, rounded down, at least one) leaves it
   * because its breaker is open (default 100); the rest keep their share and are called anyway.
   */
  maxEjectionPercent: z.int().min(0).max(100).default(100),
  /**
   * With every backend of a split open: call the least-bad one (the one whose breaker reopens
   * first) instead of answering `no_healthy_backend` (default false).
   */
  failOpen: z.boolean().default(false),
});

/** How a try picks one of the Service's endpoints. */
const LoadBalancer = z.strictObject({
  /**
   * `RoundRobin` (default; weighted, smooth), `Random` (weighted) or `PeakEWMA` (latency-aware:
   * the cheaper of two random endpoints by peak-sensitive moving average latency × calls in
   * flight, as Linkerd balances).
   */
  type: z.enum(["RoundRobin", "Random", "PeakEWMA"]).default("RoundRobin"),
  /** PeakEWMA: how quickly an endpoint's average forgets a slow answer (default 10s). */
  decay: Duration.default("10s"),
});

/** A rate: calls a second, sustained, with a burst on top of a quiet spell. */
const Rate = z.strictObject({
  /** Calls a second, sustained, across the whole mesh. */
  requestsPerSecond: z.number().gt(0).max(1_000_000),
  /** Calls allowed at once after a quiet spell (default: one second's worth, at least 1). */
  burst: z.int().min(1).max(1_000_000).optional(),
});

/**
 * Rate limits on the calls addressed to the target Service (by a caller's binding or the Host),
 * counted before routing: a refused call is `rate_limited` (429) with `Retry-After`.
 */
const RateLimit = z
  .strictObject({
    /** All calls to the Service together. */
    total: Rate.optional(),
    /** Each calling service separately (callers without an identity share one limit). */
    perCaller: Rate.optional(),
    /** Limits for named callers, in place of `perCaller`. */
    overrides: z
      .array(Rate.extend({ callers: z.array(ResourceName).min(1).max(64) }))
      .max(64)
      .superRefine((overrides, ctx) => {
        const seen = new Set<string>();
        overrides.forEach((o, index) =>
          o.callers.forEach((caller, c) => {
            if (seen.has(caller)) {
              ctx.addIssue({
                code: "custom",
                path: [index, "callers", c],
                message: `caller '${caller}' has another override already`,
              });
            }
            seen.add(caller);
          }),
        );
      })
      .optional(),
  })
  .refine((r) => r.total !== undefined || r.perCaller !== undefined || r.overrides !== undefined, {
    message: "set total, perCaller or overrides",
  });

/** The group of HTTPRoute, for policy targets. */
export const GATEWAY_GROUP = "gateway.networking.k8s.io";

/**
 * What a BackendPolicy attaches to: a Service (calls to it), an HTTPRoute (its rules' calls), or
 * one rule of an HTTPRoute (`sectionName`, the rule's `name`).
 */
const PolicyTargetReference = z
  .strictObject({
    /** `""` (or unset) for a Service; `gateway.networking.k8s.io` for an HTTPRoute. */
    group: z.string().max(253).optional(),
    kind: z.enum(["Service", "HTTPRoute"], {
      error: "must be Service or HTTPRoute",
    }),
    name: ResourceName,
    /** For an HTTPRoute: the name of one of its rules. */
    sectionName: ResourceName.optional(),
  })
  .superRefine((ref, ctx) => {
    const group = ref.group ?? "";
    if (ref.kind === "Service") {
      if (group !== "") {
        ctx.addIssue({ code: "custom", path: ["group"], message: 'must be "" for a Service' });
      }
      if (ref.sectionName !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["sectionName"],
          message:
            "is not supported on a Service (mesh Services have no named ports); remove it to target the whole Service",
        });
      }
    } else if (group !== GATEWAY_GROUP) {
      ctx.addIssue({
        code: "custom",
        path: ["group"],
        message: `must be ${GATEWAY_GROUP} for an HTTPRoute`,
      });
    }
  });

/** Knobs that describe a Service itself, and so attach only to a Service. */
const SERVICE_ONLY = [
  "circuitBreaker",
  "retryBudget",
  "loadBalancer",
  "failover",
  "rateLimit",
] as const;

/**
 * Resilience settings, attached with `targetRefs` as Gateway API policies are. On a Service they
 * govern calls to it — the breaker, budget, balancing, failover and rate limit are that
 * Service's — and give defaults for the timeouts and retries of calls addressed to it or routed
 * to it, and for the outlier detection of the splits of calls addressed to it; on an HTTPRoute
 * (or one rule, with `sectionName`) they give those defaults for its rules. A rule's own
 * `timeouts` and `retry` fields override everything. When several policies target one object,
 * each knob comes from the oldest (`metadata.creationTimestamp`, then name) that sets it, as the
 * Gateway API resolves conflicts (core/config/policy.ts).
 */
export const BackendPolicyResource = z.strictObject({
  apiVersion: z.literal(MESH_API_VERSION),
  kind: z.literal("BackendPolicy"),
  metadata: Metadata,
  spec: z
    .strictObject({
      /** What the policy governs. */
      targetRefs: z
        .array(PolicyTargetReference)
        .min(1, "name at least one target")
        .max(16)
        .superRefine((refs, ctx) => {
          const seen = new Set<string>();
          refs.forEach((ref, index) => {
            const key = `${ref.kind}/${ref.name}/${ref.sectionName ?? ""}`;
            if (seen.has(key)) {
              ctx.addIssue({ code: "custom", path: [index], message: "duplicate target" });
            }
            seen.add(key);
          });
        }),
      /** Deadlines: the whole call's, and each try's (fixed or learned). */
      timeouts: PolicyTimeouts.optional(),
      /** Retries of failed tries (off unless set here or on the rule). */
      retry: PolicyRetry.optional(),
      /** Retries the target may receive, mesh-wide (default ratio 0.2, 10/s, over 10s). */
      retryBudget: RetryBudget.optional(),
      /** Circuit breaking of calls to the target (per target, shared by every isolate). */
      circuitBreaker: CircuitBreaker.optional(),
      /** What happens to a split when backends' breakers are open. */
      outlierDetection: OutlierDetection.optional(),
      /** The Service calls go to while the target's breaker is open. */
      failover: z.strictObject({ service: ResourceName }).optional(),
      /** How tries are spread over the target's endpoints. */
      loadBalancer: LoadBalancer.optional(),
      /** Rate limits on calls addressed to the target. */
      rateLimit: RateLimit.optional(),
    })
    .superRefine((spec, ctx) => {
      const routeTargeted = spec.targetRefs.some((ref) => ref.kind === "HTTPRoute");
      if (!routeTargeted) return;
      for (const knob of SERVICE_ONLY) {
        if (spec[knob] !== undefined) {
          ctx.addIssue({
            code: "custom",
            path: [knob],
            message: `describes a Service and applies only to Service targets; move it to a policy that targets only Services`,
          });
        }
      }
    }),
});
export type BackendPolicyResource = z.infer<typeof BackendPolicyResource>;
export type CircuitBreakerSpec = z.infer<typeof CircuitBreaker>;
export type PolicyTimeoutsSpec = z.infer<typeof PolicyTimeouts>;
export type PolicyRetrySpec = z.infer<typeof PolicyRetry>;
export type RateLimitSpec = z.infer<typeof RateLimit>;

// ---------------------------------------------------------------------------------------------
// FaultInjection (the mesh's own filter, referenced from a route rule with ExtensionRef)

const Percent = z.number().min(0).max(100);

/**
 * Faults to inject into a route's calls, to test resilience in production without code changes:
 * a delay before the call goes on, or an answer in place of the backend's. Used by referencing it
 * from a rule's (or a backendRef's) filters: `{ type: ExtensionRef, extensionRef: { group:
 * meshwork.dev, kind: FaultInjection, name } }`.
 */
export const FaultInjectionResource = z.strictObject({
  apiVersion: z.literal(MESH_API_VERSION),
  kind: z.literal("FaultInjection"),
  metadata: Metadata,
  spec: z
    .strictObject({
      /** Hold this share of the calls for `fixedDelay` before sending them on. */
      delay: z.strictObject({ percent: Percent, fixedDelay: Duration }).optional(),
      /** Answer this share of the calls with `status` instead of calling the backend. */
      abort: z.strictObject({ percent: Percent, status: z.int().min(200).max(599) }).optional(),
      /** Only calls from these services (as the caller's binding attests); unset: any caller. */
      callers: z.array(ResourceName).min(1).max(64).optional(),
      /** Only calls carrying all of these headers (Exact or RegularExpression values). */
      headers: z
        .array(ValueMatch("header"))
        .max(16)
        .superRefine((h, ctx) => uniqueNames(h, ctx, "header", true))
        .optional(),
    })
    .refine((f) => f.delay !== undefined || f.abort !== undefined, {
      message: "set delay, abort, or both",
    }),
});
export type FaultInjectionResource = z.infer<typeof FaultInjectionResource>;
