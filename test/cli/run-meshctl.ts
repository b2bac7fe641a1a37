// Runs meshctl two ways: `meshctlProcess` as a user would (`node cli/meshctl.mjs ARGS`, a child
// process with an environment free of the developer's MESH_ADMIN_* settings), and `meshctl`
// through the same main() in this process, which is what most tests use: a child process pays
// Node's start-up and the core's import every time, an in-process run does not. `test` gives
// each test a fake admin API of its own and `run`, meshctl pointed at it.
import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { loadAll } from "js-yaml";
import { test as base } from "vitest";
import { main } from "../../cli/main.mjs";
import { FAKE_TOKEN, startFakeAdmin, type FakeAdmin, type StoredResource } from "./fake-admin.ts";

export const ROOT = join(import.meta.dirname, "..", "..");
export const MESHCTL = join(ROOT, "cli", "meshctl.mjs");
export const FIXTURES = join(import.meta.dirname, "fixtures");

export interface MeshctlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A Node that strips types: this one, or the project's pinned one. */
function nodeBinary(): string {
  const [major, minor] = process.versions.node.split(".").map(Number) as [number, number];
  if (major > 22 || (major === 22 && minor >= 18)) return process.execPath;
  const pinned = join(ROOT, "node_modules", "node", "bin", "node");
  return existsSync(pinned) ? pinned : process.execPath;
}

/** `node cli/meshctl.mjs ARGS` from the repository root (or `cwd`), with `env` added. */
export function meshctlProcess(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<MeshctlResult> {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1", USER: "tester" };
  delete env.MESH_ADMIN_URL;
  delete env.MESH_ADMIN_TOKEN;
  delete env.INIT_CWD;
  return new Promise((done) => {
    execFile(
      nodeBinary(),
      [MESHCTL, ...args],
      { cwd: options.cwd ?? ROOT, env: { ...env, ...options.env }, timeout: 15_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
        done({ code, stdout, stderr });
      },
    );
  });
}

/** meshctl's main() in this process, with `env` as its whole environment (USER=tester). */
export async function meshctl(
  args: string[],
  options: { env?: Record<string, string> } = {},
): Promise<MeshctlResult> {
  let stdout = "";
  let stderr = "";
  const io = {
    print: (line: string) => void (stdout += `${line}\n`),
    warn: (line: string) => void (stderr += `${line}\n`),
  };
  const code = await main(args, { io, env: { USER: "tester", ...options.env } });
  return { code, stdout, stderr };
}

/** The resources of a fixture file or directory, to seed the fake admin API with. */
export function fixtureResources(name: string): StoredResource[] {
  const path = join(FIXTURES, name);
  const files = statSync(path).isDirectory()
    ? readdirSync(path)
        .filter((file) => /\.(ya?ml|json)$/.test(file))
        .sort()
        .map((file) => join(path, file))
    : [path];
  return files.flatMap((file) => {
    const text = readFileSync(file, "utf8");
    const values = file.endsWith(".json") ? [JSON.parse(text)].flat() : loadAll(text);
    return values.filter(Boolean) as StoredResource[];
  });
}

export interface CliFixtures {
  /** A fake admin API for this test alone. */
  fake: FakeAdmin;
  /** `meshctl ARGS --server <the fake> --token <its token>`, in process. */
  run: (...args: string[]) => Promise<MeshctlResult>;
}

export const test = base.extend<CliFixtures>({
  // eslint-disable-next-line no-empty-pattern
  fake: async ({}, use) => {
    const fake = await startFakeAdmin();
    await use(fake);
    await fake.close();
  },
  run: async ({ fake }, use) => {
    await use((...args) => meshctl([...args, "--server", fake.url, "--token", FAKE_TOKEN]));
  },
});
