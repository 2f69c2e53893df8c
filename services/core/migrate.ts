import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type pg from "pg";
import { forCluster, type ClickHouse } from "./clickhouse.js";
import type { Logger } from "./logger.js";

/**
 * One forward-only schema change. `sql` may hold several statements; ClickHouse
 * statements are separated by a line ending in `;`.
 */
export interface Migration {
  readonly id: number;
  readonly name: string;
  readonly sql: string;
}

export interface MigrationSet {
  readonly postgres: readonly Migration[];
  readonly clickhouse: readonly Migration[];
}

/** Key of the advisory lock that serialises migrations across processes. */
const MIGRATION_LOCK = 0x66756e6e; // "funn"

const checksum = (sql: string): string => createHash("sha256").update(sql).digest("hex").slice(0, 16);

/**
 * Reads `NNNN_name.sql` files from a folder, sorted by number. Numbers must be
 * unique: two files with one number is a mistake caught at start-up.
 */
export async function loadMigrations(dir: string): Promise<Migration[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    // A store with no migrations yet has no folder (git keeps no empty folders).
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
  const files = names.filter((file) => file.endsWith(".sql")).sort();
  const migrations: Migration[] = [];
  for (const file of files) {
    const match = /^(\d+)_([a-z0-9_]+)\.sql$/.exec(file);
    if (match === null) throw new Error(`migration file ${join(dir, file)}: name must be NNNN_name.sql`);
    const id = Number(match[1]);
    if (migrations.some((migration) => migration.id === id)) {
      throw new Error(`migration ${join(dir, file)}: number ${id} is used twice`);
    }
    migrations.push({ id, name: match[2] ?? file, sql: await readFile(join(dir, file), "utf8") });
  }
  return migrations;
}

/** Splits a ClickHouse script into statements (ClickHouse runs one per request). */
export function splitStatements(sql: string): string[] {
  return sql
    .split(/;\s*(?:\n|$)/)
    .map((statement) =>
      statement
        .split("\n")
        .filter((line) => !line.trim().startsWith("--"))
        .join("\n")
        .trim(),
    )
    .filter((statement) => statement.length > 0);
}

/** Replaces `{db}` with the ClickHouse database name. */
const inDatabase = (sql: string, database: string): string => sql.replaceAll("{db}", database);

interface Applied {
  readonly id: number;
  readonly checksum: string;
}

function pending(store: string, migrations: readonly Migration[], applied: readonly Applied[]): Migration[] {
  const byId = new Map(applied.map((row) => [row.id, row.checksum]));
  for (const migration of migrations) {
    const recorded = byId.get(migration.id);
    if (recorded !== undefined && recorded !== checksum(migration.sql)) {
      throw new Error(
        `${store} migration ${migration.id}_${migration.name} was changed after it was applied; migrations are forward-only, add a new one`,
      );
    }
  }
  return migrations.filter((migration) => !byId.has(migration.id)).sort((a, b) => a.id - b.id);
}

/**
 * Applies pending Postgres and ClickHouse migrations, once, under a Postgres
 * advisory lock so processes starting together take turns. Each Postgres
 * migration commits with its record; ClickHouse has no transactions, so its
 * statements are written to be re-runnable (`IF NOT EXISTS`) and recorded
 * after they all succeed.
 */
export async function migrate(
  pool: pg.Pool,
  clickhouse: ClickHouse,
  set: MigrationSet,
  log: Logger,
): Promise<{ postgres: number; clickhouse: number }> {
  const client = await pool.connect();
  try {
    await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK]);
    await client.query(`CREATE TABLE IF NOT EXISTS funnel_migrations (
      id integer PRIMARY KEY,
      name text NOT NULL,
      checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const { rows } = await client.query<Applied>("SELECT id, checksum FROM funnel_migrations");
    const postgresTodo = pending("postgres", set.postgres, rows);
    for (const migration of postgresTodo) {
      log.info({ store: "postgres", id: migration.id, name: migration.name }, "applying migration");
      await client.query("BEGIN");
      try {
        await client.query(migration.sql);
        await client.query("INSERT INTO funnel_migrations (id, name, checksum) VALUES ($1, $2, $3)", [
          migration.id,
          migration.name,
          checksum(migration.sql),
        ]);
        await client.query("COMMIT");
      } catch (error) {
        await client.query("ROLLBACK");
        throw new Error(`postgres migration ${migration.id}_${migration.name} failed: ${(error as Error).message}`, {
          cause: error,
        });
      }
    }

    const ch = clickhouse.client;
    const table = `${clickhouse.database}.funnel_migrations`;
    await ch.command({
      query: forCluster(
        `CREATE TABLE IF NOT EXISTS ${table} (id UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3))
        ENGINE = ReplacingMergeTree ORDER BY id`,
        clickhouse.cluster,
      ),
    });
    const result = await ch.query({ query: `SELECT id, checksum FROM ${table} FINAL`, format: "JSONEachRow" });
    const clickhouseTodo = pending("clickhouse", set.clickhouse, await result.json<Applied>());
    for (const migration of clickhouseTodo) {
      log.info({ store: "clickhouse", id: migration.id, name: migration.name }, "applying migration");
      for (const statement of splitStatements(inDatabase(migration.sql, clickhouse.database))) {
        try {
          await ch.command({ query: forCluster(statement, clickhouse.cluster) });
        } catch (error) {
          throw new Error(`clickhouse migration ${migration.id}_${migration.name} failed: ${(error as Error).message}`, {
            cause: error,
          });
        }
      }
      await ch.insert({
        table,
        values: [{ id: migration.id, name: migration.name, checksum: checksum(migration.sql) }],
        format: "JSONEachRow",
      });
    }
    return { postgres: postgresTodo.length, clickhouse: clickhouseTodo.length };
  } finally {
    await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK]).catch(() => undefined);
    client.release();
  }
}
