// The unified line diff behind `meshctl diff`: hunks as `diff -u` writes them.
import { describe, expect, it } from "vitest";
import { unifiedDiff } from "../../cli/line-diff.mjs";

const text = (...lines: string[]) => `${lines.join("\n")}\n`;
const numbered = (count: number) => Array.from({ length: count }, (_, i) => `line ${i + 1}`);

describe("unifiedDiff", () => {
  it("is empty for equal texts", () => {
    expect(unifiedDiff(text("a", "b"), text("a", "b"))).toEqual([]);
  });

  it("shows a replaced line as - then +, with three lines of context", () => {
    const before = numbered(10);
    const after = [...before];
    after[4] = "line five";
    expect(unifiedDiff(text(...before), text(...after))).toEqual([
      "@@ -2,7 +2,7 @@",
      " line 2",
      " line 3",
      " line 4",
      "-line 5",
      "+line five",
      " line 6",
      " line 7",
      " line 8",
    ]);
  });

  it("splits changes far apart into separate hunks, and joins near ones", () => {
    const before = numbered(30);
    const far = [...before];
    far[2] = "x";
    far[25] = "y";
    expect(unifiedDiff(text(...before), text(...far)).filter((l) => l.startsWith("@@"))).toEqual([
      "@@ -1,6 +1,6 @@",
      "@@ -23,7 +23,7 @@",
    ]);
    const near = [...before];
    near[2] = "x";
    near[8] = "y";
    expect(unifiedDiff(text(...before), text(...near)).filter((l) => l.startsWith("@@"))).toEqual([
      "@@ -1,12 +1,12 @@",
    ]);
  });

  it("numbers an empty side 0,0, as for a new or deleted file", () => {
    expect(unifiedDiff("", text("a", "b"))).toEqual(["@@ -0,0 +1,2 @@", "+a", "+b"]);
    expect(unifiedDiff(text("a"), "")).toEqual(["@@ -1,1 +0,0 @@", "-a"]);
  });

  it("keeps an inserted line between the unchanged ones around it", () => {
    expect(unifiedDiff(text("a", "c"), text("a", "b", "c"))).toEqual([
      "@@ -1,2 +1,3 @@",
      " a",
      "+b",
      " c",
    ]);
  });
});
