// The control plane end to end, against the real policy Worker that `npm start` runs: it applies
// the demo config through the admin API; the README's edit loop, its command lines taken from
// the README and run through a shell as typed (`npx meshctl` included), changes the running
// mesh; `meshctl apply` of a new split reaches the router and `meshctl status` shows it applied;
// and `delete` (refused while something is attached, then done), `history`, `rollback` and
// `check` do what they say on the live mesh.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../../scripts/workers.mjs";
import { runMeshctl, runShell, startMesh, type RunningMesh } from "./mesh-process.mjs";

const workdir = mkdtempSync(join(tmpdir(), "meshwork-meshctl-"));
// Where the README's lines run: inside the checkout (so `npx meshctl` finds the package's own bin
// through its `"meshwork": "file:"` self-dependency, as it does for a user at the repository's
// root), laid out as the lines expect (examples/mesh.yaml), and not the root itself, so a user's
// own my-mesh.yaml is never touched.
let checkoutDir = "";
let mesh: RunningMesh | undefined;

function running(): RunningMesh {
  if (!mesh) throw new Error("the mesh did not start (see beforeAll's error)");
  return mesh;
}

const adminUrl = () => ({ MESH_ADMIN_URL: `http://127.0.0.1:${running().policyPort}` });
const meshctl = (args: string[]) => runMeshctl(args, { cwd: workdir, env: adminUrl() });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  mkdirSync(join(ROOT, ".mesh-local"), { recursive: true });
  checkoutDir = mkdtempSync(join(ROOT, ".mesh-local", "readme-loop-"));
  mkdirSync(join(checkoutDir, "examples"));
  cpSync(join(ROOT, "examples", "mesh.yaml"), join(checkoutDir, "examples", "mesh.yaml"));
  mesh = await startMesh({ preferredPort: 18887 });
});

