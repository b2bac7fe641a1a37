// The policy Worker's rules that need no Worker, one piece at a time: the config a write proposes
// (workers/policy/changes.ts), how its issues are named, diffs and summaries; when to publish and
// when KV has drifted; and what the edge checks — request bodies (JSON, YAML, nesting, alias
// expansion), If-Match, the settings read from its vars, router reports, the author note, the
// role an admin SVID has, and the rate at which refusals reach the audit log. No storage, no clock
// but the one passed in.
import { describe, expect, it } from "vitest";
import {
  canonicalJson,
  compareKeys,
  diffConfigs,
  proposeConfig,
  relabelIssues,
  resourceKey,
  summarize,
} from "../../workers/policy/changes.ts";
import { driftOf, PROPAGATION_MS } from "../../workers/policy/drift.ts";
import { MAX_BACKOFF_MS, publishAt, retryDelayMs } from "../../workers/policy/publish-schedule.ts";
import { route, service } from "./helpers.ts";
import { parseIfMatch } from "../../workers/policy/app.ts";
import { generateKeyPair, SignJWT } from "jose";
import { identityIssuer, ROLES_CLAIM, routerId, spiffeId } from "../../core/identity/names.ts";
import { verifySvid } from "../../core/identity/svid.ts";
import { authorNote, roleOf } from "../../workers/policy/auth.ts";
import { AdminError } from "../../workers/policy/errors.ts";
import { RefusalLog } from "../../workers/policy/refusal-log.ts";
import {
  checkShape,
  isYaml,
  MAX_DEPTH,
  parseDocuments,
} from "../../workers/policy/request-body.ts";
import { parseRouterReport } from "../../workers/policy/router-report.ts";
import { readSettings } from "../../workers/policy/settings.ts";

const keys = (list: unknown[]) => list.map(resourceKey);

describe("proposeConfig", () => {
  const current = [service("a"), service("b"), route("r", "a", ["b"])];

  it("apply puts the body first, at its own indexes, and keeps what it does not name", () => {
    const proposal = proposeConfig(current, {
      op: "apply",
      resources: [service("b", "ECHO_V2"), service("c")],
      prune: false,
    });
    expect(keys(proposal.resources)).toEqual([
      "Service/b",
      "Service/c",
      "Service/a",
      "HTTPRoute/r",
    ]);
    expect(proposal.labels).toEqual(["resources[0]", "resources[1]", "Service/a", "HTTPRoute/r"]);
  });

  it("apply with prune is exactly the body", () => {
    const proposal = proposeConfig(current, {
      op: "apply",
      resources: [service("c")],
      prune: true,
    });
    expect(keys(proposal.resources)).toEqual(["Service/c"]);
  });

  it("put replaces the resource the path names, delete drops it, rollback is the old list", () => {
    const put = proposeConfig(current, {
      op: "put",
      kind: "Service",
      name: "a",
      resource: service("a", "ECHO_V3"),
    });
    expect(put.resources[0]).toEqual(service("a", "ECHO_V3"));
    expect(put.labels).toEqual(["Service/a", "Service/b", "HTTPRoute/r"]);
    const del = proposeConfig(current, { op: "delete", kind: "HTTPRoute", name: "r" });
    expect(keys(del.resources)).toEqual(["Service/a", "Service/b"]);
    const back = proposeConfig(current, { op: "rollback", version: 3, resources: [service("z")] });
    expect(keys(back.resources)).toEqual(["Service/z"]);
  });

  it("keeps body entries without a key for validation to name", () => {
    const proposal = proposeConfig(current, { op: "apply", resources: [42, null], prune: false });
    expect(proposal.resources.slice(0, 2)).toEqual([42, null]);
    expect(proposal.labels.slice(0, 2)).toEqual(["resources[0]", "resources[1]"]);
  });
});

describe("relabelIssues", () => {
  it("names each issue's resource by its label, keeping the rest of the path", () => {
    expect(
      relabelIssues(
        [
          { path: "resources[0].spec.x", message: "a" },
          { path: "resources[2]", message: "b" },
          { path: "resources", message: "c" },
          { path: "resources[9].y", message: "d" },
        ],
        ["resources[0]", "Service/a", "HTTPRoute/r"],
      ),
    ).toEqual([
      { path: "resources[0].spec.x", message: "a" },
      { path: "HTTPRoute/r", message: "b" },
      { path: "resources", message: "c" },
      { path: "resources[9].y", message: "d" },
    ]);
  });
});

describe("canonicalJson", () => {
  it("is the same text for the same value, whatever the key order", () => {
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: "é" }] })).toBe(
      canonicalJson({ a: [{ c: "é", d: 2 }], b: 1 }),
    );
    expect(canonicalJson({ b: 1, a: null })).toBe('{"a":null,"b":1}');
    expect(JSON.parse(canonicalJson({ x: "\ud800" }))).toEqual({ x: "\ud800" });
  });
});

