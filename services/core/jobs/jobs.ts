import { randomUUID } from "node:crypto";
import { PgBoss, type Job as BossJob, type JobResult, type JobWithMetadata } from "pg-boss";
import type pg from "pg";
import type { Logger } from "../logger.js";
import { counter, Gauge, histogram, type Registry } from "../metrics.js";
import { deadLetterQueueOf, type QueueDefinition } from "./queue.js";
import { runPeriodically, type Periodic } from "../periodic.js";
import { withTransaction } from "../postgres.js";
import { executorOf, prepareRepeatedStatements, type Queryable } from "./prepared.js";

/** What every job row carries: the typed payload and the optional deadline. */
interface Envelope<T> {
  readonly payload: T;
  /** ISO time by which the job must start (see {@link SendOptions.deadline}). */
  readonly deadline?: string;
}

/** Facts about the running job handed to its handler. */
export interface JobContext {
  readonly id: string;
  readonly queue: string;
  /** 1 for the first attempt. */
  readonly attempt: number;
  readonly groupId: string | undefined;
  /**
   * Aborted when the job expires, when the worker stops without grace, or
   * when the job was failed for a retry because its heartbeat went stale.
   */
  readonly signal: AbortSignal;
}

/** A handler; it must be idempotent because delivery is at-least-once. */
export type JobHandler<T> = (payload: T, context: JobContext) => Promise<void>;

/** Thrown by a handler to dead-letter a job at once, without further retries. */
export class PermanentJobError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PermanentJobError";
  }
}

export interface SendOptions {
  /** Run inside the caller's open transaction: the job exists only if it commits. */
  readonly tx?: Queryable;
  /** Jobs of one group run strictly in order (queue must be `ordered`). */
  readonly groupId?: string;
  /** The job must start by this time; later it is handled by the queue's deadline policy. */
  readonly deadline?: Date;
  readonly startAfter?: Date;
  /** Stable job id (UUID), so a retried send cannot create a second job. */
  readonly id?: string;
}

/** One job of {@link Jobs.sendMany}: its payload and the per-job options of {@link SendOptions}. */
export type BatchJob<T> = Omit<SendOptions, "tx"> & { readonly payload: T };

export interface WorkOptions {
  readonly batchSize?: number;
  readonly localConcurrency?: number;
}

export interface JobsOptions {
  readonly url: string;
  readonly schema: string;
  readonly pool: pg.Pool;
  readonly log: Logger;
  readonly metrics: Registry;
  readonly queues: readonly QueueDefinition<never>[];
  /** Fallback polling when NOTIFY is missed; workers are woken by NOTIFY first. */
  readonly pollingIntervalSeconds?: number;
  /** Connections pg-boss may open. */
  readonly poolMax?: number;
  /** Seconds between checks for expired (lost) jobs. */
  readonly superviseIntervalSeconds?: number;
  /** Seconds between retention clean-ups. */
  readonly maintenanceIntervalSeconds?: number;
  /**
   * Seconds between heartbeats of the jobs this process runs, and between its
   * looks for running jobs whose heartbeat stopped (5 by default).
   */
  readonly heartbeatSeconds?: number;
  /**
   * A running job whose heartbeat is older than this many seconds is held by
   * a process that died: it is failed, and so retried (20 by default).
   */
  readonly staleSeconds?: number;
}

/**
 * pg-boss's own check of the same heartbeats, at twice the stale threshold:
 * a backstop that only acts when no process's {@link Jobs.rescue} runs.
 * pg-boss takes whole seconds from 10 up.
 */
const backstopHeartbeatSeconds = (staleSeconds: number): number => Math.max(10, 2 * staleSeconds);

/** A job as ops see it, across queues. */
export interface JobRecord {
  readonly id: string;
  readonly queue: string;
  readonly state: string;
  readonly retryCount: number;
  readonly retryLimit: number;
  readonly createdOn: Date;
  readonly startedOn: Date | null;
  readonly completedOn: Date | null;
  readonly data: unknown;
  readonly output: unknown;
  readonly groupId: string | null;
  readonly sourceName: string | null;
  readonly sourceId: string | null;
}

