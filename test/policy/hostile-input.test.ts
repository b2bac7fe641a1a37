// Property: whatever arrives at the write endpoints — valid resources from a small generator,
// then mutated (wrong types, missing and extra fields, huge strings, unicode, nested junk), as
// JSON or YAML, or a body that is not a config at all — the answer is 200 or a contract error
// (400 invalid_config / bad_request), never a 500 or a crash, and a refusal never changes the
// version. And the other way round, so a server refusing everything cannot pass: valid resources
// with random values are taken, each write making exactly one new version, and a share of the
// mutated ones is taken too. The seed is fixed, so a run is repeatable; fast-check prints it with
// any failure.
import fc from "fast-check";
import { dump } from "js-yaml";
import { describe, expect, it } from "vitest";
import {
  ADMIN,
  call,
  currentVersion,
  expectJson,
  route,
  service,
  type ErrorAnswer,
} from "./helpers.ts";

const expectJsonOf = (response: Promise<Response>, status: number) =>
  expectJson<ErrorAnswer>(response, status);

const SEED = 20261101;
const NAMES = ["alpha", "beta", "gamma", "delta"];
const BINDINGS = ["ECHO_V1", "ECHO_V2", "PAYMENTS_V1"];

/** Valid resources: Services and the HTTPRoutes between them, plus a FaultInjection now and then. */
const validResource = fc.oneof(
  fc
    .record({
      name: fc.constantFrom(...NAMES),
      binding: fc.constantFrom(...BINDINGS),
      weight: fc.option(fc.integer({ min: 0, max: 1_000_000 }), { nil: undefined }),
    })
    .map(({ name, binding, weight }) => service(name, binding, weight)),
  fc
    .record({
      name: fc.constantFrom("r1", "r2"),
      parent: fc.constantFrom(...NAMES),
      backends: fc.array(fc.constantFrom(...NAMES, "missing"), { minLength: 1, maxLength: 3 }),
    })
    .map(({ name, parent, backends }) => route(name, parent, backends)),
  fc.constant({
    apiVersion: "meshwork.dev/v1",
    kind: "FaultInjection",
    metadata: { name: "slow" },
    spec: { delay: { fixedDelay: "10ms", percentage: 5 } },
  }),
);

/** Junk to put somewhere a resource has a value. */
const junk = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.string({ unit: "binary", maxLength: 64 }),
  fc.string({ unit: fc.constantFrom("\ud800", "\udfff", "\u0000", "\u202e", "é", "𝄞", "\n") }),
  fc.constantFrom("x".repeat(200_000), "é".repeat(70_000)),
  fc.integer({ min: 1, max: 90 }).map((depth) => {
    let value: unknown = "bottom";
    for (let i = 0; i < depth; i++) value = i % 2 === 0 ? [value] : { nested: value };
    return value;
  }),
  fc.constantFrom(-1, 1.5, 1e308, Number.MAX_SAFE_INTEGER + 2, true, null, [], {}),
);

type Mutation =
  | { kind: "replace"; at: number; value: unknown }
  | { kind: "remove"; at: number }
  | { kind: "add"; at: number; key: string; value: unknown };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("replace" as const), at: fc.nat(), value: junk }),
  fc.record({ kind: fc.constant("remove" as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant("add" as const),
    at: fc.nat(),
    key: fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom("__proto__", "constructor", "")),
    value: junk,
  }),
);

/** Every place in `value` that holds a value: [container, key] pairs, the root first. */
function places(value: unknown): [Record<string, unknown> | unknown[], string | number][] {
  const found: [Record<string, unknown> | unknown[], string | number][] = [];
  const walk = (node: unknown) => {
    if (Array.isArray(node)) {
      node.forEach((child, i) => {
        found.push([node, i]);
        walk(child);
      });
    } else if (node !== null && typeof node === "object") {
      for (const [key, child] of Object.entries(node)) {
        found.push([node as Record<string, unknown>, key]);
        walk(child);
      }
    }
  };
  walk(value);
  return found;
}

