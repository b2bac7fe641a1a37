// Builds the example Workers (and test fixtures) that run beside the router as auxiliary
// Workers in the workerd test pool; auxiliary Workers take bundled JavaScript.
import { build } from "esbuild";

export const AUXILIARY_SOURCES = {
  echo: "examples/echo/index.ts",
  payments: "examples/payments/index.ts",
  orders: "examples/orders/index.ts",
  recorder: "test/fixtures/recorder.ts",
} as const;

export default async function buildAuxiliaryWorkers(): Promise<void> {
  await Promise.all(
    Object.entries(AUXILIARY_SOURCES).map(([name, entry]) =>
      build({
        entryPoints: [entry],
        outfile: `test/.build/${name}.js`,
        bundle: true,
        format: "esm",
        target: "es2024",
        logLevel: "warning",
      }),
    ),
  );
}