/** A job as pg-boss's `findJobs` returns it, as ops see it. */
const toRecord = (job: JobWithMetadata<unknown>): JobRecord => ({
  id: job.id,
  queue: job.name,
  state: job.state,
  retryCount: job.retryCount,
  retryLimit: job.retryLimit,
  createdOn: job.createdOn,
  startedOn: job.startedOn ?? null,
  completedOn: job.completedOn,
  data: job.data,
  output: job.output ?? null,
  groupId: job.singletonKey,
  sourceName: job.sourceName,
  sourceId: job.sourceId,
});

export interface QueueCounts {
  readonly name: string;
  readonly queued: number;
  readonly active: number;
  readonly retrying: number;
  readonly failed: number;
  readonly dead: number;
  readonly oldestWaitingSeconds: number;
  readonly deadLetterQueue: string;
}

/**
 * The typed jobs layer over pg-boss: queues defined once with their policies,
 * typed send (optionally inside the caller's transaction), handlers with
 * deadlines and permanent failures, attempt history, and per-queue counts.
 */
export class Jobs {
  /** Private to this module: every use of pg-boss goes through the methods below. */
  readonly #boss: PgBoss;
  readonly #options: JobsOptions;
  readonly #queues = new Map<string, QueueDefinition<never>>();
  readonly #processed;
  readonly #deadlineMissed;
  readonly #duration;
  readonly #log: Logger;
  readonly #expired;
  readonly #rescued;
  readonly #heartbeatSeconds: number;
  readonly #staleSeconds: number;
  readonly #maintenanceSeconds: number;
  #cleaner: Periodic | undefined;
  #rescuer: Periodic | undefined;
  #started = false;

