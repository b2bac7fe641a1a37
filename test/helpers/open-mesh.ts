/**
 * Test configs that are about something else than identity run in an open mesh: the zero-trust
 * defaults (STRICT peer authentication, DENY unless allowed) relaxed to PERMISSIVE and ALLOW, so
 * an HTTP call with no JWT-SVID still reaches its echo backend. A config that sets either itself
 * (a PeerAuthentication with no targetRefs, or a MeshSettings) keeps its own.
 */

/** The bearer token tests use for the router's `/.mesh/status` (its ADMIN_TOKEN). */
export const TEST_ADMIN_TOKEN = "test-admin-token-0123456789abcdef";

/** Headers that make a request to `/.mesh/status` an admin's. */
export const ADMIN_HEADERS = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } as const;

const OPEN_PEERS = {
  apiVersion: "meshwork.dev/v1",
  kind: "PeerAuthentication",
  metadata: { name: "test-open-mesh" },
  spec: { mode: "PERMISSIVE" },
};

const OPEN_SETTINGS = {
  apiVersion: "meshwork.dev/v1",
  kind: "MeshSettings",
  metadata: { name: "mesh" },
  spec: { authorization: { defaultAction: "ALLOW" } },
};

/** What an open mesh adds to a destination entry written by hand (`mesh/dest/…`). */
export const OPEN_ENTRY_FIELDS = { peerAuthentication: [OPEN_PEERS], settings: OPEN_SETTINGS };

type Resource = { kind?: unknown; spec?: { targetRefs?: unknown } };

/** `resources`, plus what opens the mesh where they do not decide it themselves. */
export function withOpenMesh(resources: readonly unknown[]): unknown[] {
  const list = resources as readonly Resource[];
  const hasMeshPeers = list.some(
    (r) => r?.kind === "PeerAuthentication" && r.spec?.targetRefs === undefined,
  );
  const hasSettings = list.some((r) => r?.kind === "MeshSettings");
  return [
    ...resources,
    ...(hasMeshPeers ? [] : [OPEN_PEERS]),
    ...(hasSettings ? [] : [OPEN_SETTINGS]),
  ];
}
