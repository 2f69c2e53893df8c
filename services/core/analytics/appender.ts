import type pg from "pg";
import { GroupCommit } from "../group-commit.js";
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

interface AppendedRow {
  readonly stream: string;
  readonly row: string;
}

const STREAM_NAME = /^[a-z][a-z0-9_]{0,62}$/;

/**
 * Appends to the stream from inside a larger statement: the body of a
 * data-modifying `WITH` entry whose `select` yields chunks as
 * `(stream, rows int, content text)`, `content` being `rows` JSON objects one
 * per line (see {@link chunk}). The statement should end by evaluating
 * {@link NOTIFY_APPENDED} when it appended anything.
 */
export const appendFrom = (select: string): string => `INSERT INTO analytics_outbox (stream, rows, content) ${select} RETURNING 1`;

/** Rows as one outbox chunk: JSONEachRow lines. */
export const chunk = (rows: readonly AnalyticsRow[]): string => rows.map((row) => JSON.stringify(row)).join("\n");

/** Wakes the streamers; evaluated by the statement that appends. */
export const NOTIFY_APPENDED = `pg_notify('${ANALYTICS_CHANNEL}', '')`;

const INSERT = `WITH appended AS (${appendFrom("SELECT * FROM unnest($1::text[], $2::int[], $3::text[])")})
  SELECT ${NOTIFY_APPENDED}, (SELECT count(*) FROM appended)`;

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
  readonly #group: GroupCommit<AppendedRow, void>;
  readonly #appended;
  readonly #commitRows;
  readonly #commitSeconds;

  constructor(options: AppenderOptions) {
    this.#pool = options.pool;
    this.#group = new GroupCommit({
      commit: (rows) => this.#commit(rows),
      maxItems: options.maxRows ?? 1_000,
      maxInFlight: options.maxInFlight ?? 2,
    });
    this.#appended = counter(options.metrics, "funnel_analytics_appended_total", "Analytics rows made durable in Postgres.", ["stream"]);
    this.#commitRows = histogram(options.metrics, "funnel_analytics_commit_rows", "Rows per group commit.", [], [1, 4, 16, 64, 256, 1024, 4096]);
    this.#commitSeconds = histogram(options.metrics, "funnel_analytics_commit_seconds", "Duration of one group commit.");
  }

  /** Appends one row to `stream` (the ClickHouse table); resolves once it is durable. */
  append(stream: string, row: AnalyticsRow): Promise<void> {
    return this.appendMany(stream, [row]);
  }

  /** Appends rows to `stream` in the same group commit; resolves once all are durable. */
  async appendMany(stream: string, rows: readonly AnalyticsRow[]): Promise<void> {
    if (!STREAM_NAME.test(stream)) throw new Error(`stream: "${stream}" is not a table name`);
    await this.#group.submitMany(rows.map((row) => ({ stream, row: JSON.stringify(row) })));
  }

  /**
   * Appends rows inside the caller's own transaction (no group commit): they
   * stream to ClickHouse only if that transaction commits.
   */
  async appendInTransaction(tx: pg.ClientBase, stream: string, rows: readonly AnalyticsRow[]): Promise<void> {
    if (!STREAM_NAME.test(stream)) throw new Error(`stream: "${stream}" is not a table name`);
    if (rows.length === 0) return;
    await tx.query(INSERT, [[stream], [rows.length], [chunk(rows)]]);
  }

  async #commit(group: readonly AppendedRow[]): Promise<void[]> {
    const end = this.#commitSeconds.startTimer();
    // One chunk per stream.
    const perStream = new Map<string, string[]>();
    for (const item of group) {
      const lines = perStream.get(item.stream);
      if (lines === undefined) perStream.set(item.stream, [item.row]);
      else lines.push(item.row);
    }
    const streams = [...perStream.keys()];
    try {
      await this.#pool.query(INSERT, [streams, streams.map((stream) => perStream.get(stream)!.length), streams.map((stream) => perStream.get(stream)!.join("\n"))]);
    } finally {
      end();
    }
    this.#commitRows.observe(group.length);
    for (const [stream, lines] of perStream) this.#appended.inc({ stream }, lines.length);
    return group.map(() => undefined);
  }

  /** Commits whatever is waiting and waits for every commit in flight. */
  flush(): Promise<void> {
    return this.#group.flush();
  }
}
