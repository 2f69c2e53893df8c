import { clickhouseTime } from "../core/clickhouse.js";
import type { AnalyticsAppender } from "../core/analytics/appender.js";
import { GroupCommit } from "../core/group-commit.js";
import type { Jobs } from "../core/jobs/jobs.js";
import { deliverQueue } from "./queue.js";
import type { AttemptRecord, SeenRepository } from "./repository.js";

/** The ClickHouse table (and analytics stream) of delivery attempts. */
const ATTEMPTS_TABLE = "seen_delivery_attempts";

/** An attempt with the mark facts its analytics row carries. */
interface LoggedAttempt {
  readonly record: AttemptRecord;
  readonly tag: string;
  readonly itemId: string;
}

/**
 * Records api delivery attempts with group commit: attempts finishing together
 * share one transaction that records them, moves their deliveries on, queues
 * the next attempt of each one to retry and appends their analytics rows. A
 * call resolves once its attempt is committed (true), or was not recorded
 * because its delivery had moved on (false); if the commit fails, every
 * attempt of the group rejects and its job is retried.
 */
export function createAttemptLog(deps: { repository: SeenRepository; jobs: Jobs; analytics: AnalyticsAppender }) {
  const { repository, jobs, analytics } = deps;
  const group = new GroupCommit<LoggedAttempt, boolean>({
    maxItems: 500,
    maxInFlight: 2,
    commit: (attempts) =>
      repository.transaction(async (tx) => {
        const recorded = await repository.recordAttempts(
          tx,
          attempts.map((attempt) => attempt.record),
        );
        // Of the same (delivery, attempt) twice in a group, only the first was recorded.
        const first = new Set<string>();
        const results = attempts.map(({ record }) => {
          const key = `${record.deliveryId}/${record.attempt}`;
          if (!recorded.has(key) || first.has(key)) return false;
          first.add(key);
          return true;
        });
        const done = attempts.filter((_, i) => results[i]);
        await jobs.sendMany(
          deliverQueue,
          done.flatMap(({ record }) =>
            record.nextAttemptAt === null ? [] : [{ payload: { deliveryId: record.deliveryId, attempt: record.attempt + 1 }, startAfter: record.nextAttemptAt }],
          ),
          { tx },
        );
        await analytics.appendInTransaction(
          tx,
          ATTEMPTS_TABLE,
          done.map(({ record, tag, itemId }) => ({
            delivery_id: record.deliveryId,
            attempt: record.attempt,
            integration: record.integration,
            tag,
            item_id: itemId,
            url: record.url,
            http_status: record.httpStatus ?? 0,
            response_body: record.responseBody,
            duration_ms: record.durationMs,
            error: record.error,
            outcome: record.outcome,
            attempted_at: clickhouseTime(record.attemptedAt),
          })),
        );
        return results;
      }),
  });
  return {
    record: (attempt: LoggedAttempt): Promise<boolean> => group.submit(attempt),
    /** Waits until every attempt handed in so far is committed (or failed). */
    drain: (): Promise<void> => group.flush(),
  };
}

export type AttemptLog = ReturnType<typeof createAttemptLog>;
