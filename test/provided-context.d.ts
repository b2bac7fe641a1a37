// Values test/global-setup.ts provides to the tests (vitest `provide` / `inject`).
import "vitest";

declare module "vitest" {
  export interface ProvidedContext {
    /** Port of the loopback HTTP server standing in for an external workload. */
    externalPort: number;
  }
}
