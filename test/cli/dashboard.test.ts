// The Grafana dashboard (dashboards/meshwork.json) and the SQL in docs/grafana.md — and the
// SQL of docs/observability.md, README and the policy Worker's own queries — checked
// against the data point's schema (core/observability/data-point.ts): every query reads the
// dataset meshwork_calls and nothing but its columns, weighs counts and quantiles by
// _sample_interval, and keeps to functions Analytics Engine's SQL has. Here, beside meshctl's
// tests, because this is the Node-side project that reads repository files.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BLOB_COLUMNS, DOUBLE_COLUMNS } from "../../core/observability/data-point.ts";
import { ROOT } from "./run-meshctl.ts";
import {
  codesQuery,
  edgesQuery,
  seriesQuery,
  servicesQuery,
} from "../../core/observability/sql.ts";

const DATASET = "meshwork_calls";
const PLUGIN = "vertamedia-clickhouse-datasource";

/** The columns a data point has: what the router writes, and what Analytics Engine adds. */
const COLUMNS = new Set([
  "timestamp",
  "_sample_interval",
  "index1",
  ...BLOB_COLUMNS.map((_, i) => `blob${i + 1}`),
  ...DOUBLE_COLUMNS.map((_, i) => `double${i + 1}`),
]);

/** SQL words and the functions of Analytics Engine's SQL reference the queries may use. */
const SQL_WORDS = new Set(
  [
    "SELECT FROM WHERE GROUP BY ORDER HAVING LIMIT AS AND OR NOT IN ASC DESC INTERVAL",
    "SECOND MINUTE HOUR DAY NOW",
    "SUM intDiv toUInt32 toStartOfInterval format if quantileExactWeighted",
  ]
    .join(" ")
    .split(" ")
    .map((word) => word.toLowerCase()),
);

/** The Altinity plugin's macros and the dashboard's own variables. */
const MACROS = new Set(["$timeSeries", "$timeFilter", "$interval", "$destination", "$route"]);

/** Identifiers a query uses that are neither columns, SQL, macros nor aliases it defines. */
function unknownIdentifiers(sql: string): string[] {
  const code = sql.replace(/'(?:[^'\\]|\\.)*'/g, "''");
  const aliases = new Set([...code.matchAll(/\bAS\s+([A-Za-z_]\w*)/gi)].map((m) => m[1]!));
  const words = code.match(/\$?[A-Za-z_]\w*/g) ?? [];
  return words.filter(
    (word) =>
      !COLUMNS.has(word) &&
      !aliases.has(word) &&
      !MACROS.has(word) &&
      !SQL_WORDS.has(word.toLowerCase()) &&
      word !== DATASET,
  );
}

/** What is wrong with a query, as a list of sentences (empty: nothing). */
function problems(sql: string): string[] {
  const found: string[] = [];
  const unknown = unknownIdentifiers(sql);
  if (unknown.length > 0) found.push(`unknown identifiers: ${unknown.join(", ")}`);
  const tables = [...sql.matchAll(/\bFROM\s+([A-Za-z_]\w*)/gi)].map((m) => m[1]);
  if (tables.length === 0 || tables.some((t) => t !== DATASET)) {
    found.push(`reads ${tables.join(", ") || "no table"}, not ${DATASET}`);
  }
  if (/\bcount\s*\(/i.test(sql)) found.push("count() ignores sampling: SUM(_sample_interval)");
  for (const m of sql.matchAll(/quantile\w*\s*\(([^)]*)\)\s*\(([^)]*)\)/gi)) {
    if (!/,\s*_sample_interval$/.test(m[2]!.trim())) found.push(`unweighted quantile: ${m[0]}`);
  }
  if (/\bquantile(?!ExactWeighted)\w*\s*\(/.test(sql)) {
    found.push("quantiles are quantileExactWeighted(q)(column, _sample_interval)");
  }
  for (const m of sql.matchAll(/\bSUM\s*\(([^()]*(?:\([^()]*\)[^()]*)*)\)/gi)) {
    if (!/_sample_interval/.test(m[1]!)) found.push(`a SUM not weighted by sampling: ${m[0]}`);
  }
  return found;
}

interface Target {
  refId: string;
  query: string;
  format: string;
  datasource: { type: string; uid: string };
  dateTimeColDataType?: string;
}
interface Panel {
  title: string;
  type: string;
  datasource: { type: string; uid: string };
  targets: Target[];
}
interface Variable {
  name: string;
  type: string;
  query: string;
  datasource?: { type: string; uid: string };
}

const dashboard = JSON.parse(readFileSync(join(ROOT, "dashboards", "meshwork.json"), "utf8")) as {
  title: string;
  uid: string;
  panels: Panel[];
  templating: { list: Variable[] };
};
const doc = readFileSync(join(ROOT, "docs", "grafana.md"), "utf8");
const docQueries = [...doc.matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1]!);

