import type pg from "pg";
import type { AnalyticsAppender } from "../core/analytics/appender.js";
import { attemptColumns, deliveryOf, type DeliveryKind, type DeliveryStore } from "../core/delivery/index.js";
import { withTransaction } from "../core/postgres.js";
import { deliveryRequest } from "./api-request.js";
import { apiDefaults } from "./integration.js";
import type { SeenMetrics } from "./metrics.js";
import { cancelDelivery, loadDeliveries, recordAttempts, replayDeadLetter, type DeliveryRow } from "./sql/deliveries.js";

/**
 * Seen's api deliveries as a delivery kind: rows of `seen_deliveries`,
 * attempts in `seen_delivery_attempts` (Postgres and ClickHouse), each
 * attempt a POST of the JSON body fixed with the mark. Without an attempt
 * limit, retries end with the mark's retention. A dead delivery is replayed
 * by redriving its dead letter, which is also what `ReplayDeliveries` does.
 */
export function createSeenDeliveries(deps: { pool: pg.Pool; analytics: Pick<AnalyticsAppender, "run">; metrics: SeenMetrics }): DeliveryKind<DeliveryRow> {
  const { pool, analytics, metrics } = deps;
  const store: DeliveryStore<DeliveryRow> = {
    transaction: (work) => withTransaction(pool, work),
    // Seen counts no replays: it replays only dead deliveries, which have no job left to overtake.
    load: async (ids) => (await loadDeliveries(pool, ids)).map((row) => deliveryOf(row, row.status === "pending" ? "open" : row.status === "dead" ? "dead" : "finished", 0)),
    cancel: (delivery, reason) => cancelDelivery(pool, delivery.id, delivery.attempts, reason),
    recordAttempts: (attempts, tx) => {
      const lines = attempts.map((a) => JSON.stringify({ ...attemptColumns(a), integration: a.delivery.row.integration, tag: a.delivery.row.tag, item_id: a.delivery.row.itemId }));
      return recordAttempts(analytics, tx ?? pool, attempts, lines);
    },
    replayDeadLetter: async (delivery) => ((await replayDeadLetter(pool, delivery.id, delivery.attempts)) ? 0 : undefined),
  };
  const integration = (row: DeliveryRow) => metrics.integration(row.integration);
  return {
    noun: "seen delivery",
    store,
    target: (row) => row.integration,
    prepare({ id, row }, attempt) {
      if (row.kind !== "api" || row.enabled !== true || row.url === null) {
        return { cancel: row.kind === null ? `integration ${row.integration} was removed` : `integration ${row.integration} is disabled or no longer an api integration` };
      }
      return {
        request: deliveryRequest({ url: row.url, idempotencyKey: id, attempt, body: JSON.stringify({ delivery_id: id, ...row.body }), timeoutMs: row.timeoutMs ?? apiDefaults.timeoutMs }),
        budget: {
          maxAttempts: row.maxAttempts ?? 0,
          backoff: { initialMs: row.initialBackoffMs ?? apiDefaults.initialBackoffMs, maxMs: row.maxBackoffMs ?? apiDefaults.maxBackoffMs },
          until: { at: row.giveUpAt, reason: "the mark's retention ends before the next attempt" },
        },
      };
    },
    observe: {
      recorded(row, outcome) {
        metrics.deliveries.inc({ integration: integration(row), outcome });
        if (outcome !== "delivered") return;
        const seenAt = Date.parse(String(row.body.seen_at));
        if (!Number.isNaN(seenAt)) metrics.latency.observe({ integration: integration(row) }, (Date.now() - seenAt) / 1000);
      },
      cancelled: (row) => metrics.deliveries.inc({ integration: integration(row), outcome: "cancelled" }),
    },
  };
}
