// Publishing to the router's KV, on the PolicyStore's alarm: the latest version, with the store's
// version number, at most once a second (versions in between are skipped), retried with back-off
// when KV fails; drift when something else writes mesh/index; versions numbered above whatever KV
// holds; and the routers' reports in status. The store's clock is the test's (an hour ahead, so
// no alarm fires on its own) and its alarm is run by the test.
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { buildSnapshot, ENTRY_PREFIX, INDEX_KEY } from "../../core/config/snapshot.ts";
import { validateResources } from "../../core/config/validate.ts";
import {
  IMPORT_AUTHOR,
  MAX_ROUTER_REPORTS,
  STORE_AUTHOR,
  type PolicyStore,
  type PolicyStoreEnv,
  type StoreStatus,
} from "../../durable-objects/policy-store.ts";
import { MAX_BACKOFF_MS, PUBLISH_SPACING_MS } from "../../workers/policy/publish-schedule.ts";
import {
  alarmAt,
  apply,
  call,
  controlStoreClock,
  currentVersion,
  expectJson,
  routerReports,
  runAlarm,
  service,
  store,
} from "./helpers.ts";

type Status = StoreStatus & { settings: { problems: string[] } };
const status = () => expectJson<Status>(call("GET", "/v1/status"));

/** The version of the index in KV, or null. */
async function kvVersion(): Promise<number | null> {
  const text = await env.MESH_CONFIG.get(INDEX_KEY);
  return text === null ? null : (JSON.parse(text) as { version: number }).version;
}

/** Writes `resources` to KV as `npm run publish` would, as version `version`. */
async function publishOutside(resources: unknown[], version: number) {
  const result = validateResources(resources);
  if (!result.ok) throw new Error(JSON.stringify(result.issues));
  const build = buildSnapshot(result.value, version, new Date());
  if (!build.ok) throw new Error(JSON.stringify(build.issues));
  for (const write of build.writes) await env.MESH_CONFIG.put(write.key, write.value);
}

/** Gives the store `kv` as its KV binding; returns what puts the real one back. */
async function swapKv(kv: KVNamespace): Promise<() => Promise<void>> {
  const swap = (binding: KVNamespace) =>
    runInDurableObject(store(), (instance: PolicyStore) => {
      const holder = instance as unknown as { env: PolicyStoreEnv };
      holder.env = { ...holder.env, MESH_CONFIG: binding };
    });
  await swap(kv);
  return () => swap(env.MESH_CONFIG);
}

/** Makes the store's KV binding fail every operation until the returned function is called. */
function breakKv(): Promise<() => Promise<void>> {
  return swapKv(
    new Proxy(env.MESH_CONFIG, {
      get() {
        return () => Promise.reject(new Error("KV PUT failed: 503 Service Unavailable"));
      },
    }),
  );
}

let clock: { now: number };
beforeAll(async () => {
  clock = await controlStoreClock();
});
beforeEach(async () => {
  // A minute later, with nothing left to publish from the test before.
  clock.now += 60_000;
  await runAlarm();
});

describe("a store starting on a KV that npm run publish filled", () => {
  // First in this file: the store has no version yet.
  it("imports KV's config as its version before the first write, and builds on it", async () => {
    expect(await currentVersion()).toBe(0);
    await publishOutside([service("legacy")], 41);
    const before = await status();
    expect(before.version).toBe(0);
    expect(before.drift).toMatchObject({ kvVersion: 41, publishedVersion: null });
    expect(before.drift!.message).toMatch(/did not publish/);

    const { version, diff } = await apply([service("fresh")]);
    expect(version).toBe(42);
    // The imported config is version 41; the write is applied on top of it, so nothing is lost.
    expect(diff).toEqual({ added: ["Service/fresh"], changed: [], removed: [] });
    const { versions } = await expectJson<{
      versions: { version: number; author: string; summary: string; added: string[] }[];
    }>(call("GET", "/v1/history?limit=2"));
    expect(versions[1]).toMatchObject({
      version: 41,
      author: IMPORT_AUTHOR,
      added: ["Service/legacy"],
    });
    expect(versions[1]!.summary).toMatch(/imported version 41 from KV.*could not be recovered/);
    const names = (
      await expectJson<{ resources: { metadata: { name: string } }[] }>(call("GET", "/v1/config"))
    ).resources.map((r) => r.metadata.name);
    expect(names.sort()).toEqual(["fresh", "legacy"]);
    expect(await runAlarm()).toBe(true);
    expect(await kvVersion()).toBe(42);
    const after = await status();
    expect(after.drift).toBeNull();
    expect(after.published).toMatchObject({ version: 42, pending: false, lastError: null });
  });
});

