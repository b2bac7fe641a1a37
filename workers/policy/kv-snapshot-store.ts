/**
 * core/config/publish.ts's SnapshotStore over a KV binding: what the PolicyStore publishes
 * through. Deployed KV lists are eventually consistent, so `consistentList` is false (every entry
 * the new index names is written, present or not), lists follow their cursors to the end, and
 * writes and deletes run a bounded number at a time rather than all at once.
 */
import type { SnapshotStore } from "../../core/config/publish.ts";
import { INDEX_KEY, type SnapshotWrite } from "../../core/config/snapshot.ts";

/** KV operations in flight at once during a publish. */
const CONCURRENCY = 16;

/** Runs `task` on every item, at most `limit` at a time; rejects with the first failure. */
async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  task: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await task(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * A SnapshotStore writing to `kv`. `onIndex` sees the index text as it is written, so the
 * publisher knows exactly what it put in KV (status compares it with what KV holds later).
 */
export function kvSnapshotStore(
  kv: KVNamespace,
  onIndex: (text: string) => void = () => {},
): SnapshotStore {
  return {
    consistentList: false,
    get: (key) => kv.get(key, "text"),
    async list(prefix) {
      const keys: string[] = [];
      let cursor: string | undefined;
      for (;;) {
        const page = await kv.list({ prefix, ...(cursor === undefined ? {} : { cursor }) });
        for (const key of page.keys) keys.push(key.name);
        if (page.list_complete) return keys;
        cursor = page.cursor;
      }
    },
    async putMany(writes: readonly SnapshotWrite[]) {
      await eachLimited(writes, CONCURRENCY, async (write) => {
        await kv.put(write.key, write.value);
        if (write.key === INDEX_KEY) onIndex(write.value);
      });
    },
    async deleteMany(keys) {
      await eachLimited(keys, CONCURRENCY, (key) => kv.delete(key));
    },
  };
}
