import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { normalizePath } from "./path-normalization.ts";

const normal = (path: string, escapedSlashes: "reject" | "keep" = "reject") => {
  const result = normalizePath(path, escapedSlashes);
  if (!result.ok) throw new Error(`refused ${path}: ${result.reason}`);
  return result.path;
};

describe("path normalisation", () => {
  it("leaves a plain path untouched", () => {
    for (const path of ["/", "/admin", "/admin/", "/a.b/c..d/.well-known/x", "/~user/a-b_c"]) {
      expect(normal(path)).toBe(path);
    }
  });

  it("decodes percent-encoded unreserved characters (/%61dmin is /admin)", () => {
    expect(normal("/%61dmin/x")).toBe("/admin/x");
    expect(normal("/%41%5a%7E%2d%5F%2E")).toBe("/AZ~-_.");
  });

  it("keeps other escapes, with upper-case hex", () => {
    expect(normal("/caf%c3%a9")).toBe("/caf%C3%A9");
    expect(normal("/a%20b%25c")).toBe("/a%20b%25c");
  });

  it("never decodes twice (%2561 stays an escaped '%' followed by 61)", () => {
    expect(normal("/%2561dmin")).toBe("/%2561dmin");
  });

  it("merges slashes (//admin/x is /admin/x)", () => {
    expect(normal("//admin/x")).toBe("/admin/x");
    expect(normal("/admin///x//")).toBe("/admin/x/");
  });

  it("resolves dot segments, encoded ones too, never above the root", () => {
    expect(normal("/a/./b/../c")).toBe("/a/c");
    expect(normal("/x/%2e%2e/admin")).toBe("/admin");
    expect(normal("/x/.%2E/admin")).toBe("/admin");
    expect(normal("/../../admin")).toBe("/admin");
    expect(normal("/a/b/..")).toBe("/a/");
    expect(normal("/a/.")).toBe("/a/");
  });

  it("treats a backslash as a separator", () => {
    expect(normal("/x\\..\\admin")).toBe("/admin");
  });

  it("decodes /%2Emesh/status to the reserved prefix", () => {
    expect(normal("/%2Emesh/status")).toBe("/.mesh/status");
    expect(normal("//.mesh/status")).toBe("/.mesh/status");
  });

  it("refuses an encoded slash or backslash by default (/admin%2Fx)", () => {
    for (const path of ["/admin%2Fx", "/admin%2fx", "/admin%5Cx", "/a/%5c"]) {
      const result = normalizePath(path, "reject");
      expect(result.ok, path).toBe(false);
      if (!result.ok) expect(result.reason).toMatch(/encoded '[/\\]'/);
    }
  });

  it("keeps an encoded slash, encoded, when told to", () => {
    expect(normal("/admin%2fx/./y", "keep")).toBe("/admin%2Fx/y");
    expect(normal("/a%5cb", "keep")).toBe("/a%5Cb");
  });

  it("refuses malformed percent-encoding", () => {
    for (const path of ["/a%", "/a%4", "/a%zz", "/%g1"]) {
      expect(normalizePath(path, "reject").ok, path).toBe(false);
    }
  });

  it("is idempotent and always yields an absolute path with no dot segments or empty segments", () => {
    const segment = fc.oneof(
      fc.constantFrom("", ".", "..", "%2e", "%2E%2e", "admin", "%61dmin", "a%20b", "%c3%a9", "~"),
      fc.string({ unit: fc.constantFrom("a", "Z", "0", "-", ".", "_", "~", "%41", "%7e") }),
    );
    fc.assert(
      fc.property(fc.array(segment, { maxLength: 8 }), fc.boolean(), (segments, backslash) => {
        const path = `/${segments.join(backslash ? "\\" : "/")}`;
        const once = normal(path);
        expect(once.startsWith("/")).toBe(true);
        expect(normal(once)).toBe(once);
        const inner = once.slice(1).split("/");
        inner.pop(); // a trailing empty segment is the kept trailing slash
        for (const part of inner) expect(["", ".", ".."]).not.toContain(part);
      }),
      { seed: 42, numRuns: 500 },
    );
  });
});
