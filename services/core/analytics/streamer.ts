import { Readable } from "node:stream";
import { finished } from "node:stream/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import type { ClickHouse } from "../clickhouse.js";
import type { Logger } from "../logger.js";
import { counter, Gauge, type Registry } from "../metrics.js";
import { Listener } from "../listener.js";
import { withTransaction } from "../postgres.js";
import { ANALYTICS_CHANNEL } from "./appender.js";

export interface StreamerOptions {
  readonly pool: pg.Pool;
  /** URL for the dedicated LISTEN connection. */
  readonly url: string;
  readonly clickhouse: ClickHouse;
  readonly log: Logger;
  readonly metrics: Registry;
  /** Rows per ClickHouse insert (whole chunks, so a batch may exceed it by one chunk's rows). */
  readonly batchRows?: number;
  /** Pause after a partial batch, so a trickle becomes fewer, larger inserts. */
  readonly minIntervalMs?: number;
  /** Fallback wake-up when no NOTIFY arrives. */
  readonly pollIntervalMs?: number;
  /** How long a claimed batch belongs to its streamer before another may take it over. */
  readonly leaseSeconds?: number;
  /** Called after a batch reached ClickHouse and before it is deleted from Postgres (tests). */
  readonly afterInsert?: (batchId: number) => Promise<void> | void;
}

interface Batch {
  readonly id: number;
  readonly stream: string;
  readonly rows: number;
}

/**
 * Backlog of the stream: rows not yet in ClickHouse (waiting, or claimed in a
 * batch not yet confirmed) and the age of the oldest.
 */
export async function analyticsBacklog(pool: pg.Pool): Promise<{ rows: number; lagSeconds: number }> {
  const { rows } = await pool.query<{ rows: number; lag: number | null }>(
    `SELECT ((SELECT coalesce(sum(rows), 0) FROM analytics_outbox) + (SELECT coalesce(sum(rows), 0) FROM analytics_batches))::bigint AS rows,
            extract(epoch FROM clock_timestamp() - least(
              (SELECT appended_at FROM analytics_outbox ORDER BY id LIMIT 1),
              (SELECT min(oldest_appended_at) FROM analytics_batches)))::float8 AS lag`,
  );
  return { rows: rows[0]?.rows ?? 0, lagSeconds: Math.max(0, rows[0]?.lag ?? 0) };
}

/** Deduplication token of a batch: the same for every retry of that batch. */
export const batchToken = (batchId: number): string => `funnel-analytics-batch-${batchId}`;

/**
 * Moves analytics rows from Postgres to ClickHouse, exactly once:
 *
 * 1. claim: one statement moves the oldest chunks of a stream (each the rows
 *    one commit appended) out of the outbox (one streamer claims a stream at
 *    a time) into a leased batch row that holds their text, fixing its
 *    content; a batch is whole chunks up to about `batchRows` rows;
 * 2. insert: the batch goes to ClickHouse as it is, with a deduplication
 *    token derived from the batch id;
 * 3. delete: the batch row goes.
 *
 * A streamer that dies between 2 and 3 leaves a leased batch; when the lease
 * runs out another streamer sends the same rows with the same token and
 * ClickHouse drops the repeat. Rows committed late with lower ids are simply
 * rows still in the outbox: nothing is skipped because nothing is remembered
 * by position.
 */
export class AnalyticsStreamer {
  readonly #options: Required<Omit<StreamerOptions, "afterInsert">> & Pick<StreamerOptions, "afterInsert">;
  readonly #log: Logger;
  #running = false;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #notified = false;
  #listener: Listener | undefined;
  readonly #streamed;
  readonly #failures;

