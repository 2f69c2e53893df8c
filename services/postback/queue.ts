import { defineQueue } from "../core/jobs/queue.js";

/**
 * The job that makes one attempt at one postback. The postback itself lives
 * in `postbacks`; the job names which attempt of which generation it is, so a
 * job that is stale (a duplicate run, or a retry scheduled before a replay)
 * recognises itself and does nothing.
 */
export interface DeliverJob {
  readonly deliveryId: string;
  /** 1 for the first attempt. */
  readonly attempt: number;
  readonly generation: number;
}

/**
 * Partner retries are scheduled by the worker itself (each a new job, with
 * the partner's backoff and `Retry-After`); the queue's own retries only
 * cover unexpected failures such as Postgres being unreachable.
 */
export const deliverQueue = defineQueue<DeliverJob>("postback.deliver", {
  retry: { limit: 10, delay: 5, backoff: true, maxDelay: 600 },
  expireInSeconds: 300,
  keepCompletedSeconds: 3_600,
  // A dead postback's job finds its postback no longer pending and would do nothing.
  replayInstead: "DeliveryService.Redeliver (funnel deliveries replay), which gives the postback a fresh retry budget",
});
