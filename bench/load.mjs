// Load generator for bench/run.mjs, run as its own process so the client load never shares an
// event loop with the code being measured:
//
//   node bench/load.mjs <url> <connections> <seconds> [latencies.bin]
//                       [--headers '{"name":"value"}'] [--path /raw/path?query]
//
// Drives autocannon at <url> and prints one JSON line: requests, requests/s, latency percentiles
// in milliseconds (exact, from every response time autocannon reports: its own histogram keeps
// whole milliseconds, too coarse for sub-millisecond loopback hops), non-2xx and errors. With a
// fourth argument it also writes every latency there (float64, ms), so runs can be merged.
//
// --headers: a JSON object of extra request headers, sent with every request.
// --path: the request target exactly as it goes on the request line. Without it the path comes
// from <url>, which URL parsing has already normalised (`/a/./b` is sent as `/a/b`); with it, a
// path such as `/bench//%6Frders/./` reaches the server byte for byte.
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import autocannon from "autocannon";

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    headers: { type: "string" },
    path: { type: "string" },
  },
});
const [url, connectionsArg = "16", secondsArg = "10", latencyFile] = positionals;
if (!url) {
  console.error(
    "usage: node bench/load.mjs <url> <connections> <seconds> [latencies.bin] [--headers JSON] [--path PATH]",
  );
  process.exit(2);
}
const connections = Number(connectionsArg);
const duration = Number(secondsArg);
const headers = flags.headers ? JSON.parse(flags.headers) : undefined;
if (headers !== undefined && (typeof headers !== "object" || headers === null)) {
  console.error("--headers must be a JSON object of header names to values");
  process.exit(2);
}

const latencies = [];
const statusCodes = {};

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

const options = { url, connections, duration };
if (headers) options.headers = headers;
// One request definition, built into bytes once, as autocannon does for a plain URL.
if (flags.path) options.requests = [{ path: flags.path }];

const instance = autocannon(options, (error, result) => {
  if (error) {
    console.error(error);
    process.exit(1);
  }
  const cpu = process.cpuUsage();
  const sorted = Float64Array.from(latencies).sort();
  if (latencyFile) writeFileSync(latencyFile, sorted);
  const sum = latencies.reduce((a, b) => a + b, 0);
  const seconds = result.duration;
  const out = {
    url,
    path: flags.path ?? null,
    headers: headers ?? {},
    connections,
    seconds,
    requests: latencies.length,
    rps: latencies.length / seconds,
    latencyMs: {
      mean: latencies.length ? sum / latencies.length : null,
      p50: percentile(sorted, 50),
      p90: percentile(sorted, 90),
      p99: percentile(sorted, 99),
      max: percentile(sorted, 100),
    },
    statusCodes,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    // This process's own CPU, to show whether the load generator itself was the bottleneck.
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
});

instance.on("response", (_client, statusCode, _bytes, responseTime) => {
  latencies.push(responseTime);
  statusCodes[statusCode] = (statusCodes[statusCode] ?? 0) + 1;
});
