import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  canonicalAuthorizationPath as canonical,
  canonicalPathSuffix,
  endsInsideSegment,
} from "./auth-path.ts";

describe("canonical authorization path", () => {
  it("returns an already canonical path as it is", () => {
    for (const path of ["/", "/admin", "/a.b/c..d/.well-known/x", "/~user/a-b_c"]) {
      expect(canonical(path)).toBe(path);
    }
  });

  it("decodes every valid escape, once", () => {
    expect(canonical("/%61dmin")).toBe("/admin");
    expect(canonical("/a%2Fb")).toBe("/a/b");
    expect(canonical("/a%20b")).toBe("/a b");
    expect(canonical("/%2561dmin")).toBe("/%61dmin");
  });

  it("decodes escaped UTF-8 and keeps the escapes of bytes that are not", () => {
    expect(canonical("/caf%C3%A9")).toBe("/café");
    expect(canonical("/%F0%9F%98%80")).toBe("/😀");
    expect(canonical("/a%C3")).toBe("/a%c3");
    expect(canonical("/a%C3%41")).toBe("/a%c3a");
    expect(canonical("/%C0%AF")).toBe("/%c0%af"); // an overlong '/' is not a separator
    expect(canonical("/%E0%80%AF")).toBe("/%e0%80%af"); // nor is a three-byte one
    expect(canonical("/%ED%A0%80")).toBe("/%ed%a0%80"); // a surrogate
  });

  it("keeps '%' not followed by two hex digits", () => {
    expect(canonical("/a%zz/%4")).toBe("/a%zz/%4");
    expect(canonical("/100%")).toBe("/100%");
  });

  it("treats '\\' as a separator, escaped or not", () => {
    expect(canonical("\\admin\\x")).toBe("/admin/x");
    expect(canonical("/a%5Cb")).toBe("/a/b");
  });

  it("drops each segment's matrix parameters", () => {
    expect(canonical("/admin;x/y")).toBe("/admin/y");
    expect(canonical("/a;b=1;c/d;e")).toBe("/a/d");
    expect(canonical("/;x/admin")).toBe("/admin");
    expect(canonical("/public/..;/admin")).toBe("/admin");
  });

  it("merges slashes, resolves dot segments never above the root, drops a trailing slash", () => {
    expect(canonical("//a///b//")).toBe("/a/b");
    expect(canonical("/a/./b/../c")).toBe("/a/c");
    expect(canonical("/../../a")).toBe("/a");
    expect(canonical("/a/..")).toBe("/");
    expect(canonical("/a/")).toBe("/a");
    expect(canonical("")).toBe("/");
    expect(canonical("admin")).toBe("/admin");
  });

  it("lower-cases", () => {
    expect(canonical("/Admin/USERS")).toBe("/admin/users");
    expect(canonical("/ÉTÉ")).toBe("/été");
  });

  it("every output is canonical: rooted, no empty or dot segments, no ';' or '\\', no upper case", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 40 }), (path) => {
        const result = canonical(path);
        expect(result.startsWith("/")).toBe(true);
        expect(result).toBe(result.toLowerCase());
        expect(result).not.toMatch(/[;\\]/);
        if (result !== "/") {
          expect(result.slice(1).split("/")).not.toContainEqual(expect.stringMatching(/^\.{0,2}$/));
        }
      }),
    );
  });

  it("every spelling of a path has the same canonical form as the path", () => {
    const segment = fc.stringMatching(/^[a-z0-9_-]{1,6}$/);
    const respell = (segmentText: string, style: number) => {
      switch (style) {
        case 0:
          return segmentText.toUpperCase();
        case 1: // escape every character
          return [...segmentText]
            .map((c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`)
            .join("");
        case 2:
          return `${segmentText};jsessionid=1`;
        case 3:
          return `x/../${segmentText}`;
        case 4:
          return `./${segmentText}`;
        case 5:
          return `${segmentText}//`;
        case 6:
          return `%2E%2e/${segmentText}`; // '..' at the start of the path stays at the root
        default:
          return segmentText;
      }
    };
    fc.assert(
      fc.property(
        fc.array(fc.tuple(segment, fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 5 }),
        fc.constantFrom("/", "\\", "%2F", "%5c"),
        fc.boolean(),
        (parts, separator, trailing) => {
          const path = `/${parts.map(([s]) => s).join("/")}`;
          // '..' segments resolve against what precedes them, so only the first part uses style 6.
          const spelled =
            separator +
            parts
              .map(([s, style], index) => respell(s, style === 6 && index > 0 ? 7 : style))
              .join(separator) +
            (trailing ? separator : "");
          expect(canonical(spelled)).toBe(canonical(path));
        },
      ),
    );
  });
});

describe("path pattern pieces", () => {
  it("tells a prefix ending inside a segment from one ending on a boundary", () => {
    expect(endsInsideSegment("/adm")).toBe(true);
    expect(endsInsideSegment("/admin/")).toBe(false);
    expect(endsInsideSegment("/admin/.")).toBe(false);
    expect(endsInsideSegment("/admin;")).toBe(false);
    expect(endsInsideSegment("/admin%2F")).toBe(false);
  });

  it("canonicalises a suffix without making it absolute", () => {
    expect(canonicalPathSuffix(".JSON")).toBe(".json");
    expect(canonicalPathSuffix("/Orders/")).toBe("/orders");
    expect(canonicalPathSuffix("//a/./b;x")).toBe("/a/b");
    expect(canonicalPathSuffix("%2Forders")).toBe("/orders");
    expect(canonicalPathSuffix("/")).toBe("");
  });
});