afterAll(async () => {
  await mesh?.stop();
  rmSync(workdir, { recursive: true, force: true });
  if (checkoutDir !== "") rmSync(checkoutDir, { recursive: true, force: true });
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

/** Calls payments until it answers from exactly `services` (the router checks KV every 5 s). */
async function untilPaymentsFrom(services: string[], calls = 10): Promise<Set<string>> {
  let seen = new Set<string>();
  const wanted = (set: Set<string>) =>
    set.size === services.length && services.every((s) => set.has(s));
  for (let i = 0; i < 30 && !wanted(seen); i++) {
    await sleep(500);
    seen = await paymentsServices(calls);
  }
  return seen;
}

/** Runs `command` until its output matches `pattern` (calling the mesh, so routers report). */
async function until(
  command: () => Promise<{ code: number | null; output: string }>,
  pattern: RegExp,
) {
  let result = await command();
  for (let i = 0; i < 30 && !pattern.test(result.output); i++) {
    await running().call("orders", "/orders");
    await sleep(500);
    result = await command();
  }
  return result;
}

/** The command lines of the README's edit loop, as documented. */
function readmeEditLoop(): string[] {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const block = /\*\*The edit loop\.\*\*[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme)?.[1];
  if (!block) throw new Error("README.md has no edit-loop block after **The edit loop.**");
  return block.split("\n").filter((line) => line.trim() !== "");
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

  it("the README's edit loop, typed as documented, changes the running mesh", async () => {
    const lines = readmeEditLoop();
    expect(lines.map((line) => line.replace(/\s+#.*$/, ""))).toEqual([
      "cp examples/mesh.yaml my-mesh.yaml",
      "npx meshctl diff -f my-mesh.yaml",
      "npx meshctl apply -f my-mesh.yaml",
      "npx meshctl status",
    ]);
    const [copy, diff, apply, status] = lines as [string, string, string, string];
    const sh = (line: string) => runShell(line, { cwd: checkoutDir, env: adminUrl() });

    const copied = await sh(copy);
    expect(copied.code, copied.output).toBe(0);
    // "then edit it: say, payments-v2 to weight 50"
    const file = join(checkoutDir, "my-mesh.yaml");
    const edited = readFileSync(file, "utf8").replace(
      /(- name: payments-v2\n\s+weight: )10\n/,
      "$150\n",
    );
    expect(edited).toMatch(/- name: payments-v2\n\s+weight: 50\n/);
    writeFileSync(file, edited);

    const diffed = await sh(diff);
    expect(diffed.code, diffed.output).toBe(0);
    expect(diffed.output).toMatch(/HTTPRoute\/payments-canary/);
    expect(diffed.output).toMatch(/^-\s+weight: 10$/m);
    expect(diffed.output).toMatch(/^\+\s+weight: 50$/m);

    const applied = await sh(apply);
    expect(applied.code, applied.output).toBe(0);
    const version = Number(/now version (\d+)/.exec(applied.output)?.[1]);
    expect(version).toBeGreaterThan(1);

    // The README's comment says what the user reads: "version N+1 applied by 1 of 1 router".
    const promised = /# "(.*)"$/.exec(status)![1]!.replace("N+1", String(version));
    const shown = await until(() => sh(status), new RegExp(`^${promised}$`, "m"));
    expect(shown.code, shown.output).toBe(0);
    expect(shown.output.trimEnd().split("\n")).toContain(promised);
    expect([...(await untilPaymentsFrom(["payments-v1", "payments-v2"], 30))].sort()).toEqual([
      "payments-v1",
      "payments-v2",
    ]);
  });

  it("meshctl apply of a new split reaches the router, and meshctl status shows it applied", async () => {
    const edited = readFileSync("examples/mesh.yaml", "utf8").replace(
      /- name: payments-v1\n(\s+)weight: 90\n(\s+)- name: payments-v2\n(\s+)weight: 10/,
      "- name: payments-v1\n$1weight: 0\n$2- name: payments-v2\n$3weight: 100",
    );
    expect(edited).toContain("weight: 100");
    writeFileSync(join(workdir, "mesh.yaml"), edited);

    const before = await meshctl(["history", "-o", "json"]);
    const dry = await meshctl(["apply", "-f", "mesh.yaml", "--dry-run"]);
    expect(dry.code, dry.output).toBe(0);
    expect(dry.output).toMatch(/~ HTTPRoute\/payments-canary/);
    expect(dry.output).toMatch(/dry run: nothing changed/);
    // The dry run made no version.
    expect((await meshctl(["history", "-o", "json"])).output).toBe(before.output);

    const applied = await meshctl(["apply", "-f", "mesh.yaml"]);
    expect(applied.code, applied.output).toBe(0);
    const version = Number(/version (\d+)/.exec(applied.output)?.[1]);
    expect(version).toBeGreaterThan(1);
    expect([...(await untilPaymentsFrom(["payments-v2"]))]).toEqual(["payments-v2"]);

    const status = await until(
      () => meshctl(["status"]),
      new RegExp(`version ${version} applied by 1 of 1 router\\b`),
    );
    expect(status.code, status.output).toBe(0);
    expect(status.output).toMatch(/^ISOLATE\s+COLO\s+VERSION\s+AGE\s+REPORTED$/m);
  });

  it("delete, history, rollback and check work on the live mesh", async () => {
    // A Service that a route and a policy are attached to is not deleted; the refusal names them.
    const current = Number(/^version:\s+(\d+)$/m.exec((await meshctl(["status"])).output)?.[1]);
    const refused = await meshctl(["delete", "service", "payments"]);
    expect(refused.code, refused.output).toBe(1);
    expect(refused.output).toContain("HTTPRoute/payments-canary.spec.parentRefs[0].name");
    expect(refused.output).toContain(
      "AuthorizationPolicy/payments-from-orders.spec.targetRefs[0].name",
    );
    expect(refused.output).toMatch(/nothing changed|deleting Service\/payments would leave/);

    // Deleting the canary route: payments' calls go to its own endpoint, payments-v1.
    const deleted = await meshctl(["delete", "route", "payments-canary"]);
    expect(deleted.code, deleted.output).toBe(0);
    expect(deleted.output).toContain(
      `✓ deleted HTTPRoute/payments-canary: now version ${current + 1}`,
    );
    expect([...(await untilPaymentsFrom(["payments-v1"]))]).toEqual(["payments-v1"]);

    const history = await meshctl(["history", "--limit", "3"]);
    expect(history.code, history.output).toBe(0);
    expect(history.output).toMatch(/^VERSION\s+AGE\s+AUTHOR\s+CHANGES\s+SUMMARY$/m);
    expect(history.output).toMatch(
      new RegExp(
        `^${current + 1}\\s+\\d+s\\s+token(?: \\(.*\\))?\\s+.*delete HTTPRoute/payments-canary`,
        "m",
      ),
    );
    expect(history.output).toMatch(new RegExp(`^${current}\\s`, "m"));

    // Rolling back to the version before the delete brings the 0/100 split back, as a new version.
    const rolledBack = await meshctl(["rollback", String(current)]);
    expect(rolledBack.code, rolledBack.output).toBe(0);
    expect(rolledBack.output).toContain(`now version ${current + 2}`);
    expect([...(await untilPaymentsFrom(["payments-v2"]))]).toEqual(["payments-v2"]);

    // Once the router runs it, every check passes.
    const checked = await until(
      () => meshctl(["check"]),
      new RegExp(`all 1 router reports version ${current + 2}, the published one\\n`),
    );
    expect(checked.output).toMatch(/^✓ admin API reachable at /m);
    expect(checked.output).toContain(
      `✓ all 1 router reports version ${current + 2}, the published one\n`,
    );
    expect(checked.output).not.toContain("✗");
    expect(checked.code, checked.output).toBe(0);
  });
});
