/**
 * Reads a Prometheus text exposition (format 0.0.4) back, strictly, for tests of what the mesh
 * exposes: `parsePrometheus(text)` returns its families by name, or throws naming the first
 * rule the text breaks. No Node APIs, so it runs in workerd tests as well as in Node.
 *
 * Sample lines — names, labels and the unescaping of their values — are read by
 * parse-prometheus-text-format, a parser written from the format's specification, not by code
 * that shares the renderer's assumptions. That parser folds a histogram's series into one and
 * drops their labels (its issue #13), so histograms are handed to it as their three plain sample
 * families (`_bucket`, `_sum`, `_count`) and put back together here. On top of parsing, this
 * checks what a scraper relies on and the parser lets pass: HELP and TYPE before a family's
 * samples, each family's samples together, valid metric and label names, no series twice,
 * counters finite and ≥ 0, and per histogram series bounds in increasing order ending at `+Inf`,
 * cumulative counts that never fall, `+Inf` equal to `_count`, and a `_sum`.
 */
import parsePrometheusTextFormat from "parse-prometheus-text-format";

export type Labels = Record<string, string>;

export interface Sample {
  readonly labels: Labels;
  readonly value: number;
}

export interface HistogramSeries {
  /** Its labels, `le` left out. */
  readonly labels: Labels;
  /** `[le, cumulative count]` in the order of the text; the last `le` is Infinity. */
  readonly buckets: readonly (readonly [number, number])[];
  readonly sum: number;
  readonly count: number;
}

export type Family =
  | {
      readonly name: string;
      readonly help: string;
      readonly type: "counter" | "gauge" | "summary" | "untyped";
      readonly samples: readonly Sample[];
    }
  | {
      readonly name: string;
      readonly help: string;
      readonly type: "histogram";
      readonly series: readonly HistogramSeries[];
    };

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const FLOAT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);
const HISTOGRAM_SUFFIXES = ["_bucket", "_sum", "_count"] as const;

