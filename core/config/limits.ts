/**
 * The size limits of mesh config, in one place. The schemas enforce them, so publish, the admin
 * API and the router (on load from KV) refuse the same oversized input with the same message.
 * They exist so that no config — mistaken or hostile, published or written straight into KV —
 * can make the router parse, compile or walk an unbounded amount of data per isolate or request.
 */

/** Bytes of one config document set (a YAML or JSON file, an apply request body). */
export const MAX_CONFIG_BYTES = 32 * 1024 * 1024;
/** Resources in one config. */
export const MAX_RESOURCES = 20_000;
/** Bytes of one resource, as JSON. */
export const MAX_RESOURCE_BYTES = 128 * 1024;
/** Bytes of one destination entry in KV (its Service, routes and backends, as JSON). */
export const MAX_ENTRY_BYTES = 2 * 1024 * 1024;
/** Bytes of the snapshot index in KV. */
export const MAX_INDEX_BYTES = 4 * 1024 * 1024;
/** HTTPRoutes attached to one Service. */
export const MAX_ROUTES_PER_SERVICE = 64;
/** Matches in one HTTPRoute, over all its rules (Gateway API's own limit). */
export const MAX_MATCHES_PER_ROUTE = 128;
/** Matches over every route attached to one Service: the most a request can be tested against. */
export const MAX_MATCHES_PER_DESTINATION = 1024;
/** Labels or annotations on one resource. */
export const MAX_METADATA_ENTRIES = 64;
/** Characters of a label or annotation key (Kubernetes: a 253-character prefix, '/', 63). */
export const MAX_METADATA_KEY_LENGTH = 317;
/** Characters of one label value. */
export const MAX_LABEL_VALUE_LENGTH = 63;
/** Characters of all annotation values of one resource together. */
export const MAX_ANNOTATIONS_LENGTH = 16 * 1024;
