// Test-pool setup, run once in Node before the workerd tests:
//  - builds the example Workers (and fixtures) that run beside the router as auxiliary Workers
//    (auxiliary Workers take bundled JavaScript);
//  - starts a plain HTTP server on loopback standing in for a workload outside Workers, so
//    Service endpoints given as URLs (hybrid workloads) are tested against a real socket.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { readFile } from "node:fs/promises";
import { build, type Plugin } from "esbuild";
import type { TestProject } from "vitest/node";
import { WORKERS } from "../scripts/workers.mjs";

/** What to bundle: each Worker's test build (scripts/workers.mjs), and the test fixtures. */
export const AUXILIARY_SOURCES: Record<string, string> = {
  ...Object.fromEntries(WORKERS.flatMap((w) => (w.build ? [[w.build, w.source]] : []))),
  recorder: "test/fixtures/recorder.ts",
};

/**
 * Files a Worker imports as text, as its wrangler config's `[[rules]]` (type "Text") make
 * wrangler and the vitest plugin load them: the policy Worker's dashboard scripts and stylesheet.
 */
const TEXT_MODULES = /[\\/](?:echarts\.min\.js|dashboard[\\/](?:client\.js|style\.css))$/;

const textModules: Plugin = {
  name: "text-modules",
  setup(build) {
    build.onLoad({ filter: TEXT_MODULES }, async ({ path }) => ({
      contents: await readFile(path, "utf8"),
      loader: "text",
    }));
  },
};

function buildAuxiliaryWorkers(): Promise<unknown> {
  return Promise.all(
    Object.entries(AUXILIARY_SOURCES).map(([name, entry]) =>
      build({
        entryPoints: [entry],
        outfile: `test/.build/${name}.js`,
        bundle: true,
        format: "esm",
        target: "es2024",
        external: ["cloudflare:*"],
        plugins: [textModules],
        logLevel: "warning",
      }),
    ),
  );
}

/** Answers JSON describing the request, like examples/echo, naming itself `external`. */
function startExternalWorkload(): Promise<Server> {
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const url = new URL(request.url ?? "/", "http://external");
      response.setHeader("content-type", "application/json");
      response.end(
        JSON.stringify({
          service: "external",
          method: request.method,
          path: url.pathname,
          query: Object.fromEntries(url.searchParams),
          headers: request.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const [server] = await Promise.all([startExternalWorkload(), buildAuxiliaryWorkers()]);
  project.provide("externalPort", (server.address() as AddressInfo).port);
  return () => new Promise((resolve) => server.close(() => resolve()));
}
