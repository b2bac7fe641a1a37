import { describe, expect, it } from "vitest";
import { copyForwardable, hasHopByHop, stripHopByHop } from "./http-headers.ts";

describe("hop-by-hop headers", () => {
  it("copies without hop-by-hop headers, Connection-listed names and dropped names", () => {
    const copy = copyForwardable(
      new Headers({
        connection: "X-Session, keep-alive",
        "x-session": "1",
        "keep-alive": "timeout=5",
        te: "trailers",
        upgrade: "websocket",
        "x-mesh-caller": "forged",
        accept: "*/*",
        "x-kept": "yes",
      }),
      new Set(["x-mesh-caller"]),
    );
    expect([...copy.keys()].sort()).toEqual(["accept", "x-kept"]);
  });

  it("strips a response's hop-by-hop headers in place", () => {
    const headers = new Headers({
      connection: "x-a",
      "x-a": "1",
      "transfer-encoding": "chunked",
      "x-b": "2",
    });
    expect(hasHopByHop(headers)).toBe(true);
    stripHopByHop(headers);
    expect([...headers.keys()]).toEqual(["x-b"]);
    expect(hasHopByHop(headers)).toBe(false);
  });
});
