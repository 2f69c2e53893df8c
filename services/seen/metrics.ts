import type pg from "pg";
import { boundedLabel, counter, Gauge, histogram, type Registry } from "../core/metrics.js";
import { deliveryBacklog } from "./sql/deliveries.js";

/** Seen's metrics; the backlog gauges are read from Postgres when scraped. */
export function createSeenMetrics(registry: Registry, pool: pg.Pool) {
  let scrape: { at: number; rows: ReturnType<typeof deliveryBacklog> } | undefined;
  // Both gauges share one query per scrape.
  const backlog = (): ReturnType<typeof deliveryBacklog> => {
    if (scrape === undefined || Date.now() - scrape.at > 1_000) scrape = { at: Date.now(), rows: deliveryBacklog(pool).catch(() => []) };
    return scrape.rows;
  };
  const integration = boundedLabel(registry, "integration");
  /** The backlog by bounded integration: pending summed, oldest the oldest, where several share "other". */
  const boundedBacklog = async (): Promise<Map<string, { pending: number; oldestSeconds: number }>> => {
    const out = new Map<string, { pending: number; oldestSeconds: number }>();
    for (const row of await backlog()) {
      const key = integration(row.integration);
      const seen = out.get(key);
      out.set(key, { pending: (seen?.pending ?? 0) + row.pending, oldestSeconds: Math.max(seen?.oldestSeconds ?? 0, row.oldestSeconds) });
    }
    return out;
  };
  if (registry.getSingleMetric("funnel_seen_delivery_queue") === undefined) {
    new Gauge({
      name: "funnel_seen_delivery_queue",
      help: "Api deliveries not yet finished (waiting or retrying), per integration.",
      labelNames: ["integration"],
      registers: [registry],
      async collect(this: Gauge<"integration">) {
        this.reset();
        for (const [name, row] of await boundedBacklog()) this.set({ integration: name }, row.pending);
      },
    });
    new Gauge({
      name: "funnel_seen_delivery_oldest_seconds",
      help: "Age of the oldest unfinished api delivery, per integration.",
      labelNames: ["integration"],
      registers: [registry],
      async collect(this: Gauge<"integration">) {
        this.reset();
        for (const [name, row] of await boundedBacklog()) this.set({ integration: name }, row.oldestSeconds);
      },
    });
  }
  return {
    /** The `integration` label value of an integration name, bounded (METRICS_MAX_PARTNER_SERIES). */
    integration,
    /** MarkSeen calls (RPC and plain HTTP) by result: ok, or the Connect code of the failure (invalid_argument, unauthenticated, unavailable, internal, …). */
    requests: counter(registry, "funnel_seen_mark_requests_total", "MarkSeen calls by result.", ["result"]),
    /** Marks by whether the call created them. */
    marks: counter(registry, "funnel_seen_marks_total", "MarkSeen calls that succeeded, by whether they created the mark (created) or found it retained (repeat).", ["result"]),
    /** Marks per group commit (one transaction). */
    groupMarks: histogram(registry, "funnel_seen_mark_group_marks", "MarkSeen calls committed together in one transaction.", [], [1, 4, 16, 64, 256, 1024]),
    /** Duration of one group commit. */
    groupSeconds: histogram(registry, "funnel_seen_mark_group_seconds", "Duration of one MarkSeen group commit (transaction)."),
    /** Api delivery attempts by integration and outcome. */
    deliveries: counter(registry, "funnel_seen_deliveries_total", "Api delivery attempts by integration and outcome (delivered, retry, dead, cancelled).", ["integration", "outcome"]),
    /** Mark-to-consumer latency of delivered api deliveries. */
    latency: histogram(registry, "funnel_seen_delivery_latency_seconds", "Time from the mark to the consumer's 2xx, per integration.", ["integration"], [
      0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300, 3_600,
    ]),
    /** Topic messages sent to subscribers. */
    feedMessages: counter(registry, "funnel_seen_feed_messages_total", "Topic messages sent to subscribers, by topic.", ["topic"]),
  };
}

export type SeenMetrics = ReturnType<typeof createSeenMetrics>;
