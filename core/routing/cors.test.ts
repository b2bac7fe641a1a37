// The CORS filter's decisions, with the expectations of the Gateway API conformance tests
// (HTTPRouteCORS, CORSAllowCredentialsBehavior) for the same configurations.
import { describe, expect, it } from "vitest";
import {
  compileCors,
  isPreflight,
  originAllowed,
  preflightHeaders,
  responseHeaders,
} from "./cors.ts";

// The conformance suite's `/cors-1` route.
const multiple = compileCors({
  allowOrigins: ["https://www.foo.com", "https://*.bar.com"],
  allowMethods: ["GET", "OPTIONS"],
  allowHeaders: ["x-header-1", "x-header-2"],
  exposeHeaders: ["x-header-3", "x-header-4"],
  allowCredentials: true,
  maxAge: 3600,
});

const asHeaders = (pairs: [string, string][]) => Object.fromEntries(pairs);

function preflight(origin: string, method: string, requestHeaders?: string) {
  const headers = new Headers({ origin, "access-control-request-method": method });
  if (requestHeaders) headers.set("access-control-request-headers", requestHeaders);
  return headers;
}

describe("CORS filter", () => {
  it("recognises a preflight: OPTIONS with Origin and Access-Control-Request-Method", () => {
    expect(isPreflight("OPTIONS", preflight("https://a.example", "GET"))).toBe(true);
    expect(isPreflight("OPTIONS", new Headers({ origin: "https://a.example" }))).toBe(false);
    expect(isPreflight("GET", preflight("https://a.example", "GET"))).toBe(false);
  });

  it("answers an allowed preflight with every configured header", () => {
    const headers = asHeaders(
      preflightHeaders(multiple, preflight("https://www.foo.com", "GET", "x-header-1, x-header-2")),
    );
    expect(headers).toEqual({
      vary: "Origin",
      "access-control-allow-origin": "https://www.foo.com",
      "access-control-allow-credentials": "true",
      "access-control-allow-methods": "GET, OPTIONS",
      "access-control-allow-headers": "x-header-1, x-header-2",
      "access-control-expose-headers": "x-header-3, x-header-4",
      "access-control-max-age": "3600",
    });
  });

  it("matches a wildcard origin over any number of labels, but not the bare suffix", () => {
    expect(originAllowed(multiple, "https://www.bar.com")).toBe(true);
    expect(originAllowed(multiple, "https://xpto.www.bar.com")).toBe(true);
    expect(originAllowed(multiple, "https://bar.com")).toBe(false);
    expect(originAllowed(multiple, "https://evilbar.com")).toBe(false);
    expect(originAllowed(multiple, "http://www.bar.com")).toBe(false);
    expect(originAllowed(multiple, "https://www.foo.com:8443")).toBe(false);
    expect(originAllowed(multiple, "null")).toBe(false);
    expect(originAllowed(multiple, "https://www.foo.com/path")).toBe(false);
  });

  it("answers a preflight from a disallowed origin without CORS headers", () => {
    expect(asHeaders(preflightHeaders(multiple, preflight("https://foobar.com", "GET")))).toEqual({
      vary: "Origin",
    });
  });

  it("labels an actual response for an allowed origin, and leaves a disallowed one alone", () => {
    expect(asHeaders(responseHeaders(multiple, "https://www.bar.com"))).toEqual({
      "access-control-allow-origin": "https://www.bar.com",
      "access-control-allow-credentials": "true",
      "access-control-expose-headers": "x-header-3, x-header-4",
    });
    expect(responseHeaders(multiple, "https://foobar.com")).toEqual([]);
  });

  it("echoes the requested method and headers for '*', never '*' with credentials", () => {
    const wildcard = compileCors({
      allowOrigins: ["https://other.foo.com"],
      allowMethods: ["*"],
      allowHeaders: ["*"],
      exposeHeaders: ["*"],
      allowCredentials: true,
      maxAge: 5,
    });
    const headers = asHeaders(
      preflightHeaders(
        wildcard,
        preflight("https://other.foo.com", "PUT", "x-header-1, x-header-2"),
      ),
    );
    expect(headers["access-control-allow-methods"]).toBe("PUT");
    expect(headers["access-control-allow-headers"]).toBe("x-header-1, x-header-2");
    expect(headers["access-control-expose-headers"]).toBeUndefined();
    expect(headers["access-control-max-age"]).toBe("5");
  });

  it("allows any origin with '*', echoing it (ports included), with no credentials header", () => {
    const any = compileCors({ allowOrigins: ["*"], allowMethods: ["PUT"], maxAge: 5 });
    const headers = asHeaders(preflightHeaders(any, preflight("https://foobar.com:12345", "PUT")));
    expect(headers["access-control-allow-origin"]).toBe("https://foobar.com:12345");
    expect(headers["access-control-allow-methods"]).toBe("PUT");
    expect(headers["access-control-allow-credentials"]).toBeUndefined();
  });

  it("without allowCredentials, never says credentials are allowed (CORSAllowCredentialsBehavior)", () => {
    const off = compileCors({
      allowOrigins: ["https://app.example"],
      allowCredentials: false,
      maxAge: 5,
    });
    expect(asHeaders(responseHeaders(off, "https://app.example"))).toEqual({
      "access-control-allow-origin": "https://app.example",
    });
  });

  it("allows no origin when allowOrigins is unset", () => {
    expect(originAllowed(compileCors({ maxAge: 5 }), "https://app.example")).toBe(false);
  });

  it("matches a configured port, and default ports implicitly", () => {
    const ports = compileCors({
      allowOrigins: ["http://localhost:3000", "https://app.example:443"],
      maxAge: 5,
    });
    expect(originAllowed(ports, "http://localhost:3000")).toBe(true);
    expect(originAllowed(ports, "http://localhost:3001")).toBe(false);
    expect(originAllowed(ports, "https://app.example")).toBe(true);
  });
});
