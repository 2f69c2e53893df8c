import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectMigrations } from "../../services/app.js";
import { forCluster, openClickHouseTarget, type ClickHouse } from "../../services/core/clickhouse.js";
import { createLogger } from "../../services/core/logger.js";
import { migrate, splitStatements, type MigrationSet } from "../../services/core/migrate.js";
import { testStores } from "../support/stores.js";

const log = createLogger("silent", false);

describe("migrations", () => {
  let pools: pg.Pool[];
  let clickhouse: ClickHouse;
  let set: MigrationSet;

  beforeAll(async () => {
    const stores = await testStores();
    pools = [new pg.Pool({ connectionString: stores.databaseUrl }), new pg.Pool({ connectionString: stores.databaseUrl })];
    clickhouse = await openClickHouseTarget({
      url: stores.clickhouseUrl,
      database: stores.clickhouseDatabase,
      embeddedPath: `${stores.dataDir}/clickhouse`,
    });
    const project = await projectMigrations();
    // A throwaway migration per store on top of the project's, to see each applied once.
    set = {
      postgres: [...project.postgres, { id: 9001, name: "probe", sql: "CREATE TABLE migrate_probe (id int PRIMARY KEY); INSERT INTO migrate_probe VALUES (1);" }],
      clickhouse: [
        ...project.clickhouse,
        { id: 9001, name: "probe", sql: "CREATE TABLE IF NOT EXISTS {db}.migrate_probe (id UInt8) ENGINE = MergeTree ORDER BY id;\nINSERT INTO {db}.migrate_probe VALUES (1);" },
      ],
    };
  });

  afterAll(async () => {
    await Promise.all(pools.map((pool) => pool.end()));
    await clickhouse.close();
  });

  it("applies each migration exactly once when two processes start together", async () => {
    const [first, second] = await Promise.all(pools.map((pool) => migrate(pool, clickhouse, set, log)));
    expect((first?.postgres ?? 0) + (second?.postgres ?? 0)).toBe(set.postgres.length);
    expect((first?.clickhouse ?? 0) + (second?.clickhouse ?? 0)).toBe(set.clickhouse.length);
    const { rows } = await pools[0]!.query<{ n: number }>("SELECT count(*)::int AS n FROM migrate_probe");
    expect(rows[0]?.n).toBe(1);
    const result = await clickhouse.client.query({ query: `SELECT count() AS n FROM ${clickhouse.database}.migrate_probe`, format: "JSONEachRow" });
    expect((await result.json<{ n: number | string }>()).map((row) => Number(row.n))).toEqual([1]);
  });

  it("is idempotent: a second run applies nothing", async () => {
    expect(await migrate(pools[0]!, clickhouse, set, log)).toEqual({ postgres: 0, clickhouse: 0 });
  });

  it("refuses a migration edited after it was applied", async () => {
    const edited: MigrationSet = {
      ...set,
      postgres: set.postgres.map((m) => (m.id === 9001 ? { ...m, sql: `${m.sql} -- edited` } : m)),
    };
    await expect(migrate(pools[0]!, clickhouse, edited, log)).rejects.toThrow(/9001_probe was changed after it was applied/);
  });
});

describe("ClickHouse migrations on a cluster", () => {
  it("rewrites every project migration statement to a replicated, cluster-wide one", async () => {
    const { clickhouse } = await projectMigrations();
    expect(clickhouse.length).toBeGreaterThan(0);
    for (const migration of clickhouse) {
      for (const statement of splitStatements(migration.sql.replaceAll("{db}", "funnel"))) {
        const rewritten = forCluster(statement, "main");
        if (/^\s*(CREATE|ALTER)\s/i.test(statement)) expect(rewritten, `${migration.name}: ${statement.slice(0, 80)}`).toMatch(/ ON CLUSTER main\b/);
        expect(rewritten, migration.name).not.toMatch(/ENGINE\s*=\s*(?!Replicated)\w*MergeTree/i);
      }
    }
  });
});