  constructor(options: StreamerOptions) {
    this.#options = {
      batchRows: 5_000,
      minIntervalMs: 200,
      pollIntervalMs: 5_000,
      leaseSeconds: 60,
      ...options,
    };
    this.#log = options.log.child({ component: "analytics-streamer" });
    this.#streamed = counter(options.metrics, "funnel_analytics_streamed_total", "Analytics rows inserted into ClickHouse.", ["stream"]);
    this.#failures = counter(options.metrics, "funnel_analytics_insert_failures_total", "Failed ClickHouse inserts (retried).", ["stream"]);
    const pool = options.pool;
    if (options.metrics.getSingleMetric("funnel_analytics_backlog_rows") === undefined) {
      const lag = new Gauge({ name: "funnel_analytics_lag_seconds", help: "Age of the oldest row not yet in ClickHouse.", registers: [options.metrics] });
      new Gauge({
        name: "funnel_analytics_backlog_rows",
        help: "Analytics rows durable in Postgres and not yet in ClickHouse.",
        registers: [options.metrics],
        async collect(this: Gauge) {
          const backlog = await analyticsBacklog(pool).catch(() => undefined);
          if (backlog === undefined) return;
          this.set(backlog.rows);
          lag.set(backlog.lagSeconds);
        },
      });
    }
  }

  /** Starts listening and streaming in the background. */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    this.#listener = new Listener({
      url: this.#options.url,
      channels: [ANALYTICS_CHANNEL],
      name: "funnel-analytics-listen",
      log: this.#log,
      onNotification: () => this.#notify(),
      // Rows may have arrived while nobody was listening.
      onConnect: () => this.#notify(),
    });
    await this.#listener.start();
    this.#loop = this.#run();
  }

  /** Stops after the batch in progress; rows left behind stream on the next start. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#wake?.();
    await this.#loop;
    await this.#listener?.stop();
    this.#listener = undefined;
  }

  /** Streams until nothing is left (tests, benchmarks, shutdown). */
  async drain(): Promise<number> {
    let total = 0;
    for (;;) {
      const batch = (await this.#takeOverExpired()) ?? (await this.#claim());
      if (batch === undefined) return total;
      await this.#send(batch);
      total += batch.rows;
    }
  }

  #notify(): void {
    this.#notified = true;
    this.#wake?.();
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (this.#running) {
      let batch: Batch | undefined;
      try {
        batch = (await this.#takeOverExpired()) ?? (await this.#claim());
        if (batch !== undefined) await this.#send(batch);
        failures = 0;
      } catch (error) {
        failures += 1;
        const delay = Math.min(30_000, 500 * 2 ** Math.min(failures, 6));
        this.#log.warn({ err: error, retryInMs: delay }, "analytics streaming failed; rows stay in Postgres and will be retried");
        await this.#idle(delay);
        continue;
      }
      if (batch === undefined) await this.#idle(this.#options.pollIntervalMs);
      else if (batch.rows < this.#options.batchRows) await sleep(this.#options.minIntervalMs);
    }
  }

  /** Waits for a NOTIFY (possibly one that came while busy), the timeout, or stop(). */
  async #idle(ms: number): Promise<void> {
    if (!this.#running) return;
    if (this.#notified) {
      this.#notified = false;
      return;
    }
    const controller = new AbortController();
    await Promise.race([
      sleep(ms, undefined, { signal: controller.signal }).catch(() => undefined),
      new Promise<void>((resolve) => (this.#wake = resolve)),
    ]);
    controller.abort();
    this.#wake = undefined;
    this.#notified = false;
  }

  /** Takes over a batch whose streamer died (lease expired). */
  async #takeOverExpired(): Promise<Batch | undefined> {
    const { rows } = await this.#options.pool.query<Batch>(
      `UPDATE analytics_batches SET leased_until = now() + make_interval(secs => $1), attempts = attempts + 1
        WHERE id = (SELECT id FROM analytics_batches WHERE leased_until < now() ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING id, stream, rows`,
      [this.#options.leaseSeconds],
    );
    return rows[0];
  }

  /**
   * Claims the oldest chunks of the stream that has the oldest row: one
   * statement moves them out of the outbox into a leased batch. Streamers
   * claim one stream one at a time (a transaction-scoped advisory lock, held
   * for the claim only): a batch is whole chunks up to about `batchRows` rows,
   * and its size is known only after reading them, so a claim takes what it
   * reads and the next claim, a moment later, reads on from there. Sending
   * batches to ClickHouse still runs side by side.
   */
  async #claim(): Promise<Batch | undefined> {
    const { pool, batchRows, leaseSeconds } = this.#options;
    const { rows: oldest } = await pool.query<{ stream: string }>("SELECT stream FROM analytics_outbox ORDER BY id LIMIT 1");
    const stream = oldest[0]?.stream;
    if (stream === undefined) return undefined;
    return withTransaction(pool, async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [`funnel-analytics-claim:${stream}`]);
      const { rows } = await tx.query<Batch>(
        `WITH picked AS (
           SELECT id, rows FROM analytics_outbox WHERE stream = $1 ORDER BY id LIMIT $2
         ), taken AS (
           -- Whole chunks, while the rows before them are fewer than a batch.
           SELECT id FROM (SELECT id, rows, sum(rows) OVER (ORDER BY id) AS upto FROM picked) p WHERE upto - rows < $2
         ), moved AS (
           DELETE FROM analytics_outbox o USING taken WHERE o.id = taken.id RETURNING o.id, o.rows, o.content, o.appended_at
         )
         INSERT INTO analytics_batches (stream, rows, content, oldest_appended_at, leased_until)
         SELECT $1, sum(rows), string_agg(content, E'\n' ORDER BY id), min(appended_at), now() + make_interval(secs => $3)
           FROM moved HAVING count(*) > 0
         RETURNING id, stream, rows`,
        [stream, batchRows, leaseSeconds],
      );
      return rows[0];
    });
  }

  async #send(batch: Batch): Promise<void> {
    const { pool, clickhouse } = this.#options;
    const { rows } = await pool.query<{ content: string }>("SELECT content FROM analytics_batches WHERE id = $1", [batch.id]);
    const content = rows[0]?.content;
    if (content !== undefined) {
      try {
        // The rows as appended, one JSON object per line, sent as they are.
        const result = await clickhouse.client.exec({
          query: `INSERT INTO ${clickhouse.database}.${batch.stream} FORMAT JSONEachRow`,
          values: Readable.from([`${content}\n`], { objectMode: false }),
          clickhouse_settings: {
            insert_deduplicate: 1,
            insert_deduplication_token: batchToken(batch.id),
            // The views that count rows per minute (series_per_minute) drop a repeated batch too.
            deduplicate_blocks_in_dependent_materialized_views: 1,
            date_time_input_format: "best_effort",
            wait_end_of_query: 1,
          },
        });
        result.stream.resume();
        await finished(result.stream);
      } catch (error) {
        this.#failures.inc({ stream: batch.stream });
        // Let the lease run out sooner so a retry (by anyone) comes after the backoff, not after a minute.
        await pool
          .query("UPDATE analytics_batches SET last_error = $2, leased_until = now() + interval '2 seconds' WHERE id = $1", [
            batch.id,
            (error as Error).message.slice(0, 1000),
          ])
          .catch(() => undefined);
        throw error;
      }
    }
    await this.#options.afterInsert?.(batch.id);
    await pool.query("DELETE FROM analytics_batches WHERE id = $1", [batch.id]);
    this.#streamed.inc({ stream: batch.stream }, batch.rows);
  }
}
