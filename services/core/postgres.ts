import pg from "pg";
import type { Config } from "./config.js";
import { isStoreUnavailable } from "./errors.js";
import { startEmbeddedPostgres } from "./embedded-postgres.js";
import type { Logger } from "./logger.js";
import { counter, type Registry } from "./metrics.js";
import { join } from "node:path";

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

/** The application's Postgres, wherever it runs. */
export interface Postgres {
  readonly pool: pg.Pool;
  /** Connection URL of the application database (pg-boss connects with it too). */
  readonly url: string;
  readonly backend: "embedded" | "server";
  close(): Promise<void>;
}

// Timestamps and 64-bit counts come back as strings by default; bigint → number
// is safe for the counts Funnel keeps, and BIGSERIAL ids stay far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

/** Creates `name` on the server behind `adminUrl` unless it exists. */
export async function ensureDatabase(adminUrl: string, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (rowCount === 0) {
      await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`).catch((error: unknown) => {
        // Another process created it first.
        if ((error as { code?: string }).code !== "42P04") throw error;
      });
    }
  } finally {
    await client.end();
  }
}

/** `url` pointing at database `name` instead, its other parts (such as `?host=`) kept. */
export function databaseUrl(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${encodeURIComponent(name)}`;
  return parsed.toString();
}

/** Builds a pool that logs (rather than crashes on) errors of idle clients. */
export function createPool(url: string, max: number, log: Logger): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, application_name: "funnel" });
  pool.on("error", (error: Error & { code?: string }) => {
    // Idle clients of an ending pool may still be closing when the server stops.
    if (pool.ending) return;
    log.warn({ error: error.message, code: error.code }, "idle Postgres client failed");
  });
  return pool;
}

/**
 * A process whose drain outlives its shutdown timeout is forced to exit this
 * much later (services/main.ts), so a start waits that long for it at most.
 */
const FORCED_EXIT_AFTER_TIMEOUT_MS = 5_000;

/**
 * Opens the application's Postgres: the server at `DATABASE_URL`, or an
 * embedded one in `$FUNNEL_DATA_DIR/postgres` holding a `funnel` database,
 * restarted when it dies under the running process.
 */
export async function openPostgres(config: Config, log: Logger, metrics: Registry): Promise<Postgres> {
  if (config.databaseUrl !== undefined) {
    const pool = createPool(config.databaseUrl, config.databasePoolMax, log);
    return { pool, url: config.databaseUrl, backend: "server", close: () => pool.end() };
  }
  const restarts = counter(
    metrics,
    "funnel_embedded_postgres_restarts_total",
    "Attempts to restart the embedded Postgres after it died, by outcome (started, failed, gave_up).",
    ["outcome"],
  );
  const embedded = await startEmbeddedPostgres({
    dir: join(config.dataDir, "postgres"),
    port: config.embeddedPostgresPort,
    log,
    restartAttempts: config.embeddedPostgresRestartAttempts,
    onRestart: (outcome) => restarts.inc({ outcome }),
    ownerWaitMs: config.shutdownTimeoutMs + FORCED_EXIT_AFTER_TIMEOUT_MS,
  });
  try {
    await ensureDatabase(embedded.localUrl, "funnel");
  } catch (error) {
    await embedded.stop();
    throw error;
  }
  const url = databaseUrl(embedded.localUrl, "funnel");
  const pool = createPool(url, config.databasePoolMax, log);
  return {
    pool,
    url,
    backend: "embedded",
    close: async () => {
      await pool.end();
      await embedded.stop();
    },
  };
}

/**
 * A connection inside {@link withTransaction}. The brand is a type only: it
 * marks clients whose commit {@link afterCommit} can wait for.
 */
export type Transaction = pg.PoolClient & { readonly [transactionBrand]: true };
declare const transactionBrand: unique symbol;

/** The after-commit hooks of each transaction in progress. */
const commitHooks = new WeakMap<pg.ClientBase, Set<() => void>>();

/**
 * Runs `hook` once `tx` has committed, and never if it rolls back. A hook
 * registered twice runs once. Hooks run in registration order, after COMMIT
 * succeeded and the connection went back to the pool, and must not throw:
 * the work is committed by then.
 */
export function afterCommit(tx: Transaction, hook: () => void): void {
  const hooks = commitHooks.get(tx);
  if (hooks === undefined) throw new Error("afterCommit: the client is not in a transaction of withTransaction");
  hooks.add(hook);
}

/** Whether `db` is a connection inside {@link withTransaction} (rather than the pool or a client committing each statement). */
export function isTransaction(db: pg.Pool | pg.ClientBase): db is Transaction {
  return commitHooks.has(db as pg.ClientBase);
}

/**
 * Runs `work` in a transaction on one pooled connection: committed when it
 * returns, rolled back when it throws; the hooks `work` registered with
 * {@link afterCommit} run once COMMIT succeeded. A statement that failed
 * inside `work` (its error caught there) leaves the transaction aborted, so
 * COMMIT rolls it back: that throws too rather than report work as done. A
 * connection that broke (Postgres unreachable, terminated) is closed rather
 * than handed to the next caller.
 */
export async function withTransaction<T>(pool: pg.Pool, work: (tx: Transaction) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  // A connection lost while checked out is also emitted on the client; the
  // failing query already reports it to the caller.
  const lost = (): void => undefined;
  client.on("error", lost);
  const hooks = new Set<() => void>();
  commitHooks.set(client, hooks);
  let broken = false;
  let result: T;
  try {
    await client.query("BEGIN");
    result = await work(client as Transaction);
    const { command } = await client.query("COMMIT");
    if (command !== "COMMIT") throw new Error("the transaction was rolled back: a statement in it failed");
  } catch (error) {
    broken = isStoreUnavailable(error);
    if (!broken) await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  } finally {
    commitHooks.delete(client);
    client.off("error", lost);
    client.release(broken);
  }
  // The connection is back in the pool by now, for a hook that queries.
  for (const hook of hooks) hook();
  return result;
}

/** Postgres's deadlock_detected. */
const DEADLOCK = "40P01";

/**
 * Runs `transaction` (a {@link withTransaction}) again, up to `attempts` times
 * in all, when Postgres broke a deadlock by rolling it back: nothing of it was
 * kept, so another try is safe. Group commits lock their rows in key order,
 * but a clean-up deleting expired rows locks them in its own, so the two can
 * deadlock.
 */
export async function retryingDeadlocks<T>(transaction: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await transaction();
    } catch (error) {
      if ((error as { code?: unknown } | null)?.code !== DEADLOCK || attempt >= attempts) throw error;
    }
  }
}
