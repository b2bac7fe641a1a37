/**
 * Every resource kind the mesh understands, as one discriminated union: what the admin API,
 * `npm run publish` and the config loader validate each submitted resource against.
 */
import { z } from "zod";
import {
  AuthorizationPolicyResource,
  MeshSettingsResource,
  PeerAuthenticationResource,
  RevocationResource,
  WorkloadCredentialResource,
} from "./identity-schema.ts";
import {
  BackendPolicyResource,
  FaultInjectionResource,
  HTTPRouteResource,
  ServiceResource,
} from "./schema.ts";

/** The supported kinds, for CLI and API messages. */
export const RESOURCE_KINDS = [
  "Service",
  "HTTPRoute",
  "BackendPolicy",
  "FaultInjection",
  "AuthorizationPolicy",
  "PeerAuthentication",
  "MeshSettings",
  "Revocation",
  "WorkloadCredential",
] as const;

/** Any resource the mesh understands. */
export const MeshResource = z.discriminatedUnion(
  "kind",
  [
    ServiceResource,
    HTTPRouteResource,
    BackendPolicyResource,
    FaultInjectionResource,
    AuthorizationPolicyResource,
    PeerAuthenticationResource,
    MeshSettingsResource,
    RevocationResource,
    WorkloadCredentialResource,
  ],
  {
    error: (issue) =>
      issue.code === "invalid_union"
        ? `kind must be one of ${RESOURCE_KINDS.join(", ")}`
        : undefined,
  },
);
export type MeshResource = z.infer<typeof MeshResource>;
