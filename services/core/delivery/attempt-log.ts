import { GroupCommit } from "../group-commit.js";
import type { Jobs } from "../jobs/jobs.js";
import type { QueueDefinition } from "../jobs/queue.js";
import type { Registry } from "../metrics.js";
import type { Attempt, DeliveryJob, DeliveryStore } from "./store.js";

export interface AttemptLogDeps<Row> {
  /** The group commit's name in metrics (`funnel_group_commit_splits_total{group}`). */
  readonly group: string;
  readonly queue: QueueDefinition<DeliveryJob>;
  readonly store: DeliveryStore<Row>;
  readonly jobs: Jobs;
  readonly metrics: Registry;
}

/** The next attempt's job of each recorded retry. */
function nextJobs<Row>(attempts: readonly Attempt<Row>[], recorded: readonly boolean[]) {
  return attempts.flatMap((attempt, i) =>
    recorded[i] === true && attempt.nextAttemptAt !== null
      ? [
          {
            payload: { deliveryId: attempt.delivery.id, attempt: attempt.attempt + 1, ...(attempt.delivery.replay > 0 ? { replay: attempt.delivery.replay } : {}) },
            startAfter: attempt.nextAttemptAt,
          },
        ]
      : [],
  );
}

/**
 * Records attempts with group commit: attempts finishing together share one
 * commit that writes their attempt rows, moves their deliveries on, appends
 * their analytics rows and, when some of them are to be retried, queues the
 * next attempts' jobs in the same transaction (without retries the store
 * commits by itself, which may be one round trip for the whole group). A call
 * resolves once its attempt is committed (true), or was not recorded because
 * its delivery had moved on (false); if the commit fails, every attempt of
 * the group rejects and its job is retried.
 */
export function createAttemptLog<Row>(deps: AttemptLogDeps<Row>) {
  const { store, jobs, queue } = deps;
  const group = new GroupCommit<Attempt<Row>, boolean>({
    name: deps.group,
    metrics: deps.metrics,
    maxItems: 500,
    maxInFlight: 2,
    commit: async (attempts) => {
      const recorded = attempts.some((attempt) => attempt.nextAttemptAt !== null)
        ? await store.transaction(async (tx) => {
            const recorded = await store.recordAttempts(attempts, tx);
            await jobs.sendMany(queue, nextJobs(attempts, recorded), { tx });
            return recorded;
          })
        : await store.recordAttempts(attempts);
      return recorded;
    },
  });
  return {
    record: (attempt: Attempt<Row>): Promise<boolean> => group.submit(attempt),
    /** Waits until every attempt handed in so far is committed (or failed). */
    drain: (): Promise<void> => group.flush(),
  };
}

export type AttemptLog<Row> = ReturnType<typeof createAttemptLog<Row>>;
