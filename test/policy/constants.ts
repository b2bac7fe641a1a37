// Settings of the policy Worker under test, shared by vitest.config.ts (Node) and the tests
// (workerd): no imports, so both can load it.

/** The policy Worker's ADMIN_TOKEN in the tests. */
export const POLICY_ADMIN_TOKEN = "policy-test-admin-token-0123456789";
/** A service whose JWT-SVID is an admin's (ADMIN_SERVICES). */
export const ADMIN_SERVICE = "ops";
/** A service whose JWT-SVID may only read (VIEWER_SERVICES). */
export const VIEWER_SERVICE = "dash";
/** A service in neither list. */
export const STRANGER_SERVICE = "orders";
