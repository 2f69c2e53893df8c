import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { version } from "./version.js";

export { Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * Creates the registry served at `/metrics`. One per runtime (never the global
 * default registry) so several runtimes can live in one test process.
 */
export function createMetricsRegistry(): Registry {
  const registry = new Registry();
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
