// `meshctl top`: the busiest routes, live, as `linkerd viz top` shows a workload's traffic — every
// --interval it reads the policy Worker's `GET /v1/metrics` and redraws a table of the top
// --limit edges and routes by requests per second. On a terminal each frame replaces the last;
// piped, frames follow one another with no control codes, so the output stays readable in a file.
import { noPositionals, outputFormat, wholeNumber } from "../args.mjs";
import { UsageError } from "../errors.mjs";
import {
  filterEdges,
  latencyText,
  noTraffic,
  readMetrics,
  rpsText,
  serviceFlag,
  successText,
  WINDOW_OPTIONS,
  windowSeconds,
  windowText,
} from "../metrics-report.mjs";
import { parseDuration } from "../../core/duration.ts";
import { table } from "../output.mjs";

/** Moves the cursor home and clears the screen (ANSI), before a frame on a terminal. */
const CLEAR = "\x1b[H\x1b[2J";

/** `--interval` in ms: 1s to 1m. */
function intervalMs(values) {
  if (values.interval === undefined) return 2000;
  let ms;
  try {
    ms = parseDuration(values.interval);
  } catch {
    ms = NaN;
  }
  if (!(ms >= 1000 && ms <= 60_000)) {
    throw new UsageError(
      `--interval must be a duration from 1s to 1m, such as 2s or 5s, got '${values.interval}'`,
      "top",
    );
  }
  return ms;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms, signal) {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** One frame's lines: a heading, then the table (or why there is none). */
export function frameLines(view, { seconds, interval, limit, from, to, live }) {
  const window = view.windowSeconds ?? seconds;
  const when = view.generatedAt ? ` · ${view.generatedAt.slice(11, 19)} UTC` : "";
  const lines = [
    `busiest routes over the last ${windowText(window)}` +
      (live ? `, every ${interval / 1000}s${when} (Ctrl-C quits)` : when),
    "",
    ...view.problems.map((problem) => `⚠ ${problem}`),
  ];
  const edges = filterEdges(view.edges, { from, to })
    .filter((edge) => edge.requests > 0)
    .sort((a, b) => b.rps - a.rps || b.requests - a.requests);
  if (edges.length === 0) return [...lines, noTraffic(window, { from, to })];
  const shown = edges.slice(0, limit);
  lines.push(
    table(
      ["SOURCE", "DESTINATION", "ROUTE", "BACKEND", "RPS", "SUCCESS", "LATENCY_P99"],
      shown.map((edge) => [
        edge.caller,
        edge.destination,
        edge.route,
        edge.backend,
        rpsText(edge.rps),
        successText(edge.successRate),
        latencyText(edge.p99),
      ]),
    ),
  );
  if (edges.length > shown.length) {
    lines.push(`(${edges.length - shown.length} more; --limit shows more)`);
  }
  return lines;
}

export const top = {
  name: "top",
  summary: "show the busiest routes, live, refreshed every few seconds",
  usage:
    "meshctl top [--limit N] [--interval 2s] [--window 30s] [--from SERVICE] [--to SERVICE] [--once]",
  description: `
Every --interval (default 2s) reads the mesh's metrics and redraws the --limit (default 10)
busiest edges and routes of the last --window (default 30s), by requests per second: SOURCE,
DESTINATION, ROUTE, BACKEND, RPS, SUCCESS and LATENCY_P99. Ctrl-C quits. On a terminal each
frame replaces the last; when the output is not a terminal, frames follow one another. --once
prints one frame and exits, for scripts.`,
  options: {
    limit: {
      type: "string",
      flags: "--limit N",
      help: "show the N busiest rows (default 10)",
    },
    interval: {
      type: "string",
      flags: "--interval DURATION",
      help: "how often to refresh, 1s to 1m (default 2s)",
    },
    ...WINDOW_OPTIONS,
    once: { type: "boolean", flags: "--once", help: "print one frame and exit" },
  },
  examples: ["meshctl top", "meshctl top --to payments --limit 5", "meshctl top --once"],
  async run({ values, positionals, io, client }) {
    noPositionals(positionals, "top");
    outputFormat(values, ["table"], "top");
    const limit = wholeNumber(values.limit, "--limit", "top", 1) ?? 10;
    const interval = intervalMs(values);
    const seconds = windowSeconds(values, "top", 30);
    const from = serviceFlag(values, "from", "top");
    const to = serviceFlag(values, "to", "top");
    const options = { seconds, interval, limit, from, to, live: !values.once };
    const frame = async () =>
      frameLines(readMetrics(await client().metrics({ window: seconds })), options);

    if (values.once) {
      for (const line of await frame()) io.print(line);
      return 0;
    }

    // Ctrl-C ends the loop and exits 0. Tests pass their own signal; otherwise SIGINT is
    // caught here, and only while top runs.
    let controller;
    let signal = io.interrupt;
    const onSigint = () => controller.abort();
    if (!signal) {
      controller = new AbortController();
      signal = controller.signal;
      process.once("SIGINT", onSigint);
    }
    try {
      let first = true;
      while (!signal.aborted) {
        const lines = await frame();
        if (signal.aborted) break;
        if (io.isTTY) lines[0] = `${CLEAR}${lines[0]}`;
        else if (!first) io.print("");
        for (const line of lines) io.print(line);
        first = false;
        await pause(interval, signal);
      }
    } finally {
      if (controller) process.removeListener("SIGINT", onSigint);
    }
    return 0;
  },
};