/** A sample value as the format spells it (Go's float syntax, `+Inf`, `-Inf`, `NaN`). */
export function parseValue(text: string, where: string): number {
  if (text === "+Inf" || text === "Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (text === "NaN") return NaN;
  if (!FLOAT.test(text)) throw new Error(`${where}: '${text}' is not a sample value`);
  return Number(text);
}

/** A label set as one comparable key (names sorted). */
export const labelKey = (labels: Labels) =>
  JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/**
 * The families of an exposition, by name, in the order they appear. Throws an Error naming the
 * family (and series) at fault for anything a strict scraper would refuse or misread.
 */
export function parsePrometheus(text: string): Map<string, Family> {
  if (text !== "" && !text.endsWith("\n")) throw new Error("the exposition must end with \\n");
  // A carriage return is allowed inside a label value, not as part of a line end.
  if (/\r(\n|$)/.test(text)) throw new Error("the exposition must use \\n line ends, not \\r\\n");

  // Metadata, read here (the parser keeps only the first of each): which families are declared,
  // and that HELP and TYPE come once each, before any sample of theirs.
  const declared = new Map<string, { help?: string; type?: string; sampled: boolean }>();
  const histograms = new Set<string>();
  let sampleLines = 0;
  const lines = text.split("\n");
  lines.forEach((line, index) => {
    const where = `line ${index + 1}`;
    const meta = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
    if (meta) {
      const [, kind, name, rest = ""] = meta as unknown as [
        string,
        "HELP" | "TYPE",
        string,
        string,
      ];
      if (!METRIC_NAME.test(name)) throw new Error(`${where}: '${name}' is not a metric name`);
      const entry = declared.get(name) ?? { sampled: false };
      declared.set(name, entry);
      if (entry.sampled) throw new Error(`${where}: ${kind} for ${name} after its samples`);
      if (kind === "HELP") {
        if (entry.help !== undefined) throw new Error(`${where}: a second HELP for ${name}`);
        entry.help = rest;
      } else {
        if (entry.type !== undefined) throw new Error(`${where}: a second TYPE for ${name}`);
        if (!TYPES.has(rest)) throw new Error(`${where}: '${rest}' is not a metric type`);
        entry.type = rest;
        if (rest === "histogram") histograms.add(name);
      }
      return;
    }
    if (line === "" || line.startsWith("#")) return;
    sampleLines += 1;
    const name = /^[^{ \t]*/.exec(line)![0];
    const family = familyOf(name, histograms);
    const entry = declared.get(family);
    if (!entry?.type) throw new Error(`${where}: ${name} has no TYPE before its samples`);
    if (entry.help === undefined) throw new Error(`${where}: ${name} has no HELP`);
    entry.sampled = true;
  });

  // Histograms as plain families, so the parser keeps every series' labels.
  const plain = lines
    .map((line) => {
      const match = /^# TYPE (\S+) histogram$/.exec(line);
      return match ? `# TYPE ${match[1]} untyped` : line;
    })
    .join("\n");
  const parsed = parsePrometheusTextFormat(plain);

  // Runs of `_bucket`, `_sum` and `_count` families back under their histogram.
  const runs: { name: string; parts: typeof parsed }[] = [];
  for (const family of parsed) {
    const owner = familyOf(family.name, histograms);
    const last = runs.at(-1);
    if (owner !== family.name && last?.name === owner) last.parts.push(family);
    else runs.push({ name: owner, parts: [family] });
  }

  const families = new Map<string, Family>();
  let samples = 0;
  for (const { name, parts } of runs) {
    if (families.has(name)) throw new Error(`${name}: its samples are not all together`);
    const meta = declared.get(name)!;
    const type = meta.type as Family["type"];
    const help = unescapeHelp(meta.help ?? "");
    const read = parts.flatMap((part) =>
      part.metrics.map((raw) => {
        samples += 1;
        const labels = raw.labels ?? {};
        for (const label of Object.keys(labels)) {
          if (!LABEL_NAME.test(label) || label.startsWith("__")) {
            throw new Error(`${part.name}: '${label}' is not a label name`);
          }
        }
        return { name: part.name, labels, value: parseValue(raw.value ?? "", part.name) };
      }),
    );
    if (type === "histogram") {
      families.set(name, { name, help, type, series: histogramSeries(name, read) });
      continue;
    }
    const seen = new Set<string>();
    for (const sample of read) {
      const key = labelKey(sample.labels);
      if (seen.has(key)) throw new Error(`${name}${key}: the same series twice`);
      seen.add(key);
      if (type === "counter" && !(Number.isFinite(sample.value) && sample.value >= 0)) {
        throw new Error(`${name}${key}: a counter must be finite and ≥ 0, got ${sample.value}`);
      }
    }
    families.set(name, {
      name,
      help,
      type,
      samples: read.map(({ labels, value }) => ({ labels, value })),
    });
  }
  // The parser merges a repeated series into the one before it: a sample line went missing.
  if (samples !== sampleLines) {
    throw new Error(`${sampleLines - samples} sample line(s) repeat the series before them`);
  }
  return families;
}

/** The family a sample name belongs to: a histogram's, for its suffixed names. */
function familyOf(name: string, histograms: ReadonlySet<string>): string {
  for (const suffix of HISTOGRAM_SUFFIXES) {
    if (name.endsWith(suffix) && histograms.has(name.slice(0, -suffix.length))) {
      return name.slice(0, -suffix.length);
    }
  }
  return name;
}

function unescapeHelp(text: string): string {
  return text.replace(/\\(\\|n)/g, (_, c: string) => (c === "n" ? "\n" : "\\"));
}

/** A histogram's samples as series, checked as a scraper's histogram functions assume. */
function histogramSeries(
  name: string,
  samples: readonly { name: string; labels: Labels; value: number }[],
): HistogramSeries[] {
  const series = new Map<
    string,
    { labels: Labels; buckets: [number, number][]; sum?: number; count?: number; done: boolean }
  >();
  let current: string | undefined;
  for (const sample of samples) {
    const { le, ...labels } = sample.labels;
    const key = labelKey(labels);
    const where = `${name}${key}`;
    if (key !== current) {
      if (current !== undefined) series.get(current)!.done = true;
      if (series.get(key)?.done) throw new Error(`${where}: its samples are not all together`);
      current = key;
    }
    let entry = series.get(key);
    if (!entry) {
      entry = { labels, buckets: [], done: false };
      series.set(key, entry);
    }
    if (sample.name === `${name}_bucket`) {
      if (le === undefined) throw new Error(`${where}: a bucket without le`);
      if (entry.sum !== undefined || entry.count !== undefined) {
        throw new Error(`${where}: a bucket after _sum or _count`);
      }
      const bound = parseValue(le, `${where} le`);
      const previous = entry.buckets.at(-1);
      if (previous && !(bound > previous[0])) {
        throw new Error(`${where}: le="${le}" does not increase on ${previous[0]}`);
      }
      if (previous && sample.value < previous[1]) {
        throw new Error(`${where}: bucket le="${le}" counts fewer than the one before`);
      }
      entry.buckets.push([bound, sample.value]);
    } else if (le !== undefined) {
      throw new Error(`${where}: ${sample.name} has an le label`);
    } else if (sample.name === `${name}_sum`) {
      if (entry.sum !== undefined) throw new Error(`${where}: a second _sum`);
      entry.sum = sample.value;
    } else if (sample.name === `${name}_count`) {
      if (entry.count !== undefined) throw new Error(`${where}: a second _count`);
      entry.count = sample.value;
    } else {
      throw new Error(`${where}: ${sample.name} in a histogram`);
    }
  }
  return [...series.entries()].map(([key, { labels, buckets, sum, count }]) => {
    const where = `${name}${key}`;
    const last = buckets.at(-1);
    if (!last || last[0] !== Infinity) throw new Error(`${where}: no le="+Inf" bucket`);
    if (count === undefined) throw new Error(`${where}: no _count`);
    if (sum === undefined) throw new Error(`${where}: no _sum`);
    if (last[1] !== count) {
      throw new Error(`${where}: le="+Inf" counts ${last[1]}, _count says ${count}`);
    }
    return { labels, buckets, sum, count };
  });
}

/** The samples of a counter or gauge family, or an error saying what it is instead. */
export function samplesOf(families: ReadonlyMap<string, Family>, name: string): readonly Sample[] {
  const family = families.get(name);
  if (!family) throw new Error(`no family ${name}`);
  if (family.type === "histogram") throw new Error(`${name} is a histogram`);
  return family.samples;
}

/** The series of a histogram family, or an error saying what it is instead. */
export function seriesOf(
  families: ReadonlyMap<string, Family>,
  name: string,
): readonly HistogramSeries[] {
  const family = families.get(name);
  if (!family) throw new Error(`no family ${name}`);
  if (family.type !== "histogram") throw new Error(`${name} is a ${family.type}, not a histogram`);
  return family.series;
}
