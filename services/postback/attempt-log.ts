import type { AnalyticsAppender } from "../core/analytics/appender.js";
import type { Jobs } from "../core/jobs/jobs.js";
import { deliverQueue } from "./queue.js";
import { clickhouseTime } from "./recorder.js";
import type { AttemptResult, PostbackRepository } from "./repository.js";

interface Pending {
  readonly result: AttemptResult;
  readonly resolve: (recorded: boolean) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Records attempts with group commit: attempts finishing together share one
 * transaction that writes their `postback_deliveries` rows, moves their
 * postbacks on, queues the next attempt of each one to retry, and appends
 * their analytics rows. A call resolves once its attempt is committed (true),
 * or was not recorded because its postback had moved on (false).
 */
export function createAttemptLog(deps: { repository: PostbackRepository; jobs: Jobs; analytics: AnalyticsAppender; maxRows?: number }) {
  const maxRows = deps.maxRows ?? 500;
  const pending: Pending[] = [];
  let inFlight = 0;
  const flushes = new Set<Promise<void>>();

  const commit = async (group: readonly Pending[]): Promise<void> => {
    let recorded: Set<string>;
    try {
      recorded = await deps.repository.transaction(async (tx) => {
        const done = await deps.repository.recordAttempts(tx, group.map((item) => item.result));
        for (const result of done) {
          if (result.outcome !== "retry") continue;
          await deps.jobs.send(
            deliverQueue,
            { deliveryId: result.deliveryId, attempt: result.attempt + 1, generation: result.generation },
            { tx, ...(result.nextAttemptAt !== null ? { startAfter: result.nextAttemptAt } : {}) },
          );
        }
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
        return new Set(done.map((r) => `${r.deliveryId}/${r.attempt}`));
      });
    } catch (error) {
      for (const item of group) item.reject(error);
      return;
    }
    for (const item of group) item.resolve(recorded.has(`${item.result.deliveryId}/${item.result.attempt}`));
  };

  const flush = (): void => {
    if (pending.length === 0 || inFlight >= 2) return;
    const group = pending.splice(0, maxRows);
    inFlight += 1;
    const running = commit(group).finally(() => {
      inFlight -= 1;
      flushes.delete(running);
      flush();
    });
    flushes.add(running);
  };

  return {
    record(result: AttemptResult): Promise<boolean> {
      return new Promise<boolean>((resolve, reject) => {
        pending.push({ result, resolve, reject });
        flush();
      });
    },
    /** Waits until every attempt handed in so far is committed (or failed). */
    async drain(): Promise<void> {
      while (pending.length > 0 || flushes.size > 0) await Promise.allSettled([...flushes]);
    },
  };
}

export type AttemptLog = ReturnType<typeof createAttemptLog>;
