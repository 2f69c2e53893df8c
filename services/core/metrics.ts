import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { version } from "./version.js";

export { Counter, Gauge, Histogram, Registry } from "prom-client";

/** The value a bounded label takes once its distinct values are used up. */
export const OTHER_LABEL_VALUE = "other";

/** How many values a bounded label keeps unless told otherwise (`METRICS_MAX_PARTNER_SERIES`). */
const DEFAULT_MAX_LABEL_VALUES = 100;

/** Per registry: how many values a bounded label keeps, and each such label's bound. */
const labelBounds = new WeakMap<Registry, { readonly max: number; readonly labels: Map<string, (value: string) => string> }>();

/**
 * The bound of `label` (`partner`, `integration`) in `registry`'s series: the
 * first `maxLabelValues` distinct values (see {@link createMetricsRegistry})
 * pass as they are, every later one becomes {@link OTHER_LABEL_VALUE}. Every
 * metric with a label named after callers' data passes its values through
 * this, so a thousand partners cannot make a thousand series per metric.
 */
export function boundedLabel(registry: Registry, label: string): (value: string) => string {
  let bounds = labelBounds.get(registry);
  if (bounds === undefined) {
    bounds = { max: DEFAULT_MAX_LABEL_VALUES, labels: new Map() };
    labelBounds.set(registry, bounds);
  }
  const existing = bounds.labels.get(label);
  if (existing !== undefined) return existing;
  const { max } = bounds;
  const kept = new Set<string>();
  const bound = (value: string): string => {
    if (kept.has(value)) return value;
    if (kept.size >= max) return OTHER_LABEL_VALUE;
    kept.add(value);
    return value;
  };
  bounds.labels.set(label, bound);
  return bound;
}

/**
 * Creates the registry served at `/metrics`. One per runtime (never the global
 * default registry) so several runtimes can live in one test process.
 * `maxLabelValues` bounds the partner and integration labels ({@link boundedLabel}).
 */
export function createMetricsRegistry(options: { readonly maxLabelValues?: number } = {}): Registry {
  const registry = new Registry();
  labelBounds.set(registry, { max: options.maxLabelValues ?? DEFAULT_MAX_LABEL_VALUES, labels: new Map() });
  collectDefaultMetrics({ register: registry, prefix: "funnel_" });
  // prom-client's active handle, request and resource counts are gauges named
  // like counters (`…_total`), which rate() and linters take for counters; each
  // is the sum over `type` of its gauge without the suffix, which stays.
  for (const metric of registry.getMetricsAsArray()) {
    if (metric instanceof Gauge && (metric as unknown as { name: string }).name.endsWith("_total")) {
      registry.removeSingleMetric((metric as unknown as { name: string }).name);
    }
  }
  gauge(registry, "funnel_build_info", "Always 1; the labels name the running Funnel and Node.js versions.", ["version", "node"]).set({ version, node: process.version }, 1);
  return registry;
}

/** Returns the metric named `name` from `registry`, creating it on first use. */
export function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
  const existing = registry.getSingleMetric(name);
  if (existing !== undefined) return existing as Counter<L>;
  return new Counter({ name, help, labelNames, registers: [registry] });
}

/** Returns the gauge named `name` from `registry`, creating it on first use. */
export function gauge<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[] = []): Gauge<L> {
  const existing = registry.getSingleMetric(name);
  if (existing !== undefined) return existing as Gauge<L>;
  return new Gauge({ name, help, labelNames, registers: [registry] });
}

/** Returns the histogram named `name` from `registry`, creating it on first use. */
export function histogram<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly L[] = [],
  buckets: number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
): Histogram<L> {
  const existing = registry.getSingleMetric(name);
  if (existing !== undefined) return existing as Histogram<L>;
  return new Histogram({ name, help, labelNames, buckets, registers: [registry] });
}
