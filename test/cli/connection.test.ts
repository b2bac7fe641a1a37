// How meshctl finds and authenticates to the admin API, and what it says when it cannot: an
// unreachable server, a server that does not answer, a refused token; and the help of every
// command, the version and command-line mistakes.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { ADMIN_SVID, startFakeAdmin } from "./fake-admin.ts";
import { meshctl, meshctlProcess, test } from "./run-meshctl.ts";

const COMMANDS = [
  "apply",
  "diff",
  "validate",
  "get",
  "delete",
  "history",
  "rollback",
  "status",
  "check",
  "stat",
  "top",
];

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as AddressInfo;
  await new Promise((done) => server.close(done));
  return port;
}

describe("reaching the admin API", () => {
  it("says the server is unreachable, and what to check, exiting 1", async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const result = await meshctlProcess(["get", "--server", url]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `✗ cannot reach the admin API at ${url}: connection refused\n` +
        "  is `npm start` running? is --server right? (default: MESH_ADMIN_URL, else http://127.0.0.1:8788)\n",
    );
  });

  it("gives up on a server that does not answer within --timeout", async () => {
    const silent = createServer(() => {});
    await new Promise<void>((done) => silent.listen(0, "127.0.0.1", done));
    try {
      const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
      const result = await meshctl(["status", "--server", url, "--timeout", "0.3"]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(
        `✗ cannot reach the admin API at ${url}: no answer within 0.3 s`,
      );
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
  });

  it("uses MESH_ADMIN_URL and MESH_ADMIN_TOKEN when no flags are given", async () => {
    const fake = await startFakeAdmin({ token: "from-the-environment" });
    try {
      const result = await meshctl(["get"], {
        env: { MESH_ADMIN_URL: fake.url, MESH_ADMIN_TOKEN: "from-the-environment" },
      });
      expect(result.code, result.stderr).toBe(0);
      expect(fake.requests[0]!.headers.authorization).toBe("Bearer from-the-environment");
    } finally {
      await fake.close();
    }
  });

  it("sends the local development token to a loopback server when no token is given", async () => {
    const fake = await startFakeAdmin({ token: "meshwork-dev-admin-token" });
    try {
      const result = await meshctl(["history", "--server", fake.url]);
      expect(result.code, result.stderr).toBe(0);
      expect(fake.requests[0]!.headers.authorization).toBe("Bearer meshwork-dev-admin-token");
    } finally {
      await fake.close();
    }
  });

  it("never sends the development token to a server that is not on this machine", async () => {
    // 192.0.2.0/24 is reserved for documentation: nothing answers, so only what was tried matters.
    const result = await meshctl(["get", "--server", "https://192.0.2.1", "--timeout", "0.2"]);
    expect(result.code).toBe(1);
    expect(result.stderr).not.toContain("development token");
    const token = await meshctl([
      "get",
      "--server",
      "http://192.0.2.1",
      "--token",
      "t",
      "--timeout",
      "0.2",
    ]);
    expect(token.stderr).toContain("⚠ sending an admin credential over plain http to 192.0.2.1");
  });

  test("on 401 with the development token, says how to pass the server's own token", async ({
    fake,
  }) => {
    const result = await meshctl(["get", "--server", fake.url]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("✗ the admin API refused the local development token");
    expect(result.stderr).toContain("--token TOKEN (or set MESH_ADMIN_TOKEN)");
  });

  test("on 401 with a token, says which token was refused and where it comes from", async ({
    fake,
  }) => {
    const result = await meshctl(["get", "--server", fake.url], {
      env: { MESH_ADMIN_TOKEN: "stale" },
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("✗ the admin API refused the token from MESH_ADMIN_TOKEN");
    expect(result.stderr).toContain("`wrangler secret put ADMIN_TOKEN`");
  });

  test("sends --svid as X-Mesh-SVID instead of a bearer token, and the author", async ({
    fake,
  }) => {
    const result = await meshctl(["get", "--server", fake.url, "--svid", ADMIN_SVID]);
    expect(result.code, result.stderr).toBe(0);
    expect(fake.requests[0]!.headers["x-mesh-svid"]).toBe(ADMIN_SVID);
    expect(fake.requests[0]!.headers.authorization).toBeUndefined();
    expect(fake.requests[0]!.headers["x-mesh-author"]).toBe("tester");
  });

  it("says when --server answers, but not as the admin API (the router's port, say)", async () => {
    const router = createServer((_, res) => res.writeHead(404).end("no route"));
    await new Promise<void>((done) => router.listen(0, "127.0.0.1", done));
    try {
      const url = `http://127.0.0.1:${(router.address() as AddressInfo).port}`;
      const result = await meshctl(["get", "--server", url]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(
        `✗ ${url} answered GET /v1/config with 404, not as the admin API would: no route`,
      );
      expect(result.stderr).toContain("is --server the policy Worker");
    } finally {
      router.closeAllConnections();
      router.close();
    }
  });

  it("refuses a --server that is not an http(s) URL", async () => {
    const result = await meshctl(["get", "--server", "ftp://example.com"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      "✗ --server must be an http:// or https:// URL, got 'ftp://example.com'",
    );
  });
});

describe("the command line", () => {
  it("lists every command with --help, prints the version, and refuses an unknown command", async () => {
    const help = await meshctlProcess(["--help"]);
    expect(help.code).toBe(0);
    for (const command of COMMANDS) {
      expect(help.stdout).toMatch(new RegExp(`^  ${command}\\s+\\S`, "m"));
    }
    const version = await meshctlProcess(["--version"]);
    expect(version.stdout).toMatch(/^meshctl \d+\.\d+\.\d+\n$/);
    const unknown = await meshctlProcess(["aply"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("✗ unknown command 'aply': one of apply, diff, validate");
  });

  it.each(COMMANDS)("explains `%s` with --help: usage, options and examples", async (command) => {
    const result = await meshctl([command, "--help"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`Usage: meshctl ${command}`);
    expect(result.stdout).toContain("Global options:\n  --server URL");
    expect(result.stdout).toContain(`Examples:\n  meshctl ${command}`);
  });

  it("takes `help COMMAND` as `COMMAND --help`", async () => {
    const result = await meshctl(["help", "rollback"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("Usage: meshctl rollback VERSION [--if-match N]");
  });

  it("refuses an unknown flag with exit 2 and where to read the usage", async () => {
    const flag = await meshctl(["get", "--dryrun"]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain("✗ Unknown option '--dryrun'");
    expect(flag.stderr).toContain("run `meshctl get --help` for usage");
  });

  it("without a command, prints the help and exits 2", async () => {
    const result = await meshctl([]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("Usage: meshctl COMMAND [options]");
  });
});
