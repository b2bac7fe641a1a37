// The local edit loop, end to end: `npm start` running, a user edits a config and publishes it
// with the README's command from their own directory, the running mesh takes the new split; a
// restart keeps the user's version instead of republishing the demo over it.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEV_ADMIN_TOKEN } from "../../scripts/workers.mjs";
import { runPublish, startMesh, type RunningMesh } from "./mesh-process.mjs";

const workdir = mkdtempSync(join(tmpdir(), "meshwork-edit-"));
let mesh: RunningMesh | undefined;

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/** The version the router runs, read after it checks KV (`?refresh`: once a second, 429 sooner). */
async function version(running: RunningMesh): Promise<number> {
  for (;;) {
    const response = await running.call("meshwork-router", "/.mesh/status?refresh=1", {
      authorization: `Bearer ${DEV_ADMIN_TOKEN}`,
    });
    if (response.status !== 429) return response.json<{ version: number }>().version;
    await sleep(Number(response.headers["retry-after"] ?? "1") * 1000);
  }
}

async function paymentsSeen(running: RunningMesh, calls: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < calls; i++) {
    const response = await running.call("orders", "/orders");
    expect(response.status, response.body).toBe(201);
    seen.add(response.json<{ payment: { service: string } }>().payment.service);
  }
  return seen;
}

beforeAll(async () => {
  mesh = await startMesh({ preferredPort: 18797, stateDir: workdir });
});

afterAll(async () => {
  await mesh?.stop();
  rmSync(workdir, { recursive: true, force: true });
});

describe("the local edit loop", () => {
  it("publishing an edited config from the user's directory changes the running mesh", async () => {
    const running = mesh!;
    expect(await version(running)).toBe(1);
    // The user copies the demo config, moves the whole payments canary to v2, and publishes it
    // with a path relative to where they are.
    const demo = readFileSync(
      join(import.meta.dirname, "..", "..", "examples", "mesh.yaml"),
      "utf8",
    );
    const edited = demo
      .replace(/- name: payments-v1\n(\s+)weight: 90/, "- name: payments-v1\n$1weight: 0")
      .replace(/- name: payments-v2\n(\s+)weight: 10/, "- name: payments-v2\n$1weight: 100");
    expect(edited).not.toBe(demo);
    writeFileSync(join(workdir, "my-mesh.yaml"), edited);

    const published = await runPublish(
      ["--config", "my-mesh.yaml", "--persist-to", running.persistTo],
      { cwd: workdir },
    );
    expect(published.code, published.output).toBe(0);
    expect(published.output).toMatch(/published my-mesh\.yaml|published .*my-mesh\.yaml/);
    expect(published.output).toMatch(/version 2/);

    // The router checks KV every 5 s in the background.
    const deadline = Date.now() + 30_000;
    while ((await version(running)) < 2 && Date.now() < deadline) await sleep(500);
    expect(await version(running)).toBe(2);
    expect(await paymentsSeen(running, 20)).toEqual(new Set(["payments-v2"]));
  });

  it("refuses a version that would move backwards", async () => {
    const published = await runPublish([
      "--config",
      join(workdir, "my-mesh.yaml"),
      "--persist-to",
      mesh!.persistTo,
      "--version",
      "1",
    ]);
    expect(published.code).toBe(1);
    expect(published.output).toMatch(/KV already holds version 2; versions only increase/);
  });

  it("a restart runs the user's version 2, not the demo config as version 1", async () => {
    await mesh!.stop();
    mesh = await startMesh({ preferredPort: 18797, stateDir: workdir });
    expect(mesh.output()).toMatch(/running the config already in .*: version 2/);
    expect(await version(mesh)).toBe(2);
    expect(await paymentsSeen(mesh, 10)).toEqual(new Set(["payments-v2"]));
  });
});
