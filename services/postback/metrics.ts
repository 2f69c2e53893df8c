import { boundedLabel, counter, Gauge, histogram, type Registry } from "../core/metrics.js";
import type { DeliveryRepository } from "./delivery-repository.js";

/** The postback service's metrics (all prefixed `funnel_postback_`). */
export function createPostbackMetrics(registry: Registry, repository: Pick<DeliveryRepository, "backlog">) {
  // One backlog query serves both gauges of a scrape.
  let scrape: { at: number; rows: ReturnType<DeliveryRepository["backlog"]> } | undefined;
  const backlog = () => {
    if (scrape === undefined || Date.now() - scrape.at > 1_000) scrape = { at: Date.now(), rows: repository.backlog().catch(() => []) };
    return scrape.rows;
  };
  if (registry.getSingleMetric("funnel_postback_backlog") === undefined) {
    new Gauge({
      name: "funnel_postback_backlog",
      help: "Postbacks not yet delivered, by status (pending, retrying).",
      labelNames: ["status"],
      registers: [registry],
      async collect(this: Gauge<"status">) {
        const rows = await backlog();
        for (const status of ["pending", "retrying"]) this.set({ status }, rows.find((row) => row.status === status)?.count ?? 0);
      },
    });
    new Gauge({
      name: "funnel_postback_backlog_oldest_seconds",
      help: "Age of the oldest postback not yet delivered.",
      registers: [registry],
      async collect(this: Gauge) {
        this.set(Math.max(0, ...(await backlog()).map((row) => row.oldestSeconds)));
      },
    });
  }
  return {
    /** The `partner` label value of a partner id, bounded (METRICS_MAX_PARTNER_SERIES). */
    partner: boundedLabel(registry, "partner"),
    events: counter(registry, "funnel_postback_events_total", "Funnel events recorded, by event and outcome (queued, duplicate, unknown_partner, disabled, skipped_unattributed).", ["event", "outcome"]),
    unattributed: counter(registry, "funnel_postback_unattributed_total", "Installs and authorizations with no stored download of their stag.", ["event", "partner"]),
    attempts: counter(registry, "funnel_postback_attempts_total", "Postback attempts by partner and outcome (delivered, retry, dead).", ["partner", "outcome"]),
    cancelled: counter(registry, "funnel_postback_cancelled_total", "Queued postbacks not sent because the partner or event was disabled or removed.", ["partner"]),
    requestSeconds: histogram(registry, "funnel_postback_request_seconds", "Duration of postback requests, by partner.", ["partner"]),
    /** Events per group commit (one transaction). */
    groupEvents: histogram(registry, "funnel_postback_event_group_events", "Funnel events committed together in one transaction.", [], [1, 4, 16, 64, 256, 1024]),
    /** Duration of one group commit. */
    groupSeconds: histogram(registry, "funnel_postback_event_group_seconds", "Duration of one group commit of funnel events (transaction)."),
  };
}

export type PostbackMetrics = ReturnType<typeof createPostbackMetrics>;