describe("publishing", () => {
  it("writes the entries, then mesh/index with the store's version", async () => {
    const { version } = await apply([service("pub-a"), service("pub-b")]);
    // Nothing published for a while: the alarm is set for now.
    expect(await alarmAt()).toBe(clock.now);
    expect(await kvVersion()).toBeLessThan(version);
    expect(await runAlarm()).toBe(true);
    const index = JSON.parse((await env.MESH_CONFIG.get(INDEX_KEY))!) as {
      version: number;
      destinations: Record<string, string>;
    };
    expect(index.version).toBe(version);
    for (const name of ["pub-a", "pub-b"]) {
      const key = index.destinations[name]!;
      expect(key.startsWith(`${ENTRY_PREFIX}${name}/`)).toBe(true);
      const entry = JSON.parse((await env.MESH_CONFIG.get(key))!) as { service: unknown };
      // As the router reads it: validated, with its defaults.
      expect(entry.service).toMatchObject(service(name));
    }
    const { published } = await status();
    expect(published).toMatchObject({ version, pending: false, nextAttemptAt: null });
    expect(Date.parse(published.at!)).toBe(clock.now);
  });

  it("coalesces: versions committed before the alarm are published once, as the latest", async () => {
    const versions: number[] = [];
    for (const name of ["co-a", "co-b", "co-c"])
      versions.push((await apply([service(name)])).version);
    expect(await kvVersion()).toBeLessThan(versions[0]!);
    expect((await status()).published.pending).toBe(true);
    expect(await runAlarm()).toBe(true);
    expect(await kvVersion()).toBe(versions[2]);
    // Nothing left to publish: no alarm, and the versions in between were never written.
    expect(await alarmAt()).toBeNull();
    expect(await runAlarm()).toBe(false);
    expect((await status()).published).toMatchObject({ version: versions[2], pending: false });
  });

  it("publishes at most once a second: a version committed right after a publish waits its turn", async () => {
    await apply([service("spacing-a")]);
    await runAlarm();
    const publishedAt = clock.now;
    clock.now += 200;
    await apply([service("spacing-b")]);
    expect(await alarmAt()).toBe(publishedAt + PUBLISH_SPACING_MS);
    clock.now += 2000;
    await apply([service("spacing-c")]);
    // An alarm already set is kept, not moved.
    expect(await alarmAt()).toBe(publishedAt + PUBLISH_SPACING_MS);
    await runAlarm();
    await apply([service("spacing-d")]);
    expect(await alarmAt()).toBe(clock.now + PUBLISH_SPACING_MS);
  });

  it("a version committed while a publish runs is published next, a spacing after it began", async () => {
    await apply([service("during-a")]);
    // Hold the publish in KV until the test lets it go, and commit meanwhile.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const restore = await swapKv(
      new Proxy(env.MESH_CONFIG, {
        get(target, property) {
          const value = Reflect.get(target, property) as unknown;
          if (typeof value !== "function") return value;
          return async (...args: unknown[]) => {
            if (property === "put") await held;
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      }),
    );
    try {
      const startedAt = clock.now;
      const publishing = runAlarm();
      await new Promise((resolve) => setTimeout(resolve, 20));
      const { version } = await apply([service("during-b")]);
      release();
      expect(await publishing).toBe(true);
      expect(await kvVersion()).toBe(version - 1);
      expect(await alarmAt()).toBe(startedAt + PUBLISH_SPACING_MS);
      expect(await runAlarm()).toBe(true);
      expect(await kvVersion()).toBe(version);
    } finally {
      release();
      await restore();
    }
  });

  it("a publish that fails is retried with back-off up to 30 s, shown in status, until one succeeds", async () => {
    const restore = await breakKv();
    try {
      const { version } = await apply([service("retry-me")]);
      const delays: number[] = [];
      for (let i = 0; i < 7; i++) {
        expect(await runAlarm()).toBe(true);
        delays.push((await alarmAt())! - clock.now);
      }
      expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, MAX_BACKOFF_MS, MAX_BACKOFF_MS]);
      await restore();
      const failing = await status();
      expect(failing.published.lastError).toMatchObject({
        failures: 7,
        message: expect.stringMatching(/^publishing version \d+ to KV failed: .*503/),
      });
      expect(failing.published.pending).toBe(true);
      expect(await runAlarm()).toBe(true);
      expect(await kvVersion()).toBe(version);
      const recovered = await status();
      expect(recovered.published).toMatchObject({ version, lastError: null, pending: false });
      expect(await alarmAt()).toBeNull();
    } finally {
      await restore();
    }
  });
});