describe("diffConfigs and summarize", () => {
  it("lists added, changed and removed keys in the store's order", () => {
    const before = new Map([
      ["Service/a", "1"],
      ["HTTPRoute/r", "1"],
      ["Service/b", "1"],
    ]);
    const after = new Map([
      ["Service/b", "2"],
      ["HTTPRoute/q", "1"],
      ["Service/a", "1"],
      ["Service/0", "1"],
    ]);
    const diff = diffConfigs(before, after);
    expect(diff).toEqual({
      added: ["Service/0", "HTTPRoute/q"],
      changed: ["Service/b"],
      removed: ["HTTPRoute/r"],
    });
    expect(summarize({ op: "apply", resources: [], prune: true }, diff)).toBe(
      "apply with prune: 2 added, 1 changed, 1 removed",
    );
    expect(
      summarize(
        { op: "delete", kind: "Service", name: "x" },
        { added: [], changed: [], removed: [] },
      ),
    ).toBe("delete Service/x: no change");
  });

  it("orders kinds as the README does, unknown kinds last", () => {
    expect(["Zeta/a", "HTTPRoute/a", "Service/b", "Service/a"].sort(compareKeys)).toEqual([
      "Service/a",
      "Service/b",
      "HTTPRoute/a",
      "Zeta/a",
    ]);
  });
});

describe("publish schedule", () => {
  it("publishes now after a quiet second, else a second after the last publish began", () => {
    expect(publishAt(10_000, null)).toBe(10_000);
    expect(publishAt(10_000, 5_000)).toBe(10_000);
    expect(publishAt(10_000, 9_500)).toBe(10_500);
  });

  it("backs off 1, 2, 4 … seconds after failures, never more than 30 s", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 100].map(retryDelayMs)).toEqual([
      1000,
      2000,
      4000,
      8000,
      16000,
      MAX_BACKOFF_MS,
      MAX_BACKOFF_MS,
      MAX_BACKOFF_MS,
    ]);
  });
});

describe("driftOf", () => {
  const published = {
    version: 7,
    hash: "h7",
    at: 1_000_000,
    replaced: [
      { hash: "h5", at: 990_000 },
      { hash: "h6", at: 1_000_000 },
    ],
  };

  it("is none while KV holds what the store published", () => {
    expect(driftOf({ hash: "h7", version: 7 }, published, 5_000_000)).toBeNull();
    expect(
      driftOf(
        { hash: null, version: null },
        { version: null, hash: null, at: null, replaced: [] },
        0,
      ),
    ).toBeNull();
  });

  it("is none while KV still shows the index before the last publish, for the propagation time", () => {
    expect(
      driftOf({ hash: "h6", version: 6 }, published, 1_000_000 + PROPAGATION_MS - 1),
    ).toBeNull();
    expect(
      driftOf({ hash: "h6", version: 6 }, published, 1_000_000 + PROPAGATION_MS),
    ).toMatchObject({
      kvVersion: 6,
      publishedVersion: 7,
    });
  });

  it("covers every index the store replaced within the propagation time, not only the last", () => {
    expect(driftOf({ hash: "h5", version: 5 }, published, 990_000 + PROPAGATION_MS - 1)).toBeNull();
    expect(driftOf({ hash: "h5", version: 5 }, published, 990_000 + PROPAGATION_MS)).toMatchObject({
      kvVersion: 5,
    });
  });

  it("says what happened: an index written elsewhere, one deleted, one from before the store", () => {
    expect(driftOf({ hash: "x", version: 9 }, published, 0)!.message).toMatch(
      /\(version 9\) is not the one this store published \(version 7\)/,
    );
    expect(driftOf({ hash: null, version: null }, published, 0)!.message).toMatch(
      /KV holds no mesh\/index/,
    );
    expect(
      driftOf({ hash: "x", version: 3 }, { version: null, hash: null, at: null, replaced: [] }, 0)!
        .message,
    ).toMatch(/has published nothing yet/);
  });
});

function badRequest(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(AdminError);
    expect((error as AdminError).code).toBe("bad_request");
    return (error as AdminError).message;
  }
  throw new Error("expected bad_request");
}

