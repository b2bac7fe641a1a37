// Types for parse-prometheus-text-format (the package ships none), as much of its output as
// test/helpers/prometheus.ts reads: a family per run of samples with one name, each sample's
// value as the text had it.
declare module "parse-prometheus-text-format" {
  interface ParsedSample {
    labels?: Record<string, string>;
    value?: string;
    timestamp_ms?: string;
  }
  interface ParsedFamily {
    name: string;
    help: string;
    /** Upper case: COUNTER, GAUGE, HISTOGRAM, SUMMARY, UNTYPED. */
    type: string;
    metrics: ParsedSample[];
  }
  export default function parsePrometheusTextFormat(text: string): ParsedFamily[];
}
