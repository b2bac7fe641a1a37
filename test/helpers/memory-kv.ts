/**
 * An in-memory stand-in for the router's KV binding that counts reads and can hold them
 * (to prove a request does not wait for one).
 */
import { buildSnapshot } from "../../core/config/snapshot.ts";
import { validateResources } from "../../core/config/validate.ts";
import { withOpenMesh } from "./open-mesh.ts";

export class MemoryKV {
  readonly data = new Map<string, string>();
  reads = 0;
  private held: Promise<void> | undefined;
  private release: (() => void) | undefined;

  async get(key: string, _type: "text"): Promise<string | null> {
    this.reads++;
    if (this.held) await this.held;
    return this.data.get(key) ?? null;
  }

  /** Makes every later read wait until `resume()`. */
  hold(): void {
    this.held = new Promise((resolve) => (this.release = resolve));
  }

  resume(): void {
    this.release?.();
    this.held = undefined;
  }

  /**
   * Writes a validated snapshot of `resources` at `version` — in an open mesh unless
   * `open: false` (helpers/open-mesh.ts).
   */
  publish(resources: unknown[], version: number, { open = true } = {}): void {
    const result = validateResources(open ? withOpenMesh(resources) : resources);
    if (!result.ok) throw new Error(JSON.stringify(result.issues));
    const build = buildSnapshot(result.value, version, new Date());
    if (!build.ok) throw new Error(JSON.stringify(build.issues));
    for (const write of build.writes) this.data.set(write.key, write.value);
  }
}