/** `resource` with `mutation` applied (a copy). */
function mutate(resource: unknown, change: Mutation): unknown {
  const copy = structuredClone(resource) as Record<string, unknown>;
  const all = places(copy);
  if (all.length === 0) return change.kind === "replace" ? change.value : copy;
  const [container, key] = all[change.at % all.length]!;
  if (change.kind === "replace")
    (container as Record<string | number, unknown>)[key] = change.value;
  else if (change.kind === "remove") {
    if (Array.isArray(container)) container.splice(key as number, 1);
    else delete container[key as string];
  } else {
    const target = (container as Record<string | number, unknown>)[key];
    if (target !== null && typeof target === "object" && !Array.isArray(target)) {
      Object.defineProperty(target, change.key, {
        value: change.value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    } else (container as Record<string | number, unknown>)[key] = { [change.key]: change.value };
  }
  return copy;
}

/** A resource, maybe mutated (a few times). */
const maybeMutated = fc
  .tuple(validResource, fc.array(mutation, { maxLength: 3 }))
  .map(([resource, changes]) => changes.reduce<unknown>(mutate, resource));

/** The body: JSON, or YAML (one document per resource) when it can be written as YAML. */
function encode(resources: unknown[], yaml: boolean): { body: string; yaml: boolean } {
  if (yaml) {
    try {
      return { body: resources.map((r) => dump(r)).join("---\n"), yaml: true };
    } catch {
      // Not every value has a YAML form (undefined, say): send it as JSON.
    }
  }
  return { body: JSON.stringify({ resources }), yaml: false };
}

/** Sends one write and checks the answer is the contract's; returns whether it was taken. */
async function checkWrite(method: string, path: string, body: string, yaml: boolean) {
  const before = await currentVersion();
  const response = await call(method, path, { body, yaml, headers: ADMIN });
  const text = await response.text();
  expect([200, 400], `${response.status}: ${text.slice(0, 500)}`).toContain(response.status);
  const json = JSON.parse(text) as ErrorAnswer & { version?: number };
  const after = await currentVersion();
  if (response.status === 400) {
    expect(["invalid_config", "bad_request"]).toContain(json.error.code);
    if (json.error.code === "invalid_config") {
      expect(json.error.issues!.length).toBeGreaterThan(0);
      for (const issue of json.error.issues!) {
        expect(typeof issue.path).toBe("string");
        expect(typeof issue.message).toBe("string");
      }
    }
    expect(after).toBe(before);
    return false;
  }
  expect(json.version).toBe(after);
  // A write that changes nothing makes no version; one that changes something, exactly one.
  expect(after - before).toBeLessThanOrEqual(1);
  return true;
}

/** A Service or a route between Services, valid whatever values the generator picks. */
const validVariant = fc
  .record({
    name: fc.constantFrom(...NAMES),
    binding: fc.constantFrom(...BINDINGS),
    weight: fc.option(fc.integer({ min: 0, max: 1_000_000 }), { nil: undefined }),
    note: fc.string({ unit: "grapheme", maxLength: 40 }),
    label: fc.option(fc.stringMatching(/^[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?$/), {
      nil: undefined,
    }),
    backends: fc.option(fc.array(fc.constantFrom(...NAMES), { minLength: 1, maxLength: 3 }), {
      nil: undefined,
    }),
  })
  .map(({ name, binding, weight, note, label, backends }) => {
    const target = service(name, binding, weight);
    const metadata = {
      ...target.metadata,
      annotations: { "test.meshwork.dev/note": note },
      ...(label === undefined ? {} : { labels: { tier: label } }),
    };
    // A route goes with the Service it is attached to (which must exist); its backends may not.
    const resources: unknown[] = [{ ...target, metadata }];
    if (backends !== undefined) resources.push(route(`r-${name}`, name, backends));
    return resources;
  });

/** Numbers the runs, so every valid write changes something (its Service's annotation). */
let run = 0;
function stamped(resources: unknown[]): unknown[] {
  const [target, ...rest] = resources as { metadata: { annotations: object } }[];
  const annotations = { ...target!.metadata.annotations, "test.meshwork.dev/run": String(++run) };
  return [{ ...target!, metadata: { ...target!.metadata, annotations } }, ...rest];
}

describe("valid input to the write endpoints", () => {
  it("POST /v1/apply: valid resources with random values are taken, exactly one version each", async () => {
    await fc.assert(
      fc.asyncProperty(validVariant, fc.boolean(), async (variant, yaml) => {
        const resources = stamped(variant);
        const before = await currentVersion();
        const { body, yaml: asYaml } = encode(resources, yaml);
        const answer = await expectJson<{
          version: number;
          diff: { added: string[]; changed: string[] };
        }>(call("POST", "/v1/apply", { body, yaml: asYaml, headers: ADMIN }));
        expect(answer.version).toBe(before + 1);
        expect(await currentVersion()).toBe(before + 1);
        const { name } = (resources[0] as { metadata: { name: string } }).metadata;
        expect([...answer.diff.added, ...answer.diff.changed]).toContain(`Service/${name}`);
        const stored = await expectJson(call("GET", `/v1/resources/Service/${name}`));
        expect(stored).toEqual(JSON.parse(JSON.stringify(resources[0])));
      }),
      { seed: SEED, numRuns: 40 },
    );
  });

  it("PUT /v1/resources/Service/{name}: a valid Service with random values is taken, exactly one version", async () => {
    await fc.assert(
      fc.asyncProperty(validVariant, async (variant) => {
        const [resource] = stamped(variant) as { metadata: { name: string } }[];
        const before = await currentVersion();
        const answer = await expectJson<{ version: number }>(
          call("PUT", `/v1/resources/Service/${resource!.metadata.name}`, { body: resource }),
        );
        expect(answer.version).toBe(before + 1);
        expect(await currentVersion()).toBe(before + 1);
      }),
      { seed: SEED, numRuns: 30 },
    );
  });
});

describe("hostile input to the write endpoints", () => {
  it("POST /v1/apply: never a 500, never a version on a refusal", async () => {
    let taken = 0;
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(maybeMutated, { maxLength: 4 }),
        fc.boolean(),
        fc.boolean(),
        async (resources, yaml, prune) => {
          const { body, yaml: asYaml } = encode(resources, yaml);
          if (asYaml && resources.length === 0) return;
          runs++;
          if (await checkWrite("POST", `/v1/apply${prune ? "?prune=true" : ""}`, body, asYaml)) {
            taken++;
          }
        },
      ),
      { seed: SEED, numRuns: 80 },
    );
    // Some of what is thrown is valid (no mutation, or a harmless one): a server that refused
    // everything would fail here.
    expect(taken).toBeGreaterThanOrEqual(Math.ceil(runs / 10));
  });

  it("PUT /v1/resources/{kind}/{name}: never a 500, never a version on a refusal", async () => {
    await fc.assert(
      fc.asyncProperty(maybeMutated, fc.boolean(), async (resource, yaml) => {
        const r = resource as { kind?: unknown; metadata?: { name?: unknown } } | null;
        const kind = typeof r?.kind === "string" && r.kind !== "" ? r.kind : "Service";
        const name =
          typeof r?.metadata?.name === "string" && r.metadata.name !== "" ? r.metadata.name : "x";
        // A lone surrogate has no URL form: such a name goes as "x" (and is refused as a mismatch).
        const segment = (text: string) => {
          try {
            return encodeURIComponent(text);
          } catch {
            return "x";
          }
        };
        const path = `/v1/resources/${segment(kind)}/${segment(name)}`;
        let body = JSON.stringify(resource);
        if (yaml) {
          try {
            body = dump(resource);
          } catch {
            yaml = false;
          }
        }
        await checkWrite("PUT", path, body, yaml);
      }),
      { seed: SEED, numRuns: 70 },
    );
  });

  it("keys __proto__, constructor and prototype anywhere: 400 bad_request naming the path", async () => {
    const before = await currentVersion();
    for (const key of ["__proto__", "constructor", "prototype"]) {
      const resource = service("proto-" + key.replace(/_/g, ""));
      const body = `{"resources":[${JSON.stringify(resource).replace('"name":', `"${key}":{"x":1},"name":`)}]}`;
      const answer = await expectJsonOf(call("POST", "/v1/apply", { body }), 400);
      expect(answer.error.code).toBe("bad_request");
      expect(answer.error.message).toContain(`$.resources[0].metadata.${key}`);
      const yaml = `apiVersion: meshwork.dev/v1\nkind: Service\nmetadata:\n  name: y\nspec:\n  endpoints:\n    - binding: ECHO_V1\n      ${key}: 1\n`;
      const put = await expectJsonOf(
        call("PUT", "/v1/resources/Service/y", { body: yaml, yaml: true }),
        400,
      );
      expect(put.error.message).toContain(`$.spec.endpoints[0].${key}`);
    }
    expect(await currentVersion()).toBe(before);
  });

  it("bodies that are not a config at all: 400 bad_request, nothing changed", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string({ unit: "binary", maxLength: 200 }),
          fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
        ),
        fc.boolean(),
        async (body, yaml) => {
          await checkWrite("POST", "/v1/apply", body, yaml);
          await checkWrite("POST", "/v1/rollback", body, yaml);
        },
      ),
      { seed: SEED, numRuns: 40 },
    );
  });
});
