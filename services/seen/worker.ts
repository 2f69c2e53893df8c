import { withAnySignal } from "../core/abort.js";
import { PermanentJobError, type JobContext } from "../core/jobs/jobs.js";
import type { Logger } from "../core/logger.js";
import { retryDelayMs } from "../core/outbound/backoff.js";
import type { AttemptLog } from "./attempt-log.js";
import type { SeenMetrics } from "./metrics.js";
import type { DeliverJob } from "./queue.js";
import type { AttemptRecord, DeliveryRow, SeenRepository } from "./repository.js";
import type { Sender } from "../core/outbound/send.js";
import { deliveryRequest } from "./sender.js";

export interface DeliveryWorkerDeps {
  readonly repository: SeenRepository;
  /** Where attempts are recorded (with the next attempt's job and the analytics row). */
  readonly attempts: AttemptLog;
  readonly send: Sender;
  readonly metrics: SeenMetrics;
  readonly log: Logger;
  /** Aborted when the process stops without grace: in-flight requests end as retryable failures. */
  readonly stopping: AbortSignal;
}

/**
 * Loads deliveries in batches: jobs pg-boss hands over together ask
 * together, and one query answers them all.
 */
function createLoader(repository: SeenRepository) {
  let waiting: Map<string, { resolve: (row: DeliveryRow | undefined) => void; reject: (error: unknown) => void }[]> | undefined;
  return (id: string): Promise<DeliveryRow | undefined> =>
    new Promise((resolve, reject) => {
      if (waiting === undefined) {
        const batch = new Map<string, { resolve: (row: DeliveryRow | undefined) => void; reject: (error: unknown) => void }[]>();
        waiting = batch;
        setImmediate(() => {
          waiting = undefined;
          repository.deliveries([...batch.keys()]).then(
            (rows) => {
              const byId = new Map(rows.map((row) => [row.id, row]));
              for (const [key, callers] of batch) for (const caller of callers) caller.resolve(byId.get(key));
            },
            (error: unknown) => {
              for (const callers of batch.values()) for (const caller of callers) caller.reject(error);
            },
          );
        });
      }
      waiting.set(id, [...(waiting.get(id) ?? []), { resolve, reject }]);
    });
}

/**
 * The handler of `seen.deliver`: one attempt at one api delivery with the
 * integration's current settings. 2xx: delivered. 5xx, 408, 429, timeouts
 * and network errors: the next attempt is a new job after the backoff (or
 * `Retry-After`), until the integration's attempts are used up or, without a
 * limit, the mark's retention ends. Anything else, or the last attempt: dead
 * (the job is dead-lettered; redriving it starts a new round of attempts).
 * Every attempt is recorded with the next job and its analytics row in one
 * transaction, shared with attempts finishing at the same time (group commit).
 */
export function createDeliveryWorker(deps: DeliveryWorkerDeps) {
  const { repository, metrics, log, attempts } = deps;
  const load = createLoader(repository);
  return async function deliver(job: DeliverJob, context: JobContext): Promise<void> {
    let row = await load(job.deliveryId);
    if (row === undefined) return; // cleaned up long ago
    if (row.status === "dead" && row.attempts === job.attempt) {
      // The dead letter of this delivery, redriven by ops: a new round.
      if (!(await repository.revive(row.id, row.attempts))) return;
      row = { ...row, status: "pending", attemptBase: row.attempts };
    } else if (row.status !== "pending" || row.attempts !== job.attempt - 1) {
      return; // a duplicate run, or a job overtaken by another
    }
    const attempt = row.attempts + 1;
    if (row.kind !== "api" || row.enabled !== true || row.url === null) {
      const reason = row.kind === null ? `integration ${row.integration} was removed` : `integration ${row.integration} is disabled or no longer an api integration`;
      if (await repository.cancel(row.id, row.attempts, reason)) metrics.deliveries.inc({ integration: metrics.integration(row.integration), outcome: "cancelled" });
      return;
    }
    const settings = {
      initialBackoffMs: row.initialBackoffMs ?? 1_000,
      maxBackoffMs: row.maxBackoffMs ?? 3_600_000,
    };
    const attemptedAt = new Date();
    const request = deliveryRequest({
      url: row.url,
      idempotencyKey: row.id,
      attempt,
      body: JSON.stringify({ delivery_id: row.id, ...row.body }),
      timeoutMs: row.timeoutMs ?? 5_000,
    });
    const sent = await withAnySignal([context.signal, deps.stopping], (signal) => deps.send(request, signal));

    let outcome: AttemptRecord["outcome"] = sent.verdict;
    let error = sent.error;
    let nextAttemptAt: Date | null = null;
    const inRound = attempt - row.attemptBase;
    const maxAttempts = row.maxAttempts ?? 0;
    if (outcome === "retry") {
      nextAttemptAt = new Date(Date.now() + retryDelayMs({ initialMs: settings.initialBackoffMs, maxMs: settings.maxBackoffMs }, inRound, sent.retryAfterMs));
      if (maxAttempts > 0 && inRound >= maxAttempts) {
        outcome = "dead";
        error = `${error}; gave up after ${inRound} attempt(s)`;
      } else if (maxAttempts === 0 && nextAttemptAt > row.giveUpAt) {
        outcome = "dead";
        error = `${error}; gave up: the mark's retention ends before the next attempt`;
      }
      if (outcome === "dead") nextAttemptAt = null;
    }
    const record: AttemptRecord = {
      deliveryId: row.id,
      attempt,
      integration: row.integration,
      url: row.url,
      httpStatus: sent.httpStatus,
      responseBody: sent.responseBody.toString("utf8"),
      durationMs: sent.durationMs,
      error,
      outcome,
      attemptedAt,
      nextAttemptAt,
    };
    const recorded = await attempts.record({ record, tag: row.tag, itemId: row.itemId });
    if (!recorded) return;
    metrics.deliveries.inc({ integration: metrics.integration(row.integration), outcome });
    if (outcome === "delivered") {
      const seenAt = Date.parse(String(row.body.seen_at));
      if (!Number.isNaN(seenAt)) metrics.latency.observe({ integration: metrics.integration(row.integration) }, (Date.now() - seenAt) / 1000);
    }
    if (outcome === "dead") {
      log.warn({ deliveryId: row.id, integration: row.integration, attempt, error }, "seen delivery failed for good");
      throw new PermanentJobError(`seen delivery ${row.id} to ${row.integration}: ${error}`);
    }
  };
}
