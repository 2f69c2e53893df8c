import type { AnalyticsAppender } from "../core/analytics/appender.js";
import { GroupCommit } from "../core/group-commit.js";
import type { Jobs } from "../core/jobs/jobs.js";
import type { Registry } from "../core/metrics.js";
import { deliverQueue } from "./queue.js";
import { clickhouseTime } from "../core/clickhouse.js";
import type { AttemptResult, PostbackRepository } from "./repository.js";

/**
 * Records attempts with group commit: attempts finishing together share one
 * transaction that writes their `postback_deliveries` rows, moves their
 * postbacks on, queues the next attempt of each one to retry, and appends
 * their analytics rows. A call resolves once its attempt is committed (true),
 * or was not recorded because its postback had moved on (false).
 */
export function createAttemptLog(deps: { repository: PostbackRepository; jobs: Jobs; analytics: AnalyticsAppender; metrics: Registry }) {
  const group = new GroupCommit<AttemptResult, boolean>({
    name: "postback_attempts",
    metrics: deps.metrics,
    maxItems: 500,
    maxInFlight: 2,
    commit: async (results) => {
      const recorded = await deps.repository.transaction(async (tx) => {
        const done = await deps.repository.recordAttempts(tx, results);
        await deps.jobs.sendMany(
          deliverQueue,
          done.flatMap((result) =>
            result.outcome !== "retry"
              ? []
              : [
                  {
                    payload: { deliveryId: result.deliveryId, attempt: result.attempt + 1, generation: result.generation },
                    ...(result.nextAttemptAt !== null ? { startAfter: result.nextAttemptAt } : {}),
                  },
                ],
          ),
          { tx },
        );
        await deps.analytics.appendInTransaction(
          tx,
          "postback_deliveries",
          done.map((r) => ({
            delivery_id: r.deliveryId,
            attempt: r.attempt,
            partner_id: r.partnerId,
            event: r.event,
            stag: r.stag,
            click_id: r.clickId,
            method: r.method,
            url: r.url,
            http_status: r.httpStatus ?? 0,
            response_body: r.responseBody.toString("utf8"),
            duration_ms: r.durationMs,
            error: r.error,
            outcome: r.outcome,
            attempted_at: clickhouseTime(r.attemptedAt),
          })),
        );
        // The very results that counted: a repeat of one in the group did not.
        return new Set(done);
      });
      if (recorded.size > 0) deps.analytics.committed();
      return results.map((result) => recorded.has(result));
    },
  });

  return {
    record: (result: AttemptResult): Promise<boolean> => group.submit(result),
    /** Waits until every attempt handed in so far is committed (or failed). */
    drain: (): Promise<void> => group.flush(),
  };
}

export type AttemptLog = ReturnType<typeof createAttemptLog>;
