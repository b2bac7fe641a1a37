// The control plane end to end: `npm start` brings the policy Worker up and applies the demo
// config through its admin API; `meshctl apply` of a new split reaches the router, which serves
// the new weights; `meshctl status` shows the version applied by the router.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runMeshctl, startMesh, type RunningMesh } from "./mesh-process.mjs";

const workdir = mkdtempSync(join(tmpdir(), "meshwork-meshctl-"));
let mesh: RunningMesh | undefined;

function running(): RunningMesh {
  if (!mesh) throw new Error("the mesh did not start (see beforeAll's error)");
  return mesh;
}

const meshctl = (args: string[]) =>
  runMeshctl(args, {
    cwd: workdir,
    env: { MESH_ADMIN_URL: `http://127.0.0.1:${running().policyPort}` },
  });

beforeAll(async () => {
  mesh = await startMesh({ preferredPort: 18887 });
});

afterAll(async () => {
  await mesh?.stop();
  rmSync(workdir, { recursive: true, force: true });
});

async function paymentsServices(calls: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < calls; i++) {
    const response = await running().call("orders", "/orders");
    expect(response.status, response.body).toBe(201);
    seen.add(response.json<{ payment: { service: string } }>().payment.service);
  }
  return seen;
}

describe("the control plane", () => {
  it("npm start applied the demo config through the policy Worker", async () => {
    expect(running().output()).toMatch(/applied examples\/mesh\.yaml through the policy Worker/);
    const got = await meshctl(["get", "service", "payments", "-o", "json"]);
    expect(got.code, got.output).toBe(0);
    expect(JSON.parse(got.output)).toMatchObject({
      kind: "Service",
      metadata: { name: "payments" },
    });
  });

  it("meshctl apply of a new split reaches the router, and meshctl status shows it applied", async () => {
    const edited = readFileSync("examples/mesh.yaml", "utf8").replace(
      /- name: payments-v1\n(\s+)weight: 90\n(\s+)- name: payments-v2\n(\s+)weight: 10/,
      "- name: payments-v1\n$1weight: 0\n$2- name: payments-v2\n$3weight: 100",
    );
    expect(edited).toContain("weight: 100");
    writeFileSync(join(workdir, "mesh.yaml"), edited);

    const dry = await meshctl(["apply", "-f", "mesh.yaml", "--dry-run"]);
    expect(dry.code, dry.output).toBe(0);
    expect(dry.output).toMatch(/HTTPRoute\/payments-canary/);

    const applied = await meshctl(["apply", "-f", "mesh.yaml"]);
    expect(applied.code, applied.output).toBe(0);
    const version = Number(/version (\d+)/.exec(applied.output)?.[1]);
    expect(version).toBeGreaterThan(1);

    // The store publishes within a second; the router checks KV every 5 s.
    let seen = new Set<string>();
    for (let i = 0; i < 30 && !(seen.size === 1 && seen.has("payments-v2")); i++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      seen = await paymentsServices(5);
    }
    expect([...seen]).toEqual(["payments-v2"]);

    let status = await meshctl(["status"]);
    for (let i = 0; i < 20 && !status.output.includes(`version ${version} applied by`); i++) {
      await running().call("orders", "/orders");
      await new Promise((resolve) => setTimeout(resolve, 500));
      status = await meshctl(["status"]);
    }
    expect(status.code, status.output).toBe(0);
    expect(status.output).toMatch(new RegExp(`version ${version} applied by [1-9]\\d* of [1-9]`));
  });
});
