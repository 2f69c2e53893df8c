import type pg from "pg";
import type { Logger } from "./logger.js";
import { counter, type Registry } from "./metrics.js";
import { runPeriodically, type Periodic } from "./periodic.js";
import { withTransaction } from "./postgres.js";

export interface StatisticsKeeperOptions {
  readonly pool: pg.Pool;
  readonly log: Logger;
  readonly metrics: Registry;
  /** Schemas looked after besides the application's own (`current_schema()`): pg-boss's. */
  readonly schemas: readonly string[];
  /** How often to look; 0 disables the keeper. */
  readonly intervalMs: number;
}

/** A table is analyzed once this many rows changed since its last analyze… */
const MIN_CHANGED_ROWS = 500;
/** …and they are at least this share of its live rows. */
const MIN_CHANGED_SHARE = 0.5;
/** Most tables analyzed per look, the most changed first. */
const MAX_TABLES = 4;

/**
 * Keeps the planner's statistics of fast-changing tables fresh. Autovacuum
 * analyzes a table once a tenth of it has changed, but it looks only once a
 * minute (`autovacuum_naptime`). A queue that fills in seconds is planned
 * meanwhile from statistics of a nearly empty table: pg-boss's fetch then
 * reads and sorts every waiting job instead of taking the first few through
 * its index (8 ms per fetch with 9,000 jobs waiting, so the queue falls
 * further behind). Every `intervalMs` this analyzes the tables of `schemas`
 * that changed by at least half since their last analyze. One process at a
 * time does it (a transaction-scoped advisory lock); the others skip that look.
 */
export class StatisticsKeeper {
  readonly #options: StatisticsKeeperOptions;
  readonly #analyzed;
  #periodic: Periodic | undefined;

  constructor(options: StatisticsKeeperOptions) {
    this.#options = options;
    this.#analyzed = counter(options.metrics, "funnel_statistics_analyzed_total", "Tables analyzed because they changed faster than autovacuum looks.", ["table"]);
  }

  start(): void {
    if (this.#options.intervalMs <= 0 || this.#periodic !== undefined) return;
    this.#periodic = runPeriodically(this.#options.intervalMs, () => this.look(), (error) =>
      this.#options.log.warn({ err: error }, "could not refresh table statistics"),
    );
  }

  async stop(): Promise<void> {
    await this.#periodic?.stop();
    this.#periodic = undefined;
  }

  /**
   * One look: analyzes the tables that need it; returns their names
   * (`schema.table`). Only a look that finds some takes the lock, and then
   * asks again under it (another process may just have analyzed them).
   */
  async look(): Promise<string[]> {
    if ((await this.#candidates(this.#options.pool)).length === 0) return [];
    return withTransaction(this.#options.pool, async (tx) => {
      const { rows: locked } = await tx.query<{ locked: boolean }>("SELECT pg_try_advisory_xact_lock(hashtextextended('funnel-statistics', 0)) AS locked");
      if (locked[0]?.locked !== true) return [];
      const tables = await this.#candidates(tx);
      for (const { name, quoted } of tables) {
        await tx.query(`ANALYZE ${quoted}`);
        this.#analyzed.inc({ table: name });
      }
      return tables.map((table) => table.name);
    });
  }

  /** The tables to analyze, most changed first: as `schema.table` and quoted for SQL by format('%I'). */
  async #candidates(db: pg.Pool | pg.PoolClient): Promise<{ name: string; quoted: string }[]> {
    const { rows } = await db.query<{ name: string; quoted: string }>(
      `SELECT schemaname || '.' || relname AS name, format('%I.%I', schemaname, relname) AS quoted
         FROM pg_stat_user_tables
        WHERE (schemaname = current_schema() OR schemaname = ANY($1::text[]))
          AND n_mod_since_analyze >= $2::bigint AND n_mod_since_analyze >= $3::float8 * n_live_tup
        ORDER BY n_mod_since_analyze DESC
        LIMIT $4`,
      [this.#options.schemas, MIN_CHANGED_ROWS, MIN_CHANGED_SHARE, MAX_TABLES],
    );
    return rows;
  }
}
