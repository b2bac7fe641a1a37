import { describe, expect, it } from "vitest";
import { matchesPrefix, normalizePrefix, replacePrefix } from "./path.ts";

describe("PathPrefix semantics", () => {
  it("matches whole path elements only", () => {
    const prefix = normalizePrefix("/foo/");
    expect(matchesPrefix("/foo", prefix)).toBe(true);
    expect(matchesPrefix("/foo/", prefix)).toBe(true);
    expect(matchesPrefix("/foo/bar", prefix)).toBe(true);
    expect(matchesPrefix("/foobar", prefix)).toBe(false);
    expect(matchesPrefix("/fo", prefix)).toBe(false);
    expect(matchesPrefix("/anything", "/")).toBe(true);
  });

  it("replaces a matched prefix keeping one slash", () => {
    expect(replacePrefix("/foo/bar", "/foo", "/v2")).toBe("/v2/bar");
    expect(replacePrefix("/foo/bar", "/foo", "/")).toBe("/bar");
    expect(replacePrefix("/foo", "/foo", "/v2")).toBe("/v2");
    expect(replacePrefix("/foo/", "/foo", "/v2")).toBe("/v2/");
    expect(replacePrefix("/foo/bar", "/foo", "/v2/")).toBe("/v2/bar");
    expect(replacePrefix("/x/y", "/", "/api")).toBe("/api/x/y");
    expect(replacePrefix("/foo", "/foo", "/")).toBe("/");
  });
});
