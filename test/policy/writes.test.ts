// Writes as the single writer serialises them: concurrent writes all land, one after the other,
// or are refused by If-Match — never a lost update, even while a write waits for KV; dry runs
// validate and diff without changing anything, in the store or in KV.
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { INDEX_KEY } from "../../core/config/snapshot.ts";
import type { PolicyStore, PolicyStoreEnv } from "../../durable-objects/policy-store.ts";
import {
  ADMIN,
  alarmAt,
  apply,
  call,
  controlStoreClock,
  currentVersion,
  expectJson,
  runAlarm,
  service,
  store,
  type ErrorAnswer,
  type WriteAnswer,
} from "./helpers.ts";

type Config = { version: number; resources: { metadata: { name: string } }[] };
const names = (config: Config) => config.resources.map((r) => r.metadata.name);

describe("concurrent writes", () => {
  it("two applies at once both land, in order: versions N+1 and N+2, neither lost", async () => {
    const before = await currentVersion();
    const [a, b] = await Promise.all([apply([service("race-a")]), apply([service("race-b")])]);
    expect([a.version, b.version].sort()).toEqual([before + 1, before + 2]);
    const config = await expectJson<Config>(call("GET", "/v1/config"));
    expect(config.version).toBe(before + 2);
    expect(names(config)).toEqual(expect.arrayContaining(["race-a", "race-b"]));
    // Each version holds what came before it: the second to land holds both.
    const later = a.version > b.version ? "race-a" : "race-b";
    const first = await expectJson<Config>(call("GET", `/v1/history/${before + 1}`));
    expect(names(first)).not.toContain(later);
  });

  it("two applies with the same If-Match: one lands, the other gets 412 with the new version", async () => {
    const before = await currentVersion();
    const send = (name: string) =>
      call("POST", "/v1/apply", {
        body: { resources: [service(name)] },
        headers: { ...ADMIN, "if-match": `"${before}"` },
      });
    const answers = await Promise.all([send("match-a"), send("match-b")]);
    const statuses = answers.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 412]);
    const conflict = (await answers.find((r) => r.status === 412)!.json()) as ErrorAnswer;
    expect(conflict.error).toMatchObject({ code: "version_conflict", version: before + 1 });
    const winner = ((await answers.find((r) => r.status === 200)!.json()) as WriteAnswer).diff
      .added[0]!;
    const config = await expectJson<Config>(call("GET", "/v1/config"));
    expect(config.version).toBe(before + 1);
    expect(names(config)).toContain(winner.slice("Service/".length));
    expect(names(config).filter((n) => n.startsWith("match-"))).toHaveLength(1);
  });

  it("ten puts at once get ten consecutive versions, and every resource is there", async () => {
    const before = await currentVersion();
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        expectJson<WriteAnswer>(
          call("PUT", `/v1/resources/Service/many-${i}`, { body: service(`many-${i}`) }),
        ),
      ),
    );
    expect(answers.map((a) => a.version).sort((x, y) => x - y)).toEqual(
      Array.from({ length: 10 }, (_, i) => before + 1 + i),
    );
    const config = await expectJson<Config>(call("GET", "/v1/config"));
    for (let i = 0; i < 10; i++) expect(names(config)).toContain(`many-${i}`);
  });

  it("stay serial while a write waits for a slow KV (the input gate is open then)", async () => {
    // Each write reads KV's version before committing; make that read take a while, so a second
    // write arrives while the first waits. Without the write chain both would number N+1.
    await runInDurableObject(store(), (instance: PolicyStore) => {
      const holder = instance as unknown as { env: PolicyStoreEnv };
      const kv = holder.env.MESH_CONFIG;
      holder.env = {
        ...holder.env,
        MESH_CONFIG: new Proxy(kv, {
          get(target, property) {
            if (property === "get") {
              return async (...args: Parameters<KVNamespace["get"]>) => {
                await new Promise((resolve) => setTimeout(resolve, 30));
                return (target.get as (...a: unknown[]) => unknown)(...args);
              };
            }
            const value = Reflect.get(target, property) as unknown;
            return typeof value === "function" ? value.bind(target) : value;
          },
        }),
      };
    });
    try {
      const before = await currentVersion();
      const answers = await Promise.all(
        ["slow-a", "slow-b", "slow-c"].map((name) => apply([service(name)])),
      );
      expect(answers.map((a) => a.version).sort()).toEqual([before + 1, before + 2, before + 3]);
      const config = await expectJson<Config>(call("GET", "/v1/config"));
      expect(names(config)).toEqual(expect.arrayContaining(["slow-a", "slow-b", "slow-c"]));
    } finally {
      await runInDurableObject(store(), (instance: PolicyStore) => {
        (instance as unknown as { env: PolicyStoreEnv }).env = {
          ...(instance as unknown as { env: PolicyStoreEnv }).env,
          MESH_CONFIG: env.MESH_CONFIG,
        };
      });
    }
  });
});

