import type { AnalyticsAppender } from "../core/analytics/appender.js";
import { attemptColumns, deliveryOf, type DeliveryKind, type DeliveryState, type DeliveryStore } from "../core/delivery/index.js";
import type { PostbackMetrics } from "./metrics.js";
import type { PartnerDirectory } from "./partner-directory.js";
import { renderRequest, valuesOf } from "./render.js";
import type { DeliveryRepository, DeliveryRow } from "./delivery-repository.js";
import { withTransaction, type Pool } from "../core/postgres.js";

/** Where a postback stands, as the engine sees it. */
const stateOf = (status: DeliveryRow["status"]): DeliveryState =>
  status === "pending" || status === "retrying" ? "open" : status === "dead" ? "dead" : "finished";

/**
 * Postbacks as a delivery kind: rows of `postbacks`, attempts in
 * `postback_deliveries` (and the ClickHouse table of that name), each
 * attempt rendered from the partner's current templates. A dead postback is
 * replayed through `DeliveryService.Redeliver`, not by redriving its job.
 */
export function createPostbackDeliveries(deps: {
  pool: Pool;
  repository: DeliveryRepository;
  directory: PartnerDirectory;
  analytics: AnalyticsAppender;
  metrics: PostbackMetrics;
}): DeliveryKind<DeliveryRow> {
  const { pool, repository, directory, analytics, metrics } = deps;
  const store: DeliveryStore<DeliveryRow> = {
    transaction: (work) => withTransaction(pool, work),
    load: async (ids) => (await repository.getDeliveries(ids)).map((row) => deliveryOf(row, stateOf(row.status), row.replay)),
    cancel: (delivery, reason) => repository.cancelDelivery(delivery.id, delivery.replay, reason),
    recordAttempts: (attempts, tx) => {
      const record = async (db: NonNullable<typeof tx>): Promise<boolean[]> => {
        const recorded = await repository.recordAttempts(db, attempts);
        const rows = attempts
          .filter((_, i) => recorded[i])
          .map((a) => ({ ...attemptColumns(a), partner_id: a.delivery.row.partnerId, event: a.delivery.row.event, stag: a.delivery.row.stag, click_id: a.delivery.row.clickId, method: a.method }));
        await analytics.appendInTransaction(db, "postback_deliveries", rows);
        return recorded;
      };
      return tx !== undefined ? record(tx) : withTransaction(pool, record);
    },
  };
  return {
    noun: "postback",
    store,
    target: (row) => row.partnerId,
    async prepare({ row }) {
      const partner = await directory.get(row.partnerId);
      const event = partner?.config.events[row.event];
      const templates = partner?.templates[row.event];
      if (partner === undefined || !partner.config.enabled || event === undefined || !event.enabled || templates === undefined) {
        return { cancel: partner === undefined ? `partner ${row.partnerId} was removed` : `partner ${row.partnerId} or its ${row.event} postback is disabled` };
      }
      const { retry, timeoutMs } = partner.config;
      return {
        request: renderRequest(event, templates, valuesOf(row), timeoutMs),
        budget: { maxAttempts: retry.maxAttempts, backoff: { initialMs: retry.initialDelayMs, maxMs: retry.maxDelayMs } },
      };
    },
    observe: {
      sent: (row, result) => metrics.requestSeconds.observe({ partner: metrics.partner(row.partnerId) }, result.durationMs / 1000),
      recorded: (row, outcome) => metrics.attempts.inc({ partner: metrics.partner(row.partnerId), outcome }),
      cancelled: (row) => metrics.cancelled.inc({ partner: metrics.partner(row.partnerId) }),
    },
  };
}