describe("a publish whose cleanup fails after mesh/index is written", () => {
  it("is still recorded as published: no drift, no renumbering, the failure in status", async () => {
    const { version } = await apply([service("gc-a")]);
    await runAlarm();
    await apply([service("gc-b")], "?prune=true");
    const restore = await swapKv(
      new Proxy(env.MESH_CONFIG, {
        get(target, property) {
          const value = Reflect.get(target, property) as unknown;
          if (typeof value !== "function") return value;
          return (...args: unknown[]) => {
            if (property === "put" && args[0] === "mesh/gc") {
              return Promise.reject(new Error("KV PUT failed: 503 Service Unavailable"));
            }
            if (property === "delete") return Promise.reject(new Error("KV DELETE failed"));
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      }),
    );
    try {
      expect(await runAlarm()).toBe(true);
      expect(await kvVersion()).toBe(version + 1);
      const after = await status();
      expect(after.drift).toBeNull();
      expect(after.published).toMatchObject({
        version: version + 1,
        pending: false,
        lastError: null,
        cleanupError: { message: expect.stringMatching(/mesh\/gc.*503/) },
      });
      expect(await alarmAt()).toBeNull();
      // A later check of KV finds its own index: no new version.
      await apply([service("gc-b")], "?prune=true");
      clock.now += 30_000;
      await runAlarm();
      expect(await currentVersion()).toBe(version + 1);
      expect(await kvVersion()).toBe(version + 1);
    } finally {
      await restore();
    }
  });
});

describe("a KV that lost the published index", () => {
  it("gets it again: a write that changes nothing has the alarm check KV and republish", async () => {
    const { version } = await apply([service("wiped")], "?prune=true");
    await runAlarm();
    await env.MESH_CONFIG.delete(INDEX_KEY);
    const again = await apply([service("wiped")], "?prune=true");
    expect(again.version).toBe(version);
    expect(await alarmAt()).not.toBeNull();
    expect(await runAlarm()).toBe(true);
    expect(await kvVersion()).toBe(version);
    expect(await currentVersion()).toBe(version);
    expect((await status()).drift).toBeNull();
  });
});

describe("drift", () => {
  it("a KV version too large to number above is reported, never committed", async () => {
    const { version } = await apply([service("huge-a")]);
    await runAlarm();
    const text = (await env.MESH_CONFIG.get(INDEX_KEY))!;
    const index = JSON.parse(text) as { version: number };
    await env.MESH_CONFIG.put(INDEX_KEY, JSON.stringify({ ...index, version: 1e15 }));
    try {
      const next = await apply([service("huge-b")]);
      expect(next.version).toBe(version + 1);
      await runAlarm();
      expect(await currentVersion()).toBe(version + 1);
      const drifted = await status();
      expect(drifted.drift!.message).toMatch(/not a whole number below/);
      expect(drifted.published.lastError!.message).toMatch(/not a whole number below/);
    } finally {
      await env.MESH_CONFIG.put(INDEX_KEY, text);
      await runAlarm();
    }
  });

  it("is reported when mesh/index is written behind the store's back, and the next version replaces it", async () => {
    const { version } = await apply([service("drift-a")]);
    await runAlarm();
    expect((await status()).drift).toBeNull();

    const index = JSON.parse((await env.MESH_CONFIG.get(INDEX_KEY))!) as { version: number };
    await env.MESH_CONFIG.put(INDEX_KEY, JSON.stringify({ ...index, version: version + 10 }));
    const drifted = await status();
    expect(drifted.drift).toEqual({
      kvVersion: version + 10,
      publishedVersion: version,
      message: expect.stringMatching(/not the one this store published/),
    });
    expect(drifted.kv.version).toBe(version + 10);

    const next = await apply([service("drift-b")]);
    expect(next.version).toBe(version + 11);
    await runAlarm();
    expect(await kvVersion()).toBe(version + 11);
    expect((await status()).drift).toBeNull();
  });

  it("an edit landing between a commit and its publish: the store republishes its latest above it", async () => {
    const { version } = await apply([service("late-edit")]);
    const index = JSON.parse((await env.MESH_CONFIG.get(INDEX_KEY))!) as { version: number };
    await env.MESH_CONFIG.put(INDEX_KEY, JSON.stringify({ ...index, version: version + 3 }));
    await runAlarm();
    expect(await currentVersion()).toBe(version + 4);
    expect(await kvVersion()).toBe(version + 4);
    const { versions } = await expectJson<{
      versions: { version: number; author: string; summary: string; changed: string[] }[];
    }>(call("GET", "/v1/history?limit=1"));
    expect(versions[0]).toMatchObject({ version: version + 4, author: STORE_AUTHOR, changed: [] });
    expect(versions[0]!.summary).toMatch(`version ${version} again`);
    const [now, then] = await Promise.all([
      expectJson<{ resources: unknown[] }>(call("GET", "/v1/config")),
      expectJson<{ resources: unknown[] }>(call("GET", `/v1/history/${version}`)),
    ]);
    expect(now.resources).toEqual(then.resources);
    expect((await status()).drift).toBeNull();
  });
});

describe("router reports", () => {
  const report = (isolate: string, version: number | null, error: string | null = null) => ({
    isolate,
    colo: "LHR",
    version,
    appliedAt: version === null ? null : new Date(clock.now).toISOString(),
    error,
  });

  it("show in /v1/status, per isolate, with when they arrived", async () => {
    await apply([service("reported")]);
    await runAlarm();
    const published = (await status()).published.version!;
    await routerReports().report(report("isolate-1", published));
    await routerReports().report(report("isolate-2", published - 1, "version 99 refused: …"));
    await routerReports().report(report("isolate-1", published));
    const { routers } = await status();
    expect(routers).toMatchObject({ total: 2, current: 1, behind: 1, withError: 1 });
    expect(routers.isolates).toContainEqual({
      ...report("isolate-1", published),
      reportedAt: new Date(clock.now).toISOString(),
    });
    expect(routers.isolates).toContainEqual(
      expect.objectContaining({ isolate: "isolate-2", version: published - 1 }),
    );
  });

  it("come with the store's clock, so a client computes ages against it, not its own", async () => {
    await routerReports().report({
      ...report("isolate-aged", 1),
      appliedAt: "2026-11-01T00:00:00Z",
    });
    clock.now += 90_000;
    const answer = await status();
    // The store's clock runs an hour ahead of real time in these tests.
    expect(answer.now).toBe(new Date(clock.now).toISOString());
    expect(answer.routers.isolates).toContainEqual(
      expect.objectContaining({ isolate: "isolate-aged", appliedAt: "2026-11-01T00:00:00Z" }),
    );
  });

  it("are dropped after ten minutes without one", async () => {
    await routerReports().report(report("isolate-old", 1));
    clock.now += 10 * 60_000 + 1;
    await routerReports().report(report("isolate-new", 1));
    const isolates = (await status()).routers.isolates.map((r) => r.isolate);
    expect(isolates).toContain("isolate-new");
    expect(isolates).not.toContain("isolate-old");
  });

  it("keep at most 10,000 isolates, dropping the longest silent", async () => {
    await runInDurableObject(store(), (instance: PolicyStore) => {
      for (let i = 0; i <= MAX_ROUTER_REPORTS + 50; i++) {
        clock.now += 1;
        instance.reportRouter(report(`flood-${i}`, 1));
      }
    });
    const { routers } = await status();
    expect(routers.total).toBe(MAX_ROUTER_REPORTS);
    expect(routers.isolates.map((r) => r.isolate)).toContain(`flood-${MAX_ROUTER_REPORTS + 50}`);
    expect(routers.isolates.map((r) => r.isolate)).not.toContain("flood-0");
  });

  it("a malformed report is refused as bad_request and kept nowhere", async () => {
    for (const bad of [
      {},
      { isolate: "", version: 1 },
      { isolate: "x", version: -1 },
      { isolate: "x", version: 1.5 },
      { isolate: "x", version: 1, appliedAt: "yesterday" },
      "report",
    ]) {
      await expect(routerReports().report(bad)).rejects.toThrow(/^bad_request: /);
    }
    const isolates = (await status()).routers.isolates.map((r) => r.isolate);
    expect(isolates).not.toContain("x");
  });
});
