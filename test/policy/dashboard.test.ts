// The dashboard's routes on the policy Worker: the page and its scripts are open and hold no
// data; the data stays behind the admin API's authentication.
import { describe, expect, it } from "vitest";
import { call, expectJson, service } from "./helpers.ts";
import { POLICY_ADMIN_TOKEN } from "./constants.ts";

const NOBODY = { headers: {} };

/** The asset paths the page names, in order. */
function assetPaths(html: string): string[] {
  return [...html.matchAll(/(?:src|href)="(\/dashboard\/assets\/[^"]+)"/g)].map((m) => m[1]!);
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

describe("GET /dashboard", () => {
  it("serves the page to anyone, with a policy that allows this origin's scripts only", async () => {
    const response = await call("GET", "/dashboard", NOBODY);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/html; charset=utf-8/i);
    expect(response.headers.get("cache-control")).toBe("no-store");
    const csp = response.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toContain("default-src 'none'");
    const html = await response.text();
    expect(html).toMatch(/^<!doctype html>/);
    for (const id of ["service-graph", "series-chart", "edges", "breakers", "splits", "denials"]) {
      expect(html).toContain(`data-testid="${id}"`);
    }
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/); // no inline script
    expect(html).not.toMatch(/https?:\/\//); // nothing from elsewhere: no CDN
  });

  it("holds no data: not the config, not the token", async () => {
    const marker = "dashboard-secret-service";
    await expectJson(call("PUT", `/v1/resources/Service/${marker}`, { body: service(marker) }));
    const html = await (await call("GET", "/dashboard", NOBODY)).text();
    expect(html).not.toContain(marker);
    expect(html).not.toContain(POLICY_ADMIN_TOKEN);
    // The same page whoever asks.
    expect(await (await call("GET", "/dashboard")).text()).toBe(html);
  });

  it("names its scripts and stylesheet by content hash, and serves them for a year", async () => {
    const html = await (await call("GET", "/dashboard", NOBODY)).text();
    const paths = assetPaths(html);
    expect(paths).toEqual([
      expect.stringMatching(/^\/dashboard\/assets\/style\.[0-9a-f]{16}\.css$/),
      expect.stringMatching(/^\/dashboard\/assets\/echarts\.[0-9a-f]{16}\.min\.js$/),
      expect.stringMatching(/^\/dashboard\/assets\/dashboard\.[0-9a-f]{16}\.js$/),
    ]);
    const types = ["text/css", "text/javascript", "text/javascript"];
    for (const [i, path] of paths.entries()) {
      const response = await call("GET", path, NOBODY);
      expect(response.status, path).toBe(200);
      expect(response.headers.get("content-type")).toBe(`${types[i]}; charset=utf-8`);
      expect(response.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
      expect(response.headers.get("x-content-type-options")).toBe("nosniff");
      const body = await response.text();
      const hash = /\.([0-9a-f]{16})\./.exec(path)![1]!;
      expect((await sha256Hex(body)).slice(0, 16)).toBe(hash);
    }
    const echarts = await (await call("GET", paths[1]!, NOBODY)).text();
    expect(echarts.length).toBeGreaterThan(500_000);
    expect(echarts).toContain("Apache");
    const client = await (await call("GET", paths[2]!, NOBODY)).text();
    expect(client).toContain("/v1/metrics?window=");
    expect(client).toContain("/v1/status");
  });

  it("answers an asset it does not have, or an old hash, with a clear 404", async () => {
    for (const path of [
      "/dashboard/assets/echarts.0000000000000000.min.js",
      "/dashboard/assets/x.js",
    ]) {
      const body = await expectJson<{ error: { code: string; message: string } }>(
        call("GET", path, NOBODY),
        404,
      );
      expect(body.error.code).toBe("not_found");
      expect(body.error.message).toMatch(
        /the dashboard has no asset .* it serves echarts\.[0-9a-f]{16}\.min\.js/,
      );
    }
  });

  it("leaves the data it reads behind the admin API's authentication", async () => {
    for (const path of ["/v1/status", "/v1/metrics?window=60"]) {
      const body = await expectJson<{ error: { code: string } }>(call("GET", path, NOBODY), 401);
      expect(body.error.code).toBe("unauthenticated");
    }
  });

  it("names the dashboard in the answer to an unknown path", async () => {
    const body = await expectJson<{ error: { message: string } }>(call("GET", "/nowhere"), 404);
    expect(body.error.message).toContain("GET /dashboard");
  });
});
