import { withAnySignal } from "../abort.js";
import { PermanentJobError, type JobContext } from "../jobs/jobs.js";
import type { Logger } from "../logger.js";
import { retryDelayMs, type Backoff } from "../outbound/backoff.js";
import type { OutboundRequest, Sender, SendResult } from "../outbound/send.js";
import type { AttemptLog } from "./attempt-log.js";
import { createBatchLoader } from "./loader.js";
import type { AttemptOutcome, Delivery, DeliveryJob, DeliveryStore } from "./store.js";

/** How many attempts a round may take, and how long they wait in between. */
export interface RetryBudget {
  /** Attempts per round (the first, or each replay's); 0 for no limit. */
  readonly maxAttempts: number;
  readonly backoff: Backoff;
  /** Without an attempt limit, retries stop once the next attempt would be due after `at`. */
  readonly until?: { readonly at: Date; readonly reason: string };
}

/** The attempt a delivery is due: its request and budget, or why it is cancelled instead. */
export type Prepared = { readonly request: OutboundRequest; readonly budget: RetryBudget } | { readonly cancel: string };

/** What the engine needs of one delivery kind besides its store. */
export interface DeliveryKind<Row> {
  /** The kind in log lines and dead-letter errors: "postback", "seen delivery". */
  readonly noun: string;
  readonly store: DeliveryStore<Row>;
  /** Its target's name (partner id, integration), for log lines and errors. */
  target(row: Row): string;
  /** Renders attempt `attempt` with the target's current settings, or cancels the delivery. */
  prepare(delivery: Delivery<Row>, attempt: number): Prepared | Promise<Prepared>;
  /** Metrics of the kind: each hook is called once per event. */
  readonly observe: {
    /** A request came back (or failed), before its attempt is recorded. */
    sent?(row: Row, result: SendResult): void;
    /** An attempt was recorded. */
    recorded(row: Row, outcome: AttemptOutcome): void;
    /** A delivery was cancelled. */
    cancelled(row: Row): void;
  };
}

export interface DeliveryWorkerDeps<Row> {
  readonly kind: DeliveryKind<Row>;
  /** Where attempts are recorded (with the next attempt's job and the analytics row). */
  readonly attempts: AttemptLog<Row>;
  readonly send: Sender;
  readonly log: Logger;
  /** Aborted when the process stops without grace: in-flight requests end as retryable failures. */
  readonly stopping: AbortSignal;
}

/** The replay a job is for. Jobs queued before replays had that name carry it as `generation`. */
const replayOf = (job: DeliveryJob): number => job.replay ?? (job as { generation?: number }).generation ?? 0;

/** The outcome of an attempt within its budget, and when the next one is due. */
function judge(sent: SendResult, budget: RetryBudget, inRound: number): { outcome: AttemptOutcome; error: string; nextAttemptAt: Date | null } {
  if (sent.verdict !== "retry") return { outcome: sent.verdict, error: sent.error, nextAttemptAt: null };
  const nextAttemptAt = new Date(Date.now() + retryDelayMs(budget.backoff, inRound, sent.retryAfterMs));
  if (budget.maxAttempts > 0 && inRound >= budget.maxAttempts) return { outcome: "dead", error: `${sent.error}; gave up after ${inRound} attempt(s)`, nextAttemptAt: null };
  if (budget.maxAttempts === 0 && budget.until !== undefined && nextAttemptAt > budget.until.at) {
    return { outcome: "dead", error: `${sent.error}; gave up: ${budget.until.reason}`, nextAttemptAt: null };
  }
  return { outcome: "retry", error: sent.error, nextAttemptAt };
}

/**
 * The handler of a delivery queue: one attempt at one delivery with its
 * target's current settings. A stale job (a duplicate run, a retry overtaken
 * by a replay or a cancellation) does nothing; so does the job of a removed
 * or disabled target, after cancelling the delivery. Otherwise the request
 * goes out through the outbound sender, and the answer decides: 2xx
 * delivered; 5xx, 408, 429, timeouts and network errors retried (a new job
 * after the backoff or `Retry-After`) until the round's budget is used up;
 * anything else, or the budget's end, dead (the job dead-letters). A redriven
 * dead letter starts a new round where the kind allows it. Every attempt is
 * recorded with the next job and its analytics row in one commit.
 */
export function createDeliveryWorker<Row>(deps: DeliveryWorkerDeps<Row>) {
  const { kind, attempts, log } = deps;
  const { store, observe } = kind;
  const load = createBatchLoader((ids) => store.load(ids));
  return async function deliver(job: DeliveryJob, context: JobContext): Promise<void> {
    let delivery = await load(job.deliveryId);
    // Cleaned up long ago, or overtaken by a replay.
    if (delivery === undefined || delivery.replay !== replayOf(job)) return;
    if (delivery.state === "dead" && delivery.attempts === job.attempt && store.replayDeadLetter !== undefined) {
      const replay = await store.replayDeadLetter(delivery);
      if (replay === undefined) return;
      delivery = { ...delivery, state: "open", attemptBase: delivery.attempts, replay };
    } else if (delivery.state !== "open" || delivery.attempts !== job.attempt - 1) {
      return; // a duplicate run, or a job overtaken by another
    }
    const { row } = delivery;
    const attempt = delivery.attempts + 1;
    const prepared = await kind.prepare(delivery, attempt);
    if ("cancel" in prepared) {
      if (await store.cancel(delivery, prepared.cancel)) observe.cancelled(row);
      return;
    }
    const { request, budget } = prepared;
    const attemptedAt = new Date();
    const sent = await withAnySignal([context.signal, deps.stopping], (signal) => deps.send(request, signal));
    observe.sent?.(row, sent);
    const { outcome, error, nextAttemptAt } = judge(sent, budget, attempt - delivery.attemptBase);
    const recorded = await attempts.record({
      delivery,
      attempt,
      method: request.method,
      url: request.url,
      httpStatus: sent.httpStatus,
      responseBody: sent.responseBody,
      durationMs: sent.durationMs,
      error,
      outcome,
      attemptedAt,
      nextAttemptAt,
    });
    if (!recorded) return;
    observe.recorded(row, outcome);
    if (outcome === "dead") {
      const target = kind.target(row);
      log.warn({ deliveryId: delivery.id, target, attempt, error }, `${kind.noun} failed for good`);
      throw new PermanentJobError(`${kind.noun} ${delivery.id} to ${target}: ${error}`);
    }
  };
}