describe("the Grafana dashboard", () => {
  const queries = [
    ...dashboard.panels.flatMap((panel) =>
      panel.targets.map((target) => [`${panel.title} ${target.refId}`, target.query] as const),
    ),
    ...dashboard.templating.list
      .filter((variable) => variable.type === "query")
      .map((variable) => [`variable ${variable.name}`, variable.query] as const),
  ];

  it("has the panels the mesh's golden metrics need", () => {
    expect(dashboard.panels.map((panel) => panel.title)).toEqual([
      "Requests per second, per edge",
      "Success rate, per edge",
      "Latency p50 / p95 / p99, per edge",
      "Errors by outcome",
      "Observed split: $route",
    ]);
    const latency = dashboard.panels[2]!.targets.map(
      (t) => /quantile\w*\((0\.\d+)\)/.exec(t.query)?.[1],
    );
    expect(latency).toEqual(["0.5", "0.95", "0.99"]);
  });

  it("queries through a templated Analytics Engine data source", () => {
    const variable = dashboard.templating.list.find((v) => v.type === "datasource");
    expect(variable).toMatchObject({ name: "datasource", query: PLUGIN });
    for (const panel of dashboard.panels) {
      expect(panel.datasource, panel.title).toEqual({ type: PLUGIN, uid: "${datasource}" });
      for (const target of panel.targets) {
        expect(target.datasource, panel.title).toEqual(panel.datasource);
        // The plugin's $timeFilter and $timeSeries need the time column named.
        expect(target.dateTimeColDataType, panel.title).toBe("timestamp");
        expect(target.query, panel.title).toMatch(/\$timeFilter/);
        expect(target.query, panel.title).toMatch(/SELECT\s+\$timeSeries AS t,/);
      }
    }
  });

  it.each(queries.map(([where, sql]) => ({ where, sql })))(
    "$where reads only meshwork_calls' columns, weighted by sampling",
    ({ sql }) => {
      expect(problems(sql)).toEqual([]);
    },
  );
});

describe("docs/grafana.md", () => {
  it("has the ready-to-run SQL for RPS, success rate and latency quantiles per edge", () => {
    const all = docQueries.join("\n");
    expect(docQueries.length).toBeGreaterThanOrEqual(5);
    expect(all).toMatch(/SUM\(_sample_interval\) \/ 60 AS rps/);
    expect(all).toMatch(/AS success_rate/);
    for (const q of ["0.5", "0.95", "0.99"]) {
      expect(all).toContain(`quantileExactWeighted(${q})(double1, _sample_interval)`);
    }
    expect(doc).toContain(`/analytics_engine/sql`);
  });

  it.each(docQueries.map((sql, i) => ({ i, sql })))(
    "query $i reads only meshwork_calls' columns, weighted by sampling",
    ({ sql }) => {
      expect(problems(sql)).toEqual([]);
      // Ready to run: no Grafana macro left in it.
      expect(sql).not.toMatch(/\$\w+/);
    },
  );
});

describe("the query check itself", () => {
  it.each([
    ["a column past the schema", "SELECT blob10 FROM meshwork_calls", /blob10/],
    ["another dataset", "SELECT SUM(_sample_interval) FROM other", /not meshwork_calls/],
    ["an unweighted count", "SELECT count() FROM meshwork_calls", /count\(\)/],
    ["an unweighted sum", "SELECT SUM(double1) FROM meshwork_calls", /not weighted/],
    [
      "an unweighted quantile",
      "SELECT quantileExactWeighted(0.5)(double1, double3) FROM meshwork_calls",
      /unweighted quantile/,
    ],
    [
      "a misspelt column",
      "SELECT SUM(_sample_interval) AS n FROM meshwork_calls WHERE blb1 = 'a'",
      /blb1/,
    ],
  ])("finds %s", (_, sql, problem) => {
    expect(problems(sql).join("\n")).toMatch(problem);
  });
});

describe("the other SQL the project ships", () => {
  const fenced = (file: string) =>
    [...readFileSync(join(ROOT, file), "utf8").matchAll(/```sql\n([\s\S]*?)```/g)].map(
      (m) => m[1]!,
    );
  const sources = [
    ...fenced("docs/observability.md").map((sql, i) => [`docs/observability.md #${i + 1}`, sql]),
    ...fenced("README.md").map((sql, i) => [`README.md #${i + 1}`, sql]),
    ["sql.ts edgesQuery", edgesQuery(DATASET, 60)],
    ["sql.ts codesQuery", codesQuery(DATASET, 60)],
    ["sql.ts servicesQuery", servicesQuery(DATASET, 60)],
    ["sql.ts seriesQuery", seriesQuery(DATASET, 60, 10)],
  ] as const;

  it("is there to check", () => {
    expect(sources.length).toBeGreaterThanOrEqual(9);
  });

  it.each(sources.map(([where, sql]) => ({ where, sql })))(
    "$where reads only meshwork_calls' columns, weighted by sampling",
    ({ sql }) => {
      // The policy Worker's queries ask for JSON; the docs' are run as they are.
      expect(problems(sql.replace(/\nFORMAT JSON$/, ""))).toEqual([]);
    },
  );
});