describe("request bodies", () => {
  it("YAML is recognised by its content types", () => {
    expect(isYaml("application/yaml; charset=utf-8")).toBe(true);
    expect(isYaml("text/x-yaml")).toBe(true);
    expect(isYaml("application/json")).toBe(false);
    expect(isYaml(null)).toBe(false);
  });

  it("YAML: one document per resource, empty ones skipped, errors with their line", () => {
    expect(parseDocuments("a: 1\n---\n---\n# nothing\n---\nb: 2\n", true)).toEqual([
      { a: 1 },
      { b: 2 },
    ]);
    expect(badRequest(() => parseDocuments("a: 1\nb: [\n", true))).toMatch(
      /not valid YAML \(line \d+\)/,
    );
    expect(badRequest(() => parseDocuments("--- \n", true))).toMatch(/no document/);
    // Only the core schema: no JavaScript types, no timestamps turned into Dates.
    expect(badRequest(() => parseDocuments("a: !!js/function 'x'\n", true))).toMatch(/YAML/);
    expect(parseDocuments("at: 2026-01-01\n", true)).toEqual([{ at: "2026-01-01" }]);
  });

  it("JSON: one document; an empty or broken body is refused", () => {
    expect(parseDocuments('{"a":[1]}', false)).toEqual([{ a: [1] }]);
    expect(badRequest(() => parseDocuments("  ", false))).toMatch(/empty/);
    expect(badRequest(() => parseDocuments("{", false))).toMatch(/not JSON/);
  });

  it("refuses nesting deeper than MAX_DEPTH, in JSON and in YAML", () => {
    const deep = (n: number) => "[".repeat(n) + "]".repeat(n);
    expect(parseDocuments(deep(MAX_DEPTH), false)).toHaveLength(1);
    expect(badRequest(() => parseDocuments(deep(MAX_DEPTH + 1), false))).toMatch(/nested deeper/);
    expect(badRequest(() => parseDocuments(deep(100_000), false))).toMatch(/nested deeper/);
    expect(badRequest(() => parseDocuments(deep(500), true))).toMatch(/YAML|nested/);
  });

  it("counts a shared value every time it occurs, and stops at the limit", () => {
    const leaf = ["x".repeat(100)];
    let value: unknown = leaf;
    for (let i = 0; i < 40; i++) value = [value, value];
    expect(badRequest(() => checkShape(value, 1_000_000))).toMatch(/aliases/);
    expect(() => checkShape({ a: "x".repeat(100) }, 1_000)).not.toThrow();
  });
});

describe("If-Match", () => {
  it('takes "N", N and *; refuses anything else', () => {
    expect(parseIfMatch(undefined)).toBeUndefined();
    expect(parseIfMatch('"12"')).toBe(12);
    expect(parseIfMatch(" 12 ")).toBe(12);
    expect(parseIfMatch("*")).toBeUndefined();
    for (const value of ['W/"12"', '"12', "1.5", "-1", '"1", "2"', "", "1e3"]) {
      badRequest(() => parseIfMatch(value));
    }
  });
});

describe("settings", () => {
  it("ignores a short ADMIN_TOKEN and says so", () => {
    const settings = readSettings({ ADMIN_TOKEN: "short", ADMIN_SERVICES: "ops" });
    expect(settings.adminToken).toBeUndefined();
    expect(settings.problems).toEqual([expect.stringMatching(/shorter than 16/)]);
  });

  it("reads service lists, skipping what is not a service name; an admin is not also a viewer", () => {
    const settings = readSettings({
      ADMIN_TOKEN: "a-long-enough-token",
      ADMIN_SERVICES: " ops , Bad_Name,,deploy",
      VIEWER_SERVICES: "dash,ops",
      TRUST_DOMAIN: "Not A Domain",
    });
    expect(settings.adminServices).toEqual(["ops", "deploy"]);
    expect(settings.viewerServices).toEqual(["dash"]);
    expect(settings.trustDomain).toBe("meshwork.local");
    expect(settings.problems).toEqual([
      expect.stringMatching(/^TRUST_DOMAIN/),
      expect.stringMatching(/^ADMIN_SERVICES names "Bad_Name"/),
    ]);
  });

  it("warns when nobody could change the config", () => {
    expect(readSettings({}).problems).toEqual([
      expect.stringMatching(/neither ADMIN_TOKEN nor ADMIN_SERVICES is set/),
    ]);
  });
});

describe("router reports", () => {
  it("takes the router's report, dropping fields it does not know and cutting a long error", () => {
    const parsed = parseRouterReport({
      isolate: "i",
      colo: null,
      version: 3,
      appliedAt: "2026-11-01T00:00:00.000Z",
      error: "e".repeat(5000),
      extra: true,
    });
    expect(parsed.ok).toBe(true);
    if (parsed.ok) {
      expect(parsed.report).not.toHaveProperty("extra");
      expect(parsed.report.error).toHaveLength(1000);
    }
    expect(parseRouterReport({ isolate: "i", version: null }).ok).toBe(true);
  });

  it("refuses a report that is not one, naming the fields", () => {
    const parsed = parseRouterReport({ isolate: 7, version: "3" });
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.message).toMatch(/isolate: .*; version: /);
  });
});

