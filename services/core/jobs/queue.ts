/**
 * Retry policy of a queue. Delays are in seconds; with `backoff` the delay
 * doubles after every attempt (with jitter, as pg-boss does) up to `maxDelay`.
 */
export interface RetryPolicy {
  /** Retries after the first attempt; 0 dead-letters on the first failure. */
  readonly limit: number;
  readonly delay: number;
  readonly backoff: boolean;
  readonly maxDelay?: number;
}

/** What to do with a job whose `deadline` passed before it could start. */
export type DeadlinePolicy = "dead-letter" | "discard" | "run";

/**
 * The definition of one durable queue: its name, payload type `T` and policies.
 * Handlers and senders are checked against `T` at compile time.
 */
export interface QueueDefinition<T> {
  readonly name: string;
  readonly retry: RetryPolicy;
  /** Seconds a started job may run before it is considered lost and retried. */
  readonly expireInSeconds: number;
  /** `key_strict_fifo` runs jobs of one group strictly in order. */
  readonly ordered: boolean;
  /** Seconds a never-started job is kept before it is dropped (and counted). */
  readonly retentionSeconds: number;
  /** Seconds a finished job is kept for inspection. */
  readonly keepCompletedSeconds: number;
  /** Seconds a dead letter is kept before it is dropped. */
  readonly deadLetterRetentionSeconds: number;
  readonly onDeadline: DeadlinePolicy;
  /**
   * Each of `localConcurrency` fetch loops takes up to `batchSize` jobs per
   * round trip and runs them together: at most their product run at once per process.
   */
  readonly batchSize: number;
  readonly localConcurrency: number;
  /**
   * How the work of this queue's failed and dead-lettered jobs is replayed instead, when the
   * job alone cannot restart it (its record has already moved on): retrying or redriving
   * such jobs is refused with this hint rather than run as a silent no-op.
   */
  readonly replayInstead?: string;
  /** Type witness only; never read. */
  readonly __payload?: T;
}

const DAY = 86_400;

/** Defaults shared by every queue; each is overridable per queue. */
export const queueDefaults = {
  retry: { limit: 5, delay: 2, backoff: true, maxDelay: 3_600 },
  expireInSeconds: 15 * 60,
  ordered: false,
  retentionSeconds: 14 * DAY,
  keepCompletedSeconds: 1 * DAY,
  deadLetterRetentionSeconds: 90 * DAY,
  onDeadline: "dead-letter",
  batchSize: 1,
  localConcurrency: 4,
} as const satisfies Omit<QueueDefinition<unknown>, "name" | "__payload">;

export type QueueOptions = Partial<Omit<QueueDefinition<unknown>, "name" | "__payload" | "retry">> & {
  readonly retry?: Partial<RetryPolicy>;
};

/** Defines a queue carrying payloads of type `T`. */
export function defineQueue<T>(name: string, options: QueueOptions = {}): QueueDefinition<T> {
  if (!/^[a-z][a-z0-9_.-]{0,99}$/.test(name) || name.endsWith(".dead")) {
    throw new Error(`queue name "${name}": lower-case letters, digits, "_", "." and "-", not ending in ".dead"`);
  }
  return Object.freeze({
    ...queueDefaults,
    ...options,
    name,
    retry: Object.freeze({ ...queueDefaults.retry, ...options.retry }),
  });
}

/** Name of the dead-letter queue paired with `queue`. */
export const deadLetterQueueOf = (queue: string): string => `${queue}.dead`;
