import type pg from "pg";
import { GroupCommit } from "../group-commit.js";
import { afterCommit, isTransaction, type Transaction } from "../postgres.js";
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

/** Shortest time between two NOTIFYs that wake the streamers. */
const NOTIFY_INTERVAL_MS = 50;

interface AppendedRow {
  readonly stream: string;
  readonly row: string;
}

const STREAM_NAME = /^[a-z][a-z0-9_]{0,62}$/;

/** A stream is a ClickHouse table of Funnel's: its name goes into SQL. */
function assertStream(stream: string): void {
  if (!STREAM_NAME.test(stream)) throw new Error(`stream: "${stream}" is not a table name`);
}

/**
 * Rows to append from inside a larger statement, described in SQL: one chunk
 * per stream of the rows of `from`.
 */
export interface AppendSource {
  /** The relation holding the rows, usually an entry of the statement's `WITH`. */
  readonly from: string;
  /** Expression naming each row's stream (its ClickHouse table). */
  readonly stream: string;
  /** Expression giving each row as one line of JSON text (`JSONEachRow`). */
  readonly line: string;
  /** Expression ordering the rows within their chunk. */
  readonly order: string;
}

/**
 * The outbox: one row per chunk, a chunk being `rows` rows of one stream as
 * JSONEachRow lines (`content`). Only this module writes it.
 */
const INSERT_CHUNKS = "INSERT INTO analytics_outbox (stream, rows, content)";

/** The chunks of a described source, one per stream; no rows, no chunk. */
const insertFrom = (source: AppendSource): string =>
  `${INSERT_CHUNKS}
     SELECT ${source.stream}, count(*)::int, string_agg(${source.line}, E'\\n' ORDER BY ${source.order}) FROM ${source.from} GROUP BY 1`;

/** The SQL text of each statement; only {@link AnalyticsAppender.run} runs them. */
const statementTexts = new WeakMap<AnalyticsStatement, string>();

/**
 * A statement that appends analytics rows as one of its parts, declared with
 * {@link analyticsStatement} and run with {@link AnalyticsAppender.run}, which
 * wakes the streamers once it committed.
 */
export interface AnalyticsStatement {
  /** Name of the prepared statement (parsed once per connection). */
  readonly name: string;
}

/**
 * Declares a statement that appends to analytics from inside: `build` gets
 * `append`, which turns an {@link AppendSource} into the body of a
 * data-modifying `WITH` entry, and returns the statement's SQL.
 */
export function analyticsStatement(name: string, build: (append: (source: AppendSource) => string) => string): AnalyticsStatement {
  const statement: AnalyticsStatement = Object.freeze({ name });
  statementTexts.set(statement, build(insertFrom));
  return statement;
}

/** Rows as one outbox chunk: JSONEachRow lines. */
const chunk = (rows: readonly AnalyticsRow[]): string => rows.map((row) => JSON.stringify(row)).join("\n");

const NOTIFY = `SELECT pg_notify('${ANALYTICS_CHANNEL}', '')`;

const INSERT = `${INSERT_CHUNKS} SELECT * FROM unnest($1::text[], $2::int[], $3::text[])`;

/**
 * Tells the streamers that rows were committed: a NOTIFY sent after the
 * commit, on its own, at most one per {@link NOTIFY_INTERVAL_MS} (later commits in the
 * window share the next one). Not a NOTIFY inside each appending
 * transaction: Postgres would wake every listening backend at each commit
 * and serialize the commits on its notification queue, which costs CPU and
 * commit latency under many small commits. Streamers
 * pause between partial batches longer than the interval, so nothing waits
 * longer for it; a NOTIFY lost with its connection is made up by their
 * periodic poll.
 */
