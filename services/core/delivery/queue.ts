import { defineQueue, type QueueDefinition } from "../jobs/queue.js";
import type { DeliveryJob } from "./store.js";

/**
 * Defines the queue of one delivery kind. Retries after the target's answer
 * are scheduled by the worker itself (each a new job, after the kind's
 * backoff or `Retry-After`); the queue's own retries only cover unexpected
 * failures such as Postgres being unreachable. `replayInstead` names the
 * admin call that replays the kind's deliveries when redriving its dead
 * letters would do nothing.
 */
export function defineDeliveryQueue(name: string, options: { readonly replayInstead?: string } = {}): QueueDefinition<DeliveryJob> {
  return defineQueue<DeliveryJob>(name, {
    retry: { limit: 10, delay: 5, backoff: true, maxDelay: 600 },
    expireInSeconds: 300,
    keepCompletedSeconds: 3_600,
    ...options,
  });
}