describe("dry runs", () => {
  it("validate and diff, and change nothing: not the version, not KV, no publish", async () => {
    await controlStoreClock();
    const { version } = await apply([service("dry-existing")]);
    await runAlarm();
    const indexBefore = await env.MESH_CONFIG.get(INDEX_KEY);
    expect(indexBefore).not.toBeNull();
    const answer = await expectJson<WriteAnswer>(
      call("POST", "/v1/apply?dryRun=true", {
        body: { resources: [service("dry-new"), service("dry-existing", "ECHO_V2")] },
      }),
    );
    expect(answer).toEqual({
      version,
      warnings: [],
      diff: { added: ["Service/dry-new"], changed: ["Service/dry-existing"], removed: [] },
      dryRun: true,
    });
    expect(await currentVersion()).toBe(version);
    expect(await alarmAt()).toBeNull();
    expect(await runAlarm()).toBe(false);
    expect(await env.MESH_CONFIG.get(INDEX_KEY)).toBe(indexBefore);
    await expectJson(call("GET", "/v1/resources/Service/dry-new"), 404);
  });

  it("of every kind of write: prune, put, delete and rollback", async () => {
    const { version } = await apply([service("dry-kept")]);
    const prune = await expectJson<WriteAnswer>(
      call("POST", "/v1/apply?dryRun=true&prune=true", {
        body: { resources: [service("dry-kept")] },
      }),
    );
    expect(prune.diff.removed.length).toBeGreaterThan(0);
    expect(prune.diff.removed).not.toContain("Service/dry-kept");
    const del = await expectJson<WriteAnswer>(
      call("DELETE", "/v1/resources/Service/dry-kept?dryRun=true"),
    );
    expect(del.diff).toEqual({ added: [], changed: [], removed: ["Service/dry-kept"] });
    const rollback = await expectJson<WriteAnswer>(
      call("POST", "/v1/rollback?dryRun", { body: { version: 1 } }),
    );
    expect(rollback.dryRun).toBe(true);
    expect(await currentVersion()).toBe(version);
  });

  it("answer invalid_config and version_conflict as the write would", async () => {
    const version = await currentVersion();
    const invalid = await expectJson<ErrorAnswer>(
      call("POST", "/v1/apply?dryRun=true", { body: { resources: [service("x", "ECHO_V1", -1)] } }),
      400,
    );
    expect(invalid.error.code).toBe("invalid_config");
    const stale = await expectJson<ErrorAnswer>(
      call("POST", "/v1/apply?dryRun=true", {
        body: { resources: [service("y")] },
        headers: { ...ADMIN, "if-match": `"${version - 1}"` },
      }),
      412,
    );
    expect(stale.error.version).toBe(version);
    expect(await currentVersion()).toBe(version);
  });

  it("refuse a flag that is neither true nor false", async () => {
    await expectJson(call("POST", "/v1/apply?dryRun=maybe", { body: { resources: [] } }), 400);
  });
});