class StreamWaker {
  readonly #pool: pg.Pool;
  #lastSent = -Infinity;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  /**
   * A NOTIFY sent before this commit (even one still on its way) may have
   * been heard before the commit was visible, so a commit always gets one
   * sent after it: now, or when the interval since the last one has passed.
   */
  committed(): void {
    if (this.#stopped || this.#timer !== undefined) return;
    const wait = this.#lastSent + NOTIFY_INTERVAL_MS - performance.now();
    if (wait <= 0) {
      this.#send();
      return;
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#send();
    }, wait);
    this.#timer.unref();
  }

  #send(): void {
    this.#lastSent = performance.now();
    // A hint only: the streamers poll.
    this.#pool.query(NOTIFY).catch(() => undefined);
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

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
  readonly #waker: StreamWaker;

  constructor(options: AppenderOptions) {
    this.#pool = options.pool;
    this.#group = new GroupCommit({
      name: "analytics_append",
      metrics: options.metrics,
      commit: (rows) => this.#commit(rows),
      maxItems: options.maxRows ?? 1_000,
      maxInFlight: options.maxInFlight ?? 2,
    });
    this.#appended = counter(options.metrics, "funnel_analytics_appended_total", "Analytics rows made durable in Postgres.", ["stream"]);
    this.#commitRows = histogram(options.metrics, "funnel_analytics_commit_rows", "Rows per group commit.", [], [1, 4, 16, 64, 256, 1024, 4096]);
    this.#commitSeconds = histogram(options.metrics, "funnel_analytics_commit_seconds", "Duration of one group commit.");
    this.#waker = new StreamWaker(options.pool);
  }

  /** Appends one row to `stream` (the ClickHouse table); resolves once it is durable. */
  async append(stream: string, row: AnalyticsRow): Promise<void> {
    assertStream(stream);
    await this.#group.submit({ stream, row: JSON.stringify(row) });
  }

  /** Appends rows to `stream` in the same group commit; resolves once all are durable. */
  async appendMany(stream: string, rows: readonly AnalyticsRow[]): Promise<void> {
    assertStream(stream);
    await this.#group.submitMany(rows.map((row) => ({ stream, row: JSON.stringify(row) })));
  }

  /**
   * Appends rows inside the caller's own transaction (no group commit): they
   * stream to ClickHouse only if that transaction commits, and the streamers
   * are woken once it has.
   */
  async appendInTransaction(tx: Transaction, stream: string, rows: readonly AnalyticsRow[]): Promise<void> {
    assertStream(stream);
    if (rows.length === 0) return;
    // Registered first: a client outside withTransaction is refused before it stores anything.
    afterCommit(tx, this.#wake);
    await tx.query(INSERT, [[stream], [rows.length], [chunk(rows)]]);
  }

  /**
   * Runs a statement declared with {@link analyticsStatement} on `db` and
   * wakes the streamers once it committed: right away on the pool, after
   * COMMIT inside `withTransaction`.
   */
  async run<R extends pg.QueryResultRow>(statement: AnalyticsStatement, db: pg.Pool | Transaction, values: readonly unknown[]): Promise<pg.QueryResult<R>> {
    const text = statementTexts.get(statement);
    if (text === undefined) throw new Error(`analytics statement ${statement.name} was not declared with analyticsStatement`);
    if (isTransaction(db)) {
      afterCommit(db, this.#wake);
      return db.query<R>({ name: statement.name, text, values: [...values] });
    }
    const result = await db.query<R>({ name: statement.name, text, values: [...values] });
    this.#wake();
    return result;
  }

  /** Tells the streamers of committed rows (one function, so a transaction registers it once). */
  readonly #wake = (): void => this.#waker.committed();

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
    this.#waker.committed();
    this.#commitRows.observe(group.length);
    for (const [stream, lines] of perStream) this.#appended.inc({ stream }, lines.length);
    return group.map(() => undefined);
  }

  /** Commits whatever is waiting, waits for every commit in flight, then sends no more NOTIFYs (the process is stopping). */
  async close(): Promise<void> {
    await this.#group.flush();
    this.#waker.stop();
  }
}
