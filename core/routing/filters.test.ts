import { describe, expect, it } from "vitest";
import { applyHeaderEdits, redirectLocation, rewriteUrl } from "./filters.ts";
import type { CompiledMatch, RedirectSpec } from "./route-table.ts";

const prefixMatch = { pathType: "PathPrefix", pathValue: "/old" } as CompiledMatch;

describe("filters", () => {
  it("edits headers: set, then add, then remove", () => {
    const headers = new Headers({ a: "1", b: "2", c: "3" });
    applyHeaderEdits(headers, {
      set: [["a", "one"]],
      add: [["b", "two"]],
      remove: ["c"],
    });
    expect(headers.get("a")).toBe("one");
    expect(headers.get("b")).toBe("2, two");
    expect(headers.has("c")).toBe(false);
  });

  it("rewrites hostname and full path, keeping the query", () => {
    const url = rewriteUrl(
      new URL("http://echo/old/x?q=1"),
      { hostname: "echo.internal", path: { type: "ReplaceFullPath", value: "/new" } },
      prefixMatch,
    );
    expect(url.toString()).toBe("http://echo.internal/new?q=1");
  });

  it("rewrites the matched prefix", () => {
    const url = rewriteUrl(
      new URL("http://echo/old/x"),
      { hostname: undefined, path: { type: "ReplacePrefixMatch", value: "/v2" } },
      prefixMatch,
    );
    expect(url.pathname).toBe("/v2/x");
  });

  it("builds redirect locations from the parts that are set", () => {
    const base: RedirectSpec = {
      scheme: undefined,
      hostname: undefined,
      port: undefined,
      path: undefined,
      statusCode: 302,
    };
    const url = new URL("http://echo:8787/old/x?q=1");
    expect(redirectLocation(url, { ...base, scheme: "https" }, prefixMatch)).toBe(
      "https://echo/old/x?q=1",
    );
    expect(
      redirectLocation(url, { ...base, hostname: "new.example", port: 9443 }, prefixMatch),
    ).toBe("http://new.example:9443/old/x?q=1");
    expect(
      redirectLocation(
        url,
        { ...base, path: { type: "ReplacePrefixMatch", value: "/new" } },
        prefixMatch,
      ),
    ).toBe("http://echo:8787/new/x?q=1");
    expect(redirectLocation(url, { ...base, scheme: "https", port: 443 }, prefixMatch)).toBe(
      "https://echo/old/x?q=1",
    );
  });
});
