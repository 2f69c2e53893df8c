import type pg from "pg";
import { counter, histogram, type Registry } from "../metrics.js";

/** NOTIFY channel that wakes the streamers when rows were appended. */
export const ANALYTICS_CHANNEL = "funnel_analytics";

/** A row for a ClickHouse table, in the JSON shape of `JSONEachRow`. */
export type AnalyticsRow = Readonly<Record<string, unknown>>;

export interface AppenderOptions {
  readonly pool: pg.Pool;
  readonly metrics: Registry;
  /** Most rows in one commit. */
  readonly maxRows?: number;
  /** Commits in flight at once (each holds one connection); rows gather while all are busy. */
  readonly maxInFlight?: number;
}

interface Pending {
  readonly stream: string;
  readonly row: string;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

const STREAM_NAME = /^[a-z][a-z0-9_]{0,62}$/;

const INSERT = `WITH appended AS (
    INSERT INTO analytics_outbox (stream, row) SELECT * FROM unnest($1::text[], $2::json[]) RETURNING 1
  )
  SELECT pg_notify('${ANALYTICS_CHANNEL}', ''), (SELECT count(*) FROM appended)`;

/**
 * Makes analytics rows durable in Postgres with group commit: concurrent
 * `append` calls share one INSERT (one round trip, one fsync). A row arriving
 * while a connection is free is committed at once; rows arriving while every
 * commit slot is busy gather and go together when one frees, so a group grows
 * with the load and an idle appender adds no delay. Each call resolves only
 * after its row is committed; if the commit fails, every call in it rejects
 * and nothing of it is stored.
 */
export class AnalyticsAppender {
  readonly #pool: pg.Pool;
  readonly #maxRows: number;
  readonly #maxInFlight: number;
  #pending: Pending[] = [];
  #inFlight = 0;
  readonly #flushes = new Set<Promise<void>>();
  readonly #appended;
  readonly #commitRows;
  readonly #commitSeconds;

  constructor(options: AppenderOptions) {
    this.#pool = options.pool;
    this.#maxRows = options.maxRows ?? 1_000;
    this.#maxInFlight = options.maxInFlight ?? 2;
    this.#appended = counter(options.metrics, "funnel_analytics_appended_total", "Analytics rows made durable in Postgres.", ["stream"]);
    this.#commitRows = histogram(options.metrics, "funnel_analytics_commit_rows", "Rows per group commit.", [], [1, 4, 16, 64, 256, 1024, 4096]);
    this.#commitSeconds = histogram(options.metrics, "funnel_analytics_commit_seconds", "Duration of one group commit.");
  }

  /** Appends one row to `stream` (the ClickHouse table); resolves once it is durable. */
  append(stream: string, row: AnalyticsRow): Promise<void> {
    return this.appendMany(stream, [row]);
  }

  /** Appends rows to `stream` in the same group commit; resolves once all are durable. */
  appendMany(stream: string, rows: readonly AnalyticsRow[]): Promise<void> {
    if (!STREAM_NAME.test(stream)) return Promise.reject(new Error(`stream: "${stream}" is not a table name`));
    if (rows.length === 0) return Promise.resolve();
    const encoded = rows.map((row) => JSON.stringify(row));
    return new Promise<void>((resolve, reject) => {
      let left = encoded.length;
      const done = () => {
        left -= 1;
        if (left === 0) resolve();
      };
      for (const row of encoded) this.#pending.push({ stream, row, resolve: done, reject });
      this.#schedule();
    });
  }

  /**
   * Appends rows inside the caller's own transaction (no group commit): they
   * stream to ClickHouse only if that transaction commits.
   */
  async appendInTransaction(tx: pg.ClientBase, stream: string, rows: readonly AnalyticsRow[]): Promise<void> {
    if (!STREAM_NAME.test(stream)) throw new Error(`stream: "${stream}" is not a table name`);
    if (rows.length === 0) return;
    await tx.query(INSERT, [rows.map(() => stream), rows.map((row) => JSON.stringify(row))]);
  }

  #schedule(): void {
    if (this.#inFlight < this.#maxInFlight) this.#flush();
  }

  #flush(): void {
    if (this.#pending.length === 0 || this.#inFlight >= this.#maxInFlight) return;
    const group = this.#pending.splice(0, this.#maxRows);
    this.#inFlight += 1;
    const flush = this.#commit(group).finally(() => {
      this.#inFlight -= 1;
      this.#flushes.delete(flush);
      this.#flush();
    });
    this.#flushes.add(flush);
  }

  async #commit(group: readonly Pending[]): Promise<void> {
    const end = this.#commitSeconds.startTimer();
    try {
      await this.#pool.query(INSERT, [group.map((item) => item.stream), group.map((item) => item.row)]);
    } catch (error) {
      for (const item of group) item.reject(error);
      return;
    } finally {
      end();
    }
    this.#commitRows.observe(group.length);
    const perStream = new Map<string, number>();
    for (const item of group) perStream.set(item.stream, (perStream.get(item.stream) ?? 0) + 1);
    for (const [stream, rows] of perStream) this.#appended.inc({ stream }, rows);
    for (const item of group) item.resolve();
  }

  /** Commits whatever is waiting and waits for every commit in flight. */
  async flush(): Promise<void> {
    while (this.#pending.length > 0 || this.#flushes.size > 0) {
      this.#flush();
      await Promise.allSettled([...this.#flushes]);
    }
  }
}