  constructor(options: JobsOptions) {
    this.#options = options;
    this.#log = options.log.child({ component: "jobs" });
    for (const queue of options.queues) this.#queues.set(queue.name, queue);
    this.#heartbeatSeconds = options.heartbeatSeconds ?? 5;
    this.#staleSeconds = options.staleSeconds ?? 20;
    this.#maintenanceSeconds = options.maintenanceIntervalSeconds ?? 300;
    this.#boss = new PgBoss({
      connectionString: options.url,
      schema: options.schema,
      useListenNotify: true,
      max: options.poolMax ?? 10,
      application_name: "funnel-jobs",
      schedule: false,
      superviseIntervalSeconds: options.superviseIntervalSeconds ?? 30,
      monitorIntervalSeconds: options.superviseIntervalSeconds ?? 30,
      maintenanceIntervalSeconds: this.#maintenanceSeconds,
    });
    prepareRepeatedStatements(this.#boss.getDb());
    this.#boss.on("error", (error) => this.#log.error({ err: error }, "pg-boss error"));
    this.#boss.on("warning", (warning) => this.#log.warn({ data: warning.data }, warning.message));
    const registry = options.metrics;
    this.#processed = counter(registry, "funnel_jobs_processed_total", "Job attempts by queue and outcome.", ["queue", "outcome"]);
    this.#deadlineMissed = counter(registry, "funnel_jobs_deadline_missed_total", "Jobs that could not start before their deadline.", ["queue", "action"]);
    this.#duration = histogram(registry, "funnel_jobs_duration_seconds", "Handler run time.", ["queue"]);
    this.#expired = counter(registry, "funnel_jobs_expired_unprocessed_total", "Jobs dropped because they waited past their retention without running.", ["queue"]);
    this.#rescued = counter(registry, "funnel_jobs_rescued_total", "Running jobs failed for a retry because the process holding them stopped heartbeating.", ["queue"]);
    // Both gauges are filled by one query per scrape.
    let scrape: { at: number; counts: Promise<QueueCounts[]> } | undefined;
    const readCounts = (): Promise<QueueCounts[]> => {
      if (scrape === undefined || Date.now() - scrape.at > 1_000) {
        scrape = { at: Date.now(), counts: this.counts().catch((): QueueCounts[] => []) };
      }
      return scrape.counts;
    };
    new Gauge({
      name: "funnel_jobs_oldest_waiting_seconds",
      help: "Age of the oldest job ready to start, per queue.",
      labelNames: ["queue"],
      registers: [registry],
      async collect(this: Gauge<"queue">) {
        for (const queue of await readCounts()) this.set({ queue: queue.name }, queue.oldestWaitingSeconds);
      },
    });
    new Gauge({
      name: "funnel_jobs",
      help: "Jobs per queue and state (queued, active, retrying, failed, dead).",
      labelNames: ["queue", "state"],
      registers: [registry],
      async collect(this: Gauge<"queue" | "state">) {
        for (const queue of await readCounts()) {
          for (const state of ["queued", "active", "retrying", "failed", "dead"] as const) {
            this.set({ queue: queue.name, state }, queue[state]);
          }
        }
      },
    });
  }

  /** Starts pg-boss (installing its schema) and creates or updates every queue. */
  async start(): Promise<void> {
    await this.#boss.start();
    this.#started = true;
    for (const queue of this.#queues.values()) await this.#ensureQueue(queue);
    const every = this.#maintenanceSeconds * 1000;
    this.#cleaner = runPeriodically(every, () => this.#dropExpired(), (error) => this.#log.warn({ err: error }, "job cleanup failed"));
    this.#rescuer = runPeriodically(this.#heartbeatSeconds * 1000, () => this.#rescue(), (error) => this.#log.warn({ err: error }, "rescue of jobs of dead processes failed"));
  }

  /**
   * Fails the running jobs whose heartbeat is older than the stale threshold,
   * so that they retry: the process holding them died (SIGKILL, a lost
   * machine) and will neither finish nor fail them, and their expiry may be
   * many minutes away. Each such failure counts as an attempt against the
   * queue's retry limit, as any failure does, so a job that kills every
   * process running it ends as a dead letter instead of looping. Every
   * process runs this; locked rows are skipped, so processes rescuing at the
   * same time share the work.
   */
  async #rescue(): Promise<void> {
    const schema = this.#options.schema;
    const lost = await withTransaction(this.#options.pool, async (tx) => {
      // A direct read: no pg-boss call finds running jobs by the age of their heartbeat (its own
      // check, `supervise`, acts at the queue's heartbeatSeconds, the backstop set below), and the
      // rows must stay locked until pg-boss's `fail`, in this transaction, has retried them.
      // pg-boss writes heartbeat_on on fetch and while the handler runs, with its own clock (job_now).
      const { rows } = await tx.query<{ id: string; name: string; retryCount: number; silentSeconds: number }>(
        `SELECT id, name, retry_count AS "retryCount", extract(epoch FROM ${schema}.job_now() - heartbeat_on)::float8 AS "silentSeconds"
           FROM ${schema}.job
          WHERE name = ANY($1) AND state = 'active' AND heartbeat_seconds IS NOT NULL
            AND heartbeat_on < ${schema}.job_now() - $2 * interval '1 second'
          LIMIT 1000
          FOR UPDATE SKIP LOCKED`,
        [[...this.#queues.keys()], this.#staleSeconds],
      );
      const byQueue = new Map<string, typeof rows>();
      for (const row of rows) byQueue.set(row.name, [...(byQueue.get(row.name) ?? []), row]);
      // Fenced to the attempt read above and run in this transaction, which holds the rows' locks.
      for (const [name, jobs] of byQueue) {
        await this.#boss.fail(
          name,
          jobs.map((job) => ({ id: job.id, retryCount: job.retryCount })),
          { message: "the worker process stopped heartbeating" },
          { db: executorOf(tx) },
        );
      }
      if (rows.length > 0) {
        await tx.query(
          `INSERT INTO job_failures (job_id, queue, attempt, error)
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[])
           ON CONFLICT (job_id, attempt) DO UPDATE SET error = EXCLUDED.error, failed_at = now()`,
          [
            rows.map((row) => row.id),
            rows.map((row) => row.name),
            rows.map((row) => row.retryCount + 1),
            rows.map((row) => `the worker process stopped heartbeating (last heartbeat ${Math.round(row.silentSeconds)} s ago)`),
          ],
        );
      }
      return rows;
    });
    for (const job of lost) {
      this.#rescued.inc({ queue: job.name });
      this.#log.warn(
        { queue: job.name, jobId: job.id, attempt: job.retryCount + 1, silentSeconds: Math.round(job.silentSeconds) },
        "failed a job for a retry: the process running it stopped heartbeating",
      );
    }
  }

  /**
   * Drops jobs that waited past their queue's retention without ever running,
   * counting them per queue. pg-boss's maintenance removes finished jobs after
   * `keepCompletedSeconds` (the queue's `deleteAfterSeconds`), and would drop
   * these too, silently: it is given the retention plus
   * {@link #retentionGraceSeconds}, so this drop comes first. A direct delete:
   * no pg-boss call selects waiting jobs by their retention (`findJobs` would
   * read every waiting job of the queue, payload included, to find the
   * expired ones).
   */
  async #dropExpired(): Promise<void> {
    const { rows } = await this.#options.pool.query<{ name: string; n: number }>(
      `WITH dropped AS (
         DELETE FROM ${this.#options.schema}.job
          WHERE name = ANY($1) AND state IN ('created', 'retry') AND keep_until < now() + $2 * interval '1 second'
          RETURNING name
       )
       SELECT name, count(*)::int AS n FROM dropped GROUP BY name`,
      [this.queueNames(), this.#retentionGraceSeconds],
    );
    for (const row of rows) {
      this.#expired.inc({ queue: row.name }, row.n);
      this.#log.warn({ queue: row.name, jobs: row.n }, "dropped jobs that were never processed within their retention");
    }
  }

  /**
   * What pg-boss's retention of a waiting job exceeds the queue's by: two
   * rounds of {@link #dropExpired}, which counts what it drops.
   */
  get #retentionGraceSeconds(): number {
    return 2 * this.#maintenanceSeconds;
  }

  async #ensureQueue(queue: QueueDefinition<never>): Promise<void> {
    const dead = deadLetterQueueOf(queue.name);
    const deadOptions = {
      retentionSeconds: queue.deadLetterRetentionSeconds + this.#retentionGraceSeconds,
      deleteAfterSeconds: queue.keepCompletedSeconds,
      notify: false,
    };
    const options = {
      retryLimit: queue.retry.limit,
      retryDelay: queue.retry.delay,
      retryBackoff: queue.retry.backoff,
      // pg-boss accepts a maximum delay only with backoff.
      ...(queue.retry.backoff && queue.retry.maxDelay !== undefined ? { retryDelayMax: queue.retry.maxDelay } : {}),
      expireInSeconds: queue.expireInSeconds,
      heartbeatSeconds: backstopHeartbeatSeconds(this.#staleSeconds),
      retentionSeconds: queue.retentionSeconds + this.#retentionGraceSeconds,
      deleteAfterSeconds: queue.keepCompletedSeconds,
      deadLetter: dead,
      notify: true,
    };
    if ((await this.#boss.getQueue(dead)) === null) await this.#boss.createQueue(dead, deadOptions);
    else await this.#boss.updateQueue(dead, deadOptions);
    if ((await this.#boss.getQueue(queue.name)) === null) {
      await this.#boss.createQueue(queue.name, { ...options, policy: queue.ordered ? "key_strict_fifo" : "standard" });
    } else {
      await this.#boss.updateQueue(queue.name, options);
    }
  }

  queue(name: string): QueueDefinition<never> {
    const queue = this.#queues.get(name);
    if (queue === undefined) throw new Error(`unknown queue "${name}"`);
    return queue;
  }

  /** Names of every queue, each followed by its dead-letter queue. */
  queueNames(): string[] {
    return [...this.#queues.keys()].sort().flatMap((name) => [name, deadLetterQueueOf(name)]);
  }

  /**
   * Saves a job. With `tx` the job is written inside the caller's transaction:
   * rolled back means it never existed. Returns the job id.
   */
  async send<T>(queue: QueueDefinition<T>, payload: T, options: SendOptions = {}): Promise<string> {
    const { data, options: jobOptions } = this.#job(queue, { ...options, payload });
    const tx = options.tx;
    const id = await this.#boss.send(queue.name, data, { ...(tx !== undefined ? { db: executorOf(tx) } : {}), ...jobOptions });
    if (id === null) throw new Error(`queue ${queue.name} refused the job (duplicate id or singleton)`);
    return id;
  }

  /**
   * Saves many jobs of one queue with one statement; each job is stored
   * exactly as {@link send} stores it. With `tx` they are written inside the
   * caller's transaction. Returns the job ids in the order of `jobs`; throws if
   * any job was refused (duplicate id or singleton), in which case the caller
   * must roll back, since the others were stored.
   */
  async sendMany<T>(queue: QueueDefinition<T>, jobs: readonly BatchJob<T>[], options: { readonly tx?: Queryable } = {}): Promise<string[]> {
    if (jobs.length === 0) return [];
    // Ids are chosen here so the answer lines up with `jobs` and a refused job is noticed.
    const rows = jobs.map((job) => {
      const { data, options: jobOptions } = this.#job(queue, job);
      return { ...jobOptions, id: jobOptions.id ?? randomUUID(), data };
    });
    const tx = options.tx;
    const inserted = await this.#boss.insert(queue.name, rows, { returnId: true, ...(tx !== undefined ? { db: executorOf(tx) } : {}) });
    const stored = new Set(inserted ?? []);
    const refused = rows.filter((row) => !stored.has(row.id));
    if (refused.length > 0) throw new Error(`queue ${queue.name} refused ${refused.length} of ${rows.length} jobs (duplicate id or singleton)`);
    return rows.map((row) => row.id);
  }

  /** The stored form of one job, shared by send and sendMany: the envelope and the pg-boss options. */
  #job<T>(queue: QueueDefinition<T>, job: BatchJob<T>): { data: Envelope<T>; options: { singletonKey?: string; startAfter?: string; id?: string } } {
    const definition = this.queue(queue.name);
    if (definition.ordered && job.groupId === undefined) {
      throw new Error(`queue ${queue.name} is ordered: send needs a groupId`);
    }
    return {
      data: { payload: job.payload, ...(job.deadline !== undefined ? { deadline: job.deadline.toISOString() } : {}) },
      options: {
        ...(job.groupId !== undefined ? { singletonKey: job.groupId } : {}),
        ...(job.startAfter !== undefined ? { startAfter: job.startAfter.toISOString() } : {}),
        ...(job.id !== undefined ? { id: job.id } : {}),
      },
    };
  }

  /**
   * Stops this process's handlers of `queue`: fetches no more and waits for
   * the running ones. After `graceMs` it aborts `inFlight`, which the
   * handlers watch, so that what they still wait for ends (as a retryable
   * failure) and the wait ends too.
   */
  async stopWorking<T>(queue: QueueDefinition<T>, options: { graceMs: number; inFlight: AbortController }): Promise<void> {
    const abort = setTimeout(() => options.inFlight.abort(), options.graceMs);
    try {
      await this.#boss.offWork(queue.name, { wait: true });
    } finally {
      clearTimeout(abort);
    }
  }

  /** Registers the handler of `queue` in this process. */
  async work<T>(queue: QueueDefinition<T>, handler: JobHandler<T>, options: WorkOptions = {}): Promise<string> {
    const definition = this.queue(queue.name);
    const polling = this.#options.pollingIntervalSeconds ?? 10;
    return this.#boss.work(
      queue.name,
      {
        batchSize: options.batchSize ?? definition.batchSize,
        localConcurrency: options.localConcurrency ?? definition.localConcurrency,
        perJobResults: true,
        // A full batch means more jobs are likely waiting (a backlog whose
        // NOTIFYs came while every fetch loop was busy): fetch again at once
        // instead of sleeping until the next poll.
        burstWhenBatchFull: true,
        pollingIntervalSeconds: polling,
        notifyPollingIntervalSeconds: polling,
        // pg-boss refreshes the heartbeat of a batch's jobs while its handler runs.
        heartbeatRefreshSeconds: this.#heartbeatSeconds,
      },
      (jobs: BossJob<Envelope<T>>[]) => Promise.all(jobs.map((job) => this.#run(definition, job, handler))),
    );
  }

  async #run<T>(queue: QueueDefinition<never>, job: BossJob<Envelope<T>>, handler: JobHandler<T>): Promise<JobResult> {
    const deadline = job.data.deadline;
    if (deadline !== undefined && Date.parse(deadline) < Date.now() && queue.onDeadline !== "run") {
      this.#deadlineMissed.inc({ queue: queue.name, action: queue.onDeadline });
      this.#log.warn({ queue: queue.name, jobId: job.id, deadline }, "job missed its deadline");
      if (queue.onDeadline === "discard") return { id: job.id, status: "completed", output: { skipped: "deadline" } };
      await this.#recordFailure(queue.name, job, `deadline ${deadline} passed before the job could start`);
      return { id: job.id, status: "deadletter", output: { message: `deadline ${deadline} passed`, deadline } };
    }
    const end = this.#duration.startTimer({ queue: queue.name });
    try {
      await handler(job.data.payload, {
        id: job.id,
        queue: queue.name,
        attempt: job.retryCount + 1,
        groupId: job.groupId ?? undefined,
        signal: job.signal,
      });
      this.#processed.inc({ queue: queue.name, outcome: "completed" });
      return { id: job.id, status: "completed" };
    } catch (error) {
      const permanent = error instanceof PermanentJobError;
      const message = error instanceof Error ? error.message : String(error);
      this.#processed.inc({ queue: queue.name, outcome: permanent ? "dead" : "failed" });
      this.#log.warn({ queue: queue.name, jobId: job.id, attempt: job.retryCount + 1, err: error }, "job attempt failed");
      await this.#recordFailure(queue.name, job, message);
      return { id: job.id, status: permanent ? "deadletter" : "failed", output: { message } };
    } finally {
      end();
    }
  }

  async #recordFailure(queue: string, job: BossJob<unknown>, error: string): Promise<void> {
    await this.#options.pool
      .query(
        `INSERT INTO job_failures (job_id, queue, attempt, error) VALUES ($1, $2, $3, $4)
         ON CONFLICT (job_id, attempt) DO UPDATE SET error = EXCLUDED.error, failed_at = now()`,
        [job.id, queue, job.retryCount + 1, error.slice(0, 4000)],
      )
      .catch((failure: unknown) => this.#log.warn({ err: failure }, "could not record a job failure"));
  }

  /**
   * Counts of every queue by state, read from pg-boss's job table. A direct
   * read: pg-boss's `getQueues`/`getQueueStats` serve counts its monitor
   * cached up to `monitorIntervalSeconds` earlier (a job sent or dead-lettered
   * just now would not show), have no count of jobs waiting for a retry, and
   * give the oldest ready job's wait only when `persistQueueStats` records a
   * snapshot of every queue on each pass.
   */
  async counts(): Promise<QueueCounts[]> {
    const schema = this.#options.schema;
    const { rows } = await this.#options.pool.query<{
      name: string;
      created: number;
      retry: number;
      active: number;
      failed: number;
      oldest: number | null;
    }>(
      `SELECT q.name,
              count(j.id) FILTER (WHERE j.state = 'created')::int AS created,
              count(j.id) FILTER (WHERE j.state = 'retry')::int AS retry,
              count(j.id) FILTER (WHERE j.state = 'active')::int AS active,
              count(j.id) FILTER (WHERE j.state = 'failed')::int AS failed,
              extract(epoch FROM now() - min(j.created_on) FILTER (WHERE j.state IN ('created', 'retry') AND j.start_after <= now()))::float8 AS oldest
         FROM ${schema}.queue q
         -- Finished jobs (kept a day for inspection) count towards nothing here.
         LEFT JOIN ${schema}.job j ON j.name = q.name AND j.state IN ('created', 'retry', 'active', 'failed')
        WHERE q.name = ANY($1)
        GROUP BY q.name`,
      [this.queueNames()],
    );
    const byName = new Map(rows.map((row) => [row.name, row]));
    return this.queueNames().map((name) => {
      const row = byName.get(name);
      const isDead = name.endsWith(".dead");
      const dead = isDead ? undefined : byName.get(deadLetterQueueOf(name));
      // A dead letter waits in its queue's `created` state for a redrive that may never come: it
      // is counted as dead only, so it neither looks like work queued nor ages "oldest waiting".
      return {
        name,
        queued: isDead ? 0 : (row?.created ?? 0) + (row?.retry ?? 0),
        active: row?.active ?? 0,
        retrying: isDead ? 0 : (row?.retry ?? 0),
        failed: row?.failed ?? 0,
        dead: isDead ? (row?.created ?? 0) : (dead?.created ?? 0),
        oldestWaitingSeconds: isDead ? 0 : (row?.oldest ?? 0),
        deadLetterQueue: isDead ? "" : deadLetterQueueOf(name),
      };
    });
  }

  /**
   * Lists jobs by queue (all when empty) and state, newest first; `after` is
   * the last job of the previous page. A direct read: pg-boss's `findJobs`
   * reads one queue, oldest first, in every state.
   */
  async list(queue: string, state: string, limit: number, after?: { createdUs: string; id: string }): Promise<(JobRecord & { createdUs: string })[]> {
    const names = queue === "" ? this.queueNames() : [queue];
    const { rows } = await this.#options.pool.query<JobRecord & { createdUs: string }>(
      `SELECT id, name AS queue, state, retry_count AS "retryCount", retry_limit AS "retryLimit",
              created_on AS "createdOn", started_on AS "startedOn", completed_on AS "completedOn",
              data, output, singleton_key AS "groupId", source_name AS "sourceName", source_id AS "sourceId",
              (extract(epoch FROM created_on) * 1000000)::bigint::text AS "createdUs"
         FROM ${this.#options.schema}.job
        WHERE name = ANY($1) AND state = $2
          AND ($4::bigint IS NULL OR (created_on, id) < ('epoch'::timestamptz + $4 * interval '1 microsecond', $5::uuid))
        ORDER BY created_on DESC, id DESC LIMIT $3`,
      [names, state, limit, after?.createdUs ?? null, after?.id ?? null],
    );
    return rows;
  }

  /** Finds one job by id in any queue, with its failure history. */
  async get(id: string): Promise<(JobRecord & { history: { attempt: number; error: string; failedAt: Date }[] }) | null> {
    const queue = (await this.#queuesOf([id])).get(id);
    const [found] = queue === undefined ? [] : await this.#boss.findJobs<unknown>(queue, { id });
    if (found === undefined) return null;
    const job = toRecord(found);
    const { rows: history } = await this.#options.pool.query<{ attempt: number; error: string; failedAt: Date }>(
      `SELECT attempt, error, failed_at AS "failedAt" FROM job_failures WHERE job_id = ANY($1) ORDER BY failed_at, attempt`,
      [[job.id, ...(job.sourceId !== null ? [job.sourceId] : [])]],
    );
    return { ...job, history };
  }

  /**
   * Queue of each id among `ids`; ids not found are absent. A direct read:
   * every pg-boss call on a job needs its queue's name first.
   */
  async #queuesOf(ids: readonly string[]): Promise<Map<string, string>> {
    const { rows } = await this.#options.pool.query<{ id: string; name: string }>(
      `SELECT id, name FROM ${this.#options.schema}.job WHERE id = ANY($1::uuid[])`,
      [ids],
    );
    return new Map(rows.map((row) => [row.id, row.name]));
  }

  /** Puts failed jobs back to work. */
  async retry(ids: readonly string[]): Promise<{ done: string[]; notFound: string[] }> {
    return this.#byQueue(ids, (queue, group) => this.#boss.retry(queue, group));
  }

  /** Cancels jobs that have not finished. */
  async cancel(ids: readonly string[]): Promise<{ done: string[]; notFound: string[] }> {
    return this.#byQueue(ids, (queue, group) => this.#boss.cancel(queue, group));
  }

  async #byQueue(
    ids: readonly string[],
    action: (queue: string, ids: string[]) => Promise<unknown>,
  ): Promise<{ done: string[]; notFound: string[] }> {
    const valid = ids.filter((id) => /^[0-9a-f-]{36}$/i.test(id));
    const queues = await this.#queuesOf(valid);
    const grouped = new Map<string, string[]>();
    for (const [id, queue] of queues) grouped.set(queue, [...(grouped.get(queue) ?? []), id]);
    for (const [queue, group] of grouped) await action(queue, group);
    return { done: [...queues.keys()], notFound: ids.filter((id) => !queues.has(id)) };
  }

  /**
   * Replays dead letters of `queue` (a source queue or its `.dead` queue) back
   * to the queues they came from: the listed ids, or up to `limit` (0 = all).
   */
  async redrive(queue: string, options: { limit?: number; ids?: readonly string[] } = {}): Promise<number> {
    const dead = queue.endsWith(".dead") ? queue : deadLetterQueueOf(queue);
    const ids = options.ids !== undefined && options.ids.length > 0 ? { ids: [...options.ids] } : {};
    if (options.limit !== undefined && options.limit > 0) return this.#boss.redrive(dead, { limit: options.limit, ...ids });
    // pg-boss moves at most `limit` (default 1000) per call: repeat until drained.
    const page = 1000;
    let total = 0;
    for (;;) {
      const moved = await this.#boss.redrive(dead, { limit: page, ...ids });
      total += moved;
      if (moved < page) return total;
    }
  }

  /** Stops fetching, waits for running handlers (up to `timeoutMs`), closes connections. */
  async stop(timeoutMs: number): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    await this.#rescuer?.stop();
    await this.#cleaner?.stop();
    await this.#boss.stop({ graceful: true, timeout: timeoutMs, close: true });
  }
}
