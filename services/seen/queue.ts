import { defineQueue } from "../core/jobs/queue.js";

/**
 * One attempt at one api delivery. The delivery itself lives in
 * `seen_deliveries`; the job names the attempt it is for, so a duplicate run
 * (or a retry overtaken by another) recognises itself and does nothing.
 */
export interface DeliverJob {
  readonly deliveryId: string;
  /** 1 for the first attempt. */
  readonly attempt: number;
}

/**
 * Retries after a consumer's answer are scheduled by the worker itself (a new
 * job after the integration's backoff or `Retry-After`); the queue's own
 * retries only cover unexpected failures such as Postgres being unreachable.
 */
export const deliverQueue = defineQueue<DeliverJob>("seen.deliver", {
  retry: { limit: 10, delay: 5, backoff: true, maxDelay: 600 },
  expireInSeconds: 300,
  keepCompletedSeconds: 3_600,
});
