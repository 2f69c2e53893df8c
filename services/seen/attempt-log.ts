import { clickhouseTime } from "../core/clickhouse.js";
import type { AnalyticsAppender } from "../core/analytics/appender.js";
import { GroupCommit } from "../core/group-commit.js";
import type { Jobs } from "../core/jobs/jobs.js";
import type { Registry } from "../core/metrics.js";
import { deliverQueue } from "./queue.js";
import type { AttemptRecord, SeenRepository } from "./repository.js";

/** An attempt with the mark facts its analytics row carries. */
interface LoggedAttempt {
  readonly record: AttemptRecord;
  readonly tag: string;
  readonly itemId: string;
}

/**
 * Records api delivery attempts with group commit: attempts finishing together
 * are recorded with one statement that moves their deliveries on and appends
 * their analytics rows. Only when some of them are to be retried does it run
 * in a transaction with the next attempts' jobs; otherwise it commits by
 * itself, one round trip for the whole group. A call resolves once its
 * attempt is committed (true), or was not recorded because its delivery had
 * moved on (false); if the commit fails, every attempt of the group rejects
 * and its job is retried.
 */
export function createAttemptLog(deps: { repository: SeenRepository; jobs: Jobs; analytics: AnalyticsAppender; metrics: Registry }) {
  const { repository, jobs, analytics } = deps;
  const group = new GroupCommit<LoggedAttempt, boolean>({
    name: "seen_attempts",
    metrics: deps.metrics,
    maxItems: 500,
    maxInFlight: 2,
    commit: async (attempts) => {
      const records = attempts.map((attempt) => attempt.record);
      const lines = attempts.map(({ record, tag, itemId }) =>
        JSON.stringify({
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
        }),
      );
      const results = (recorded: ReadonlySet<number>): boolean[] => records.map((_, n) => recorded.has(n));
      const stored = records.some((record) => record.nextAttemptAt !== null)
        ? await repository.transaction(async (tx) => {
            const recorded = results(await repository.recordAttempts(records, lines, tx));
            const next = records.flatMap((record, i) =>
              recorded[i] && record.nextAttemptAt !== null ? [{ payload: { deliveryId: record.deliveryId, attempt: record.attempt + 1 }, startAfter: record.nextAttemptAt }] : [],
            );
            await jobs.sendMany(deliverQueue, next, { tx });
            return recorded;
          })
        : results(await repository.recordAttempts(records, lines));
      if (stored.includes(true)) analytics.committed();
      return stored;
    },
  });
  return {
    record: (attempt: LoggedAttempt): Promise<boolean> => group.submit(attempt),
    /** Waits until every attempt handed in so far is committed (or failed). */
    drain: (): Promise<void> => group.flush(),
  };
}

export type AttemptLog = ReturnType<typeof createAttemptLog>;
