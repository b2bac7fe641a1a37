import { describe, expect, it } from "vitest";
import { MeshError } from "./errors.ts";
import { destinationFromHost, normalizeUrlPath, parseRequestUrl } from "./request-target.ts";

function badRequest(run: () => unknown): MeshError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(MeshError);
    expect((error as MeshError).code).toBe("bad_request");
    return error as MeshError;
  }
  throw new Error("expected bad_request");
}

describe("request target", () => {
  it("names the destination by the Host's first label, any case, any port", () => {
    expect(destinationFromHost("payments")).toBe("payments");
    expect(destinationFromHost("Payments.mesh:8787")).toBe("payments");
    expect(destinationFromHost("echo.mesh.internal.")).toBe("echo");
  });

  it("answers '' for a well-formed host that names no Service", () => {
    expect(destinationFromHost("127.0.0.1:8787")).toBe("127");
    expect(destinationFromHost("[::1]:8787")).toBe("");
    expect(destinationFromHost("under_score")).toBe("");
  });

  it("refuses odd Host values with bad_request: a port out of range, not a number, a space", () => {
    for (const host of ["echo:99999", "echo:abc", "ec ho", "echo:", "a@b", "echo/x", "", "é"]) {
      expect(badRequest(() => destinationFromHost(host)).message, host).toMatch(
        /Host header .* is not a valid host\[:port\]/,
      );
    }
  });

  it("shows a hostile Host bounded and printable in the message", () => {
    const message = badRequest(() => destinationFromHost(`${"x".repeat(500)}\u0000`)).message;
    expect(message.length).toBeLessThan(300);
  });

  it("refuses an unparseable URL and a path with an encoded slash", () => {
    badRequest(() => parseRequestUrl("http://echo:99999/"));
    const url = new URL("http://echo/admin%2Fx");
    expect(badRequest(() => normalizeUrlPath(url, "reject")).message).toMatch(/encoded '\/'/);
    expect(normalizeUrlPath(new URL("http://echo//%61dmin/./x?q=%2F"), "reject").href).toBe(
      "http://echo/admin/x?q=%2F",
    );
  });
});
