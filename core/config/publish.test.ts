// Publishing rules, against an in-memory store: versions only increase, entries are written once,
// and unreferenced entries are deleted only after the grace period.
import { describe, expect, it } from "vitest";
import {
  DEFAULT_GC_GRACE_MS,
  GC_LEDGER_KEY,
  publishConfig,
  type SnapshotStore,
} from "./publish.ts";
import { ENTRY_PREFIX, INDEX_KEY, type SnapshotWrite } from "./snapshot.ts";
import { validateResources, type MeshConfig } from "./validate.ts";

class MemoryStore implements SnapshotStore {
  consistentList = true;
  /** Keys a lagging listing still shows after they were deleted. */
  readonly ghosts = new Set<string>();
  readonly data = new Map<string, string>();
  readonly written: string[] = [];
  async get(key: string) {
    return this.data.get(key) ?? null;
  }
  async list(prefix: string) {
    return [...this.data.keys(), ...this.ghosts].filter((key) => key.startsWith(prefix));
  }
  async putMany(writes: readonly SnapshotWrite[]) {
    for (const w of writes) {
      this.data.set(w.key, w.value);
      this.written.push(w.key);
    }
  }
  async deleteMany(keys: readonly string[]) {
    for (const key of keys) this.data.delete(key);
  }
  entries() {
    return [...this.data.keys()].filter((key) => key.startsWith(ENTRY_PREFIX)).sort();
  }
}

function config(binding: string): MeshConfig {
  const result = validateResources([
    {
      apiVersion: "meshwork.dev/v1",
      kind: "Service",
      metadata: { name: "echo" },
      spec: { endpoints: [{ binding }] },
    },
  ]);
  if (!result.ok) throw new Error("bad fixture");
  return result.value;
}

const at = (minutes: number) => new Date(Date.UTC(2026, 10, 26, 12, minutes));

describe("publishing", () => {
  it("takes the next version, and refuses one that does not move forward", async () => {
    const store = new MemoryStore();
    const first = await publishConfig(store, config("A"), { now: at(0) });
    expect(first).toMatchObject({ ok: true, version: 1, previousVersion: 0, entriesWritten: 1 });
    const jump = await publishConfig(store, config("B"), { now: at(1), version: 101 });
    expect(jump).toMatchObject({ ok: true, version: 101, previousVersion: 1 });
    const back = await publishConfig(store, config("C"), { now: at(2), version: 5 });
    expect(back.ok).toBe(false);
    if (!back.ok) expect(back.issues[0]!.message).toMatch(/already holds version 101/);
    expect(JSON.parse(store.data.get(INDEX_KEY)!).version).toBe(101);
  });

  it("writes entries before the index, and an unchanged entry not at all", async () => {
    const store = new MemoryStore();
    await publishConfig(store, config("A"), { now: at(0) });
    expect(store.written.at(-1)).toBe(INDEX_KEY);
    store.written.length = 0;
    const again = await publishConfig(store, config("A"), { now: at(1) });
    expect(again).toMatchObject({ ok: true, entriesWritten: 0 });
    expect(store.written.filter((key) => key.startsWith(ENTRY_PREFIX))).toEqual([]);
  });

  it("keeps a superseded entry for the grace period, then deletes it", async () => {
    const store = new MemoryStore();
    await publishConfig(store, config("A"), { now: at(0) });
    const entryA = store.entries();
    await publishConfig(store, config("B"), { now: at(1) });
    // A is unreferenced since minute 1; both entries are still there.
    expect(store.entries()).toHaveLength(2);
    expect(JSON.parse(store.data.get(GC_LEDGER_KEY)!)).toEqual({
      [entryA[0]!]: at(1).toISOString(),
    });

    const graceMinutes = DEFAULT_GC_GRACE_MS / 60_000;
    const early = await publishConfig(store, config("B"), { now: at(graceMinutes) });
    expect(early).toMatchObject({ ok: true, entriesDeleted: 0, entriesPending: 1 });
    const late = await publishConfig(store, config("B"), { now: at(graceMinutes + 1) });
    expect(late).toMatchObject({ ok: true, entriesDeleted: 1, entriesPending: 0 });
    expect(store.entries()).not.toContain(entryA[0]);
  });

  it("forgets an entry that is referenced again before its grace period ends", async () => {
    const store = new MemoryStore();
    await publishConfig(store, config("A"), { now: at(0) });
    await publishConfig(store, config("B"), { now: at(1) });
    await publishConfig(store, config("A"), { now: at(2) }); // rollback to A's content
    const ledger = JSON.parse(store.data.get(GC_LEDGER_KEY)!) as Record<string, string>;
    expect(Object.keys(ledger)).toHaveLength(1); // only B's entry waits now
    const late = await publishConfig(store, config("A"), { now: at(200) });
    expect(late).toMatchObject({ ok: true, entriesDeleted: 1 });
    expect(store.entries()).toHaveLength(1);
  });

  it("writes every entry when the store's listing may lag (deployed KV), even one it lists", async () => {
    const store = new MemoryStore();
    store.consistentList = false;
    await publishConfig(store, config("A"), { now: at(0) });
    const [entryA] = store.entries();
    // A's entry is gone, but the listing still shows it (eventually consistent).
    store.data.delete(entryA!);
    store.ghosts.add(entryA!);
    const again = await publishConfig(store, config("A"), { now: at(1) });
    expect(again).toMatchObject({ ok: true, entriesWritten: 1 });
    expect(store.data.has(entryA!)).toBe(true);
  });

  it("collects orphans a failed publish left behind", async () => {
    const store = new MemoryStore();
    store.data.set(`${ENTRY_PREFIX}echo/orphan`, "{}");
    await publishConfig(store, config("A"), { now: at(0) });
    expect(JSON.parse(store.data.get(GC_LEDGER_KEY)!)).toHaveProperty([
      `${ENTRY_PREFIX}echo/orphan`,
    ]);
    await publishConfig(store, config("A"), { now: at(120) });
    expect(store.data.has(`${ENTRY_PREFIX}echo/orphan`)).toBe(false);
  });
});
