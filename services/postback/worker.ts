import { withAnySignal } from "../core/abort.js";
import { PermanentJobError, type JobContext } from "../core/jobs/jobs.js";
import type { Logger } from "../core/logger.js";
import type { AttemptLog } from "./attempt-log.js";
import { retryDelayMs } from "../core/outbound/backoff.js";
import type { Sender } from "../core/outbound/send.js";
import type { PostbackMetrics } from "./metrics.js";
import type { PartnerDirectory } from "./partner-directory.js";
import type { DeliverJob } from "./queue.js";
import { renderRequest, valuesOf } from "./render.js";
import type { AttemptOutcome, DeliveryRow, PostbackRepository } from "./repository.js";

export interface DeliveryWorkerDeps {
  readonly repository: PostbackRepository;
  readonly directory: PartnerDirectory;
  readonly send: Sender;
  readonly attempts: AttemptLog;
  readonly metrics: PostbackMetrics;
  readonly log: Logger;
  /** Aborted when the process stops without grace: in-flight requests end as retryable failures. */
  readonly stopping: AbortSignal;
}

/**
 * Loads postbacks in batches: the jobs pg-boss hands over together ask
 * together, and one query answers them all.
 */
function createLoader(repository: PostbackRepository) {
  let waiting: Map<string, ((row: DeliveryRow | undefined) => void)[]> | undefined;
  let failures: ((error: unknown) => void)[] = [];
  return (id: string): Promise<DeliveryRow | undefined> =>
    new Promise((resolve, reject) => {
      if (waiting === undefined) {
        const batch = new Map<string, ((row: DeliveryRow | undefined) => void)[]>();
        const rejects: ((error: unknown) => void)[] = [];
        waiting = batch;
        failures = rejects;
        setImmediate(() => {
          waiting = undefined;
          repository.getDeliveries([...batch.keys()]).then(
            (rows) => {
              const byId = new Map(rows.map((row) => [row.id, row]));
              for (const [key, resolvers] of batch) for (const done of resolvers) done(byId.get(key));
            },
            (error: unknown) => {
              for (const fail of rejects) fail(error);
            },
          );
        });
      }
      waiting.set(id, [...(waiting.get(id) ?? []), resolve]);
      failures.push(reject);
    });
}

/**
 * The handler of `postback.deliver`: one attempt at one postback, with the
 * partner's current configuration. Decides what comes next from the answer:
 * 2xx delivered; 5xx, 408, 429, timeouts and network errors retried (a new
 * job after the backoff, or `Retry-After`) until the partner's attempts are
 * used up; anything else, or the last attempt, dead (the job dead-letters).
 */
export function createDeliveryWorker(deps: DeliveryWorkerDeps) {
  const load = createLoader(deps.repository);
  return async function deliver(job: DeliverJob, context: JobContext): Promise<void> {
    const row = await load(job.deliveryId);
    // Stale: a duplicate run of a recorded attempt, or a retry overtaken by a replay.
    if (row === undefined || row.generation !== job.generation || row.attempts !== job.attempt - 1) return;
    if (row.status !== "pending" && row.status !== "retrying") return;
    const partner = await deps.directory.get(row.partnerId);
    const event = partner?.config.events[row.event];
    const templates = partner?.templates[row.event];
    if (partner === undefined || !partner.config.enabled || event === undefined || !event.enabled || templates === undefined) {
      const reason = partner === undefined ? `partner ${row.partnerId} was removed` : `partner ${row.partnerId} or its ${row.event} postback is disabled`;
      if (await deps.repository.cancelDelivery(row.id, row.generation, reason)) deps.metrics.cancelled.inc({ partner: deps.metrics.partner(row.partnerId) });
      return;
    }
    const config = partner.config;
    const request = renderRequest(event, templates, valuesOf(row), config.timeoutMs);
    const attemptedAt = new Date();
    const sent = await withAnySignal([context.signal, deps.stopping], (signal) => deps.send(request, signal));
    deps.metrics.requestSeconds.observe({ partner: deps.metrics.partner(row.partnerId) }, sent.durationMs / 1000);

    const budgetEnd = row.attemptBase + config.retry.maxAttempts;
    let outcome: AttemptOutcome = sent.verdict;
    let error = sent.error;
    if (outcome === "retry" && job.attempt >= budgetEnd) {
      outcome = "dead";
      error = `${error}; gave up after ${job.attempt - row.attemptBase} attempt(s)`;
    }
    const nextAttemptAt =
      outcome === "retry" ? new Date(Date.now() + retryDelayMs({ initialMs: config.retry.initialDelayMs, maxMs: config.retry.maxDelayMs }, job.attempt - row.attemptBase, sent.retryAfterMs)) : null;
    const recorded = await deps.attempts.record({
      deliveryId: row.id,
      attempt: job.attempt,
      generation: row.generation,
      partnerId: row.partnerId,
      event: row.event,
      stag: row.stag,
      clickId: row.clickId,
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
    deps.metrics.attempts.inc({ partner: deps.metrics.partner(row.partnerId), outcome });
    if (outcome === "dead") {
      deps.log.warn({ deliveryId: row.id, partner: row.partnerId, event: row.event, attempt: job.attempt, error }, "postback failed for good");
      throw new PermanentJobError(`postback ${row.id} to ${row.partnerId}: ${error}`);
    }
  };
}
