// The identity Worker's cache of credentials and revocations, against an in-memory KV with a
// clock and timers the test moves: a cold isolate waits for one load, a warm one answers from
// memory and checks KV in the background at most every 5 s, a failed or hung read keeps the last
// good config, and five minutes without a good read fail closed.
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
  /** When set, reads wait until the test answers them (`answerHung`). */
  hanging = false;
  readonly #hung: (() => void)[] = [];
  async get(key: string): Promise<string | null> {
    this.reads++;
    if (this.hanging) await new Promise<void>((resolve) => this.#hung.push(resolve));
    if (this.failing) throw new Error("KV GET failed: 503");
    return this.data.get(key) ?? null;
  }
  /** Lets every hung read answer, with what KV holds by then. */
  answerHung(): void {
    for (const answer of this.#hung.splice(0)) answer();
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

const MINUTE = 60_000;

function setup() {
  const kv = new FakeKV();
  let now = 1_000_000;
  const background: Promise<unknown>[] = [];
  // Timers fire when the test says so: a read's timeout is the only one.
  const timers: { ms: number; fire: () => void }[] = [];
  const cache = new IdentityConfigCache(kv, {
    refreshMs: 5000,
    readTimeoutMs: 5000,
    maxStaleMs: 5 * MINUTE,
    now: () => now,
    sleep: (ms) => new Promise<void>((fire) => timers.push({ ms, fire })),
  });
  return {
    kv,
    cache,
    timers,
    advance: (ms: number) => (now += ms),
    get: () => cache.get((promise) => background.push(promise)),
    settle: () => Promise.all(background.splice(0)),
    /** The read timeouts started so far run out. */
    timeOut: () => {
      for (const timer of timers.splice(0)) timer.fire();
    },
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
    expect(cache.problems().join("\n")).toMatch(
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
    expect(cache.problems().join("\n")).toMatch(
      /the identity entry failed validation: mesh\/identity\/broken.credentials\[0\].apiVersion/,
    );

    await publishTo(kv, 3, [await credential("billing"), await credential("batch")]);
    advance(5000);
    get();
    await settle();
    expect(services(get() as IdentityConfig)).toEqual(["batch", "billing"]);
    expect(cache.problems()).toEqual([]);
  });

  it("treats a mesh with nothing published as one without credentials, and says so", async () => {
    const { cache, get } = setup();
    expect(cache.describe()).toBe("not loaded yet");
    const config = await get();
    expect(config).toEqual({ version: undefined, credentials: [], revocations: [] });
    expect(cache.describe()).toMatch(/^nothing published: KV holds no snapshot index/);
    expect(cache.problems()).toEqual([]);
  });

  it("treats a missing index after a version was seen as a failed load, keeping that version", async () => {
    const { kv, cache, get, advance, settle } = setup();
    await publishTo(kv, 4, [
      await credential("billing"),
      resource("Revocation", "ban", { subject: "spiffe://meshwork.local/batch" }),
    ]);
    await get();
    kv.data.delete(INDEX_KEY);
    advance(5000);
    get();
    await settle();
    // Not "nothing published": the revocation still holds.
    const kept = get() as IdentityConfig;
    expect(kept.version).toBe(4);
    expect(kept.revocations.map((r) => r.metadata.name)).toEqual(["ban"]);
    expect(cache.describe()).toBe("version 4");
    expect(cache.problems()).toEqual([
      expect.stringMatching(
        /could not be loaded at .*: KV holds no mesh\/index, though version 4 was published; keeping version 4$/,
      ),
    ]);
  });

  it("gives up a hung KV read after 5 s, keeps the config, and checks again later", async () => {
    const { kv, cache, get, advance, settle, timers, timeOut } = setup();
    await publishTo(kv, 1, [await credential("billing")]);
    await get();
    kv.hanging = true;
    advance(5000);
    get();
    expect(timers.map((timer) => timer.ms)).toContain(5000);
    timeOut();
    await settle();
    expect(cache.problems()).toEqual([
      expect.stringMatching(/KV did not answer within 5 s; keeping version 1$/),
    ]);
    // The hung load no longer blocks the next check, which reads KV again.
    const reads = kv.reads;
    kv.hanging = false;
    await publishTo(kv, 2, [await credential("batch")]);
    advance(5000);
    get();
    await settle();
    expect(kv.reads).toBeGreaterThan(reads);
    expect(services(get() as IdentityConfig)).toEqual(["batch"]);
    expect(cache.problems()).toEqual([]);
  });

  it("ignores a hung read that answers after its timeout", async () => {
    const { kv, get, advance, settle, timeOut } = setup();
    await publishTo(kv, 1, [await credential("billing")]);
    await get();
    kv.hanging = true;
    advance(5000);
    get();
    timeOut();
    await settle();
    kv.hanging = false;
    await publishTo(kv, 2, [await credential("batch")]);
    advance(5000);
    get();
    await settle();
    // The old read now answers, with the old index it asked for long ago: nothing changes.
    kv.data.set(INDEX_KEY, "not even JSON");
    kv.answerHung();
    await settle();
    expect((get() as IdentityConfig).version).toBe(2);
  });

  it("refuses to issue after five minutes without a good read, says so, and recovers", async () => {
    const { kv, cache, get, advance, settle } = setup();
    await publishTo(kv, 1, [await credential("billing")]);
    await get();
    kv.failing = true;
    for (let t = 5000; t < 5 * MINUTE; t += 5000) {
      advance(5000);
      expect((get() as IdentityConfig).version).toBe(1);
      await settle();
    }
    advance(5000);
    // Five minutes since the last good read: no answer from memory; one read of its own, failed.
    const reads = kv.reads;
    await expect(get()).rejects.toMatchObject({ code: "internal_error" });
    expect(kv.reads).toBe(reads + 1);
    expect(cache.problems()).toEqual([
      expect.stringMatching(/KV GET failed: 503; keeping version 1$/),
      expect.stringMatching(/over 300 s ago: no token is issued until a load succeeds/),
    ]);
    // As in a cold isolate, at most one read a second.
    await expect(get()).rejects.toMatchObject({ code: "internal_error" });
    expect(kv.reads).toBe(reads + 1);

    kv.failing = false;
    advance(1000);
    expect((await get()).version).toBe(1);
    expect(cache.problems()).toEqual([]);
    expect(get()).not.toBeInstanceOf(Promise);
  });

  it("fails closed in a cold isolate that cannot read KV, and does not retry on every request", async () => {
    const { kv, cache, get, advance } = setup();
    kv.failing = true;
    await expect(get()).rejects.toBeInstanceOf(MeshError);
    await expect(get()).rejects.toMatchObject({ code: "internal_error" });
    expect(kv.reads).toBe(1);
    expect(cache.problems().join("\n")).toMatch(
      /no config loaded yet: no token is issued until one is/,
    );
    kv.failing = false;
    advance(1000);
    expect((await get()).version).toBeUndefined();
    expect(kv.reads).toBe(2);
  });
});
