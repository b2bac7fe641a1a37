// The identity Worker's cache of credentials and revocations, against an in-memory KV with a
// clock the test moves: a cold isolate waits for one load, a warm one answers from memory and
// checks KV in the background at most every 5 s, and a failed read keeps the last good config.
import { describe, expect, it } from "vitest";
import { buildSnapshot, INDEX_KEY } from "../../core/config/snapshot.ts";
import { validateResources } from "../../core/config/validate.ts";
import { MeshError } from "../../core/errors.ts";
import {
  IdentityConfigCache,
  type IdentityConfig,
} from "../../workers/identity/identity-config.ts";
import { resource, sha256Hex } from "./helpers.ts";

class FakeKV {
  readonly data = new Map<string, string>();
  reads = 0;
  failing = false;
  async get(key: string): Promise<string | null> {
    this.reads++;
    if (this.failing) throw new Error("KV GET failed: 503");
    return this.data.get(key) ?? null;
  }
}

async function publishTo(kv: FakeKV, version: number, resources: unknown[]) {
  const result = validateResources(resources);
  if (!result.ok) throw new Error(JSON.stringify(result.issues));
  const build = buildSnapshot(result.value, version, new Date(0));
  if (!build.ok) throw new Error(JSON.stringify(build.issues));
  for (const write of build.writes) kv.data.set(write.key, write.value);
}

const credential = async (service: string) =>
  resource("WorkloadCredential", service, {
    service,
    bootstrap: { secretSha256: await sha256Hex(`${service}-secret`) },
  });

function setup() {
  const kv = new FakeKV();
  let now = 1_000_000;
  const background: Promise<unknown>[] = [];
  const cache = new IdentityConfigCache(kv, { refreshMs: 5000, now: () => now });
  return {
    kv,
    cache,
    advance: (ms: number) => (now += ms),
    get: () => cache.get((promise) => background.push(promise)),
    settle: () => Promise.all(background.splice(0)),
  };
}

const services = (config: IdentityConfig) => config.credentials.map((c) => c.spec.service);

describe("the identity config cache", () => {
  it("loads once in a cold isolate, then answers from memory without reading KV", async () => {
    const { kv, get } = setup();
    await publishTo(kv, 3, [await credential("billing")]);
    const first = get();
    expect(first).toBeInstanceOf(Promise);
    expect(services(await first)).toEqual(["billing"]);
    expect((await first).version).toBe(3);
    expect(kv.reads).toBe(2); // the index, then the identity entry it names
    const warm = get();
    expect(warm).not.toBeInstanceOf(Promise);
    expect(kv.reads).toBe(2);
  });

  it("checks KV in the background at most every 5 s and picks up a new version", async () => {
    const { kv, get, advance, settle } = setup();
    await publishTo(kv, 1, [await credential("billing")]);
    await get();
    await publishTo(kv, 2, [
      await credential("billing"),
      resource("Revocation", "ban", { subject: "spiffe://meshwork.local/billing" }),
    ]);
    advance(4999);
    get();
    await settle();
    expect(kv.reads).toBe(2);
    advance(1);
    // The check runs behind this answer: it is still version 1.
    expect((get() as IdentityConfig).version).toBe(1);
    await settle();
    const refreshed = get() as IdentityConfig;
    expect(refreshed.version).toBe(2);
    expect(refreshed.revocations.map((r) => r.metadata.name)).toEqual(["ban"]);
  });

  it("reads only the index when the identity entry did not change", async () => {
    const { kv, get, advance, settle } = setup();
    const billing = await credential("billing");
    await publishTo(kv, 1, [billing]);
    await get();
    await publishTo(kv, 2, [
      billing,
      resource("Service", "echo", { endpoints: [{ binding: "ECHO_V1" }] }),
    ]);
    advance(5000);
    get();
    await settle();
    expect(kv.reads).toBe(3);
    expect((get() as IdentityConfig).version).toBe(2);
  });

  it("keeps the last good config when KV fails or holds an invalid entry, and says so", async () => {
    const { kv, cache, get, advance, settle } = setup();
    await publishTo(kv, 1, [await credential("billing")]);
    await get();
    kv.failing = true;
    advance(5000);
    get();
    await settle();
    expect(services(get() as IdentityConfig)).toEqual(["billing"]);
    expect(cache.problem()).toMatch(
      /reading mesh\/index from KV failed: KV GET failed: 503; keeping version 1/,
    );

    kv.failing = false;
    const index = JSON.parse(kv.data.get(INDEX_KEY)!) as { identity: string; version: number };
    kv.data.set(
      INDEX_KEY,
      JSON.stringify({ ...index, version: 2, identity: "mesh/identity/broken" }),
    );
    kv.data.set(
      "mesh/identity/broken",
      JSON.stringify({ schema: 1, credentials: [{ kind: "nope" }] }),
    );
    advance(5000);
    get();
    await settle();
    expect((get() as IdentityConfig).version).toBe(1);
    expect(cache.problem()).toMatch(
      /the identity entry failed validation: mesh\/identity\/broken.credentials\[0\].apiVersion/,
    );

    await publishTo(kv, 3, [await credential("billing"), await credential("batch")]);
    advance(5000);
    get();
    await settle();
    expect(services(get() as IdentityConfig)).toEqual(["batch", "billing"]);
    expect(cache.problem()).toBeUndefined();
  });

  it("treats a mesh with nothing published as one without credentials", async () => {
    const { get } = setup();
    const config = await get();
    expect(config).toEqual({ version: undefined, credentials: [], revocations: [] });
  });

  it("fails closed in a cold isolate that cannot read KV, and does not retry on every request", async () => {
    const { kv, cache, get, advance } = setup();
    kv.failing = true;
    await expect(get()).rejects.toBeInstanceOf(MeshError);
    await expect(get()).rejects.toMatchObject({ code: "internal_error" });
    expect(kv.reads).toBe(1);
    expect(cache.problem()).toMatch(/no config loaded yet: no token is issued until one is/);
    kv.failing = false;
    advance(1000);
    expect((await get()).version).toBeUndefined();
    expect(kv.reads).toBe(2);
  });
});