describe("authorNote", () => {
  it("keeps printable text, at most 64 characters, without controls or direction overrides", () => {
    expect(authorNote(null)).toBeUndefined();
    expect(authorNote("  \u0007 ")).toBeUndefined();
    expect(authorNote("ali\u202ece\n")).toBe("alice");
    expect(authorNote("é".repeat(100))).toBe("é".repeat(64));
  });
});

describe("RefusalLog", () => {
  it("records a burst of 20, then 2 a second, and says how many were left out", () => {
    let now = 0;
    const log = new RefusalLog(() => now);
    const entry = {
      actor: "anonymous",
      action: "GET /v1/config",
      outcome: "unauthenticated",
      detail: "no credential",
    };
    const admitted = Array.from({ length: 30 }, () => log.admit(entry)).filter(Boolean);
    expect(admitted).toHaveLength(20);
    now += 500;
    expect(log.admit(entry)?.detail).toBe(
      "no credential (and 10 earlier refusals from this isolate, not recorded one by one)",
    );
    expect(log.admit(entry)).toBeUndefined();
  });
});

describe("the role of an admin SVID", () => {
  const NOW = Date.parse("2026-11-01T12:00:00Z");
  const lists = { adminServices: ["ops"], viewerServices: ["dash"] };
  const svid = (service: string, roles: ("admin" | "viewer")[]) => ({ service, roles });
  const grant = (service: string, roles: ("admin" | "viewer")[], expires?: string) => ({
    service,
    roles,
    ...(expires === undefined ? {} : { expires }),
  });

  it("is what the claim names, no more than a grant of the config still gives", () => {
    const grants = [grant("ci", ["admin"]), grant("board", ["viewer"])];
    expect(roleOf(svid("ci", ["admin"]), grants, lists, NOW)).toEqual({ role: "admin" });
    expect(roleOf(svid("board", ["viewer"]), grants, lists, NOW)).toEqual({ role: "viewer" });
    // Claims admin, granted viewer now: a viewer. Claims admin, granted nothing: none.
    expect(roleOf(svid("board", ["admin"]), grants, lists, NOW)).toEqual({ role: "viewer" });
    expect(roleOf(svid("other", ["admin"]), grants, lists, NOW)).toMatchObject({
      role: undefined,
      why: expect.stringContaining("its SVID claims admin, which no usable WorkloadCredential"),
    });
    // A grant past its credential's expiry grants nothing.
    const expired = [grant("ci", ["admin"], "2026-11-01T11:59:59Z")];
    expect(roleOf(svid("ci", ["admin"]), expired, lists, NOW).role).toBeUndefined();
    // The claim never raises what the grant gives: a viewer claim with an admin grant is a viewer.
    expect(roleOf(svid("ci", ["viewer"]), grants, lists, NOW)).toEqual({ role: "viewer" });
  });

  it("falls back to ADMIN_SERVICES and VIEWER_SERVICES, the higher of the two ways winning", () => {
    expect(roleOf(svid("ops", []), [], lists, NOW)).toEqual({ role: "admin" });
    expect(roleOf(svid("dash", []), [], lists, NOW)).toEqual({ role: "viewer" });
    expect(roleOf(svid("dash", ["admin"]), [grant("dash", ["admin"])], lists, NOW)).toEqual({
      role: "admin",
    });
    expect(roleOf(svid("orders", []), [], lists, NOW)).toEqual({
      role: undefined,
      why: "service 'orders' has no admin role: its SVID claims no role, and it is in neither ADMIN_SERVICES nor VIEWER_SERVICES",
    });
  });

  it("comes from a claim verifySvid reads: roles it does not know dropped, a malformed claim refused", async () => {
    const { privateKey, publicKey } = await generateKeyPair("ES256");
    const iat = Math.floor(NOW / 1000);
    const token = (roles: unknown) =>
      new SignJWT({
        sub: spiffeId("meshwork.local", "ci"),
        jti: "j1",
        ...(roles === undefined ? {} : { [ROLES_CLAIM]: roles }),
      })
        .setProtectedHeader({ alg: "ES256", kid: "k1", typ: "JWT" })
        .setIssuer(identityIssuer("meshwork.local"))
        .setAudience(routerId("meshwork.local"))
        .setIssuedAt(iat)
        .setExpirationTime(iat + 300)
        .sign(privateKey);
    const check = {
      trustDomain: "meshwork.local",
      key: () => publicKey,
      now: NOW,
      skewSeconds: 30,
    };
    expect((await verifySvid(await token(undefined), check)).roles).toEqual([]);
    expect((await verifySvid(await token(["viewer", "root", "admin"]), check)).roles).toEqual([
      "admin",
      "viewer",
    ]);
    for (const bad of ["admin", [1], { admin: true }]) {
      await expect(verifySvid(await token(bad), check)).rejects.toThrow(
        `${ROLES_CLAIM} is not a list of role names`,
      );
    }
  });
});
