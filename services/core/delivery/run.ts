import type { Jobs } from "../jobs/jobs.js";
import type { QueueDefinition } from "../jobs/queue.js";
import type { Logger } from "../logger.js";
import type { Registry } from "../metrics.js";
import { createGuardedAgent } from "../outbound/guard.js";
import { createSender } from "../outbound/send.js";
import { createAttemptLog } from "./attempt-log.js";
import type { DeliveryJob } from "./store.js";
import { createDeliveryWorker, type DeliveryKind } from "./worker.js";

export interface DeliveriesOptions<Row> {
  readonly kind: DeliveryKind<Row>;
  readonly queue: QueueDefinition<DeliveryJob>;
  /** The attempt log's group commit in metrics (`funnel_group_commit_splits_total{group}`). */
  readonly group: string;
  readonly jobs: Jobs;
  readonly metrics: Registry;
  readonly log: Logger;
  /** Requests in flight at once in this process. */
  readonly concurrency: number;
  /** The whole shutdown budget; requests in flight get half of it. */
  readonly shutdownTimeoutMs: number;
  readonly outbound: {
    /** Whether targets may be private addresses, and the setting that says so (named in refusals). */
    readonly allowPrivate: boolean;
    readonly allowSetting: string;
    readonly userAgent: string;
    /** How much of each answer an attempt keeps. */
    readonly bodyPrefixBytes: number;
  };
}

/**
 * Starts working a delivery queue: the guarded connection pool, the attempt
 * log and the worker, `concurrency` requests at once (up to four fetch loops,
 * each taking its share of jobs per round trip). `stop` stops taking jobs,
 * gives requests in flight half the shutdown budget to finish and be recorded
 * (then ends them as retryable failures), waits for the attempt log, and
 * closes the pool.
 */
export async function startDeliveries<Row>(options: DeliveriesOptions<Row>): Promise<{ stop(): Promise<void> }> {
  const { jobs, queue, outbound } = options;
  const guard = { allowPrivate: outbound.allowPrivate, allowSetting: outbound.allowSetting };
  const agent = createGuardedAgent(guard);
  const stopping = new AbortController();
  const attempts = createAttemptLog({ group: options.group, queue, store: options.kind.store, jobs, metrics: options.metrics });
  const deliver = createDeliveryWorker({
    kind: options.kind,
    attempts,
    send: createSender({ ...guard, agent, userAgent: outbound.userAgent, bodyPrefixBytes: outbound.bodyPrefixBytes }),
    log: options.log,
    stopping: stopping.signal,
  });
  const localConcurrency = Math.min(4, options.concurrency);
  await jobs.work(queue, deliver, { localConcurrency, batchSize: Math.ceil(options.concurrency / localConcurrency) });
  return {
    async stop() {
      await jobs.stopWorking(queue, { graceMs: options.shutdownTimeoutMs / 2, inFlight: stopping });
      await attempts.drain();
      await agent.close();
    },
  };
}
