// The identity kinds' schemas where they decide more than shape: which services a
// WorkloadCredential may prove.
import { describe, expect, it } from "vitest";
import { RESERVED_SERVICES } from "../identity/names.ts";
import { validateResources } from "./validate.ts";

const credential = (service: string) => ({
  apiVersion: "meshwork.dev/v1",
  kind: "WorkloadCredential",
  metadata: { name: "credential" },
  spec: { service, bootstrap: { secretSha256: "a".repeat(64) } },
});

describe("WorkloadCredential", () => {
  it("refuses a credential for one of the mesh's own services, naming the field and why", () => {
    expect(RESERVED_SERVICES).toEqual(["meshwork-router", "meshwork-identity", "meshwork-policy"]);
    for (const service of RESERVED_SERVICES) {
      const result = validateResources([credential(service)]);
      expect(result.ok, service).toBe(false);
      if (result.ok) continue;
      expect(result.issues).toEqual([
        {
          path: "resources[0].spec.service",
          message: expect.stringMatching(/^is one of the mesh's own services \(meshwork-router, /),
        },
      ]);
    }
  });

  it("takes any other service name, including ones that merely start like the mesh's", () => {
    for (const service of ["orders", "meshwork-routers", "my-meshwork-policy"]) {
      expect(validateResources([credential(service)]).ok, service).toBe(true);
    }
  });
});
