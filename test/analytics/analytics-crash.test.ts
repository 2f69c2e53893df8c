import { spawn } from "node:child_process";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { projectMigrations } from "../../services/app.js";
import { AnalyticsAppender } from "../../services/core/analytics/appender.js";
import { AnalyticsStreamer } from "../../services/core/analytics/streamer.js";
import { openClickHouseTarget, type ClickHouse } from "../../services/core/clickhouse.js";
import { createLogger } from "../../services/core/logger.js";
import { createMetricsRegistry } from "../../services/core/metrics.js";
import { migrate } from "../../services/core/migrate.js";
import { createTestEventsTable, seqs } from "../support/analytics-table.js";
import { testStores } from "../support/stores.js";

const root = new URL("../..", import.meta.url).pathname;
const log = createLogger("silent", false);

describe("analytics stream under a crash", () => {
  it("a streamer killed between the ClickHouse insert and the Postgres commit causes no duplicates", async () => {
    const stores = await testStores();
    // This file opens the embedded engine only while the child is not running: one process at a time owns it.
    const target = { url: stores.clickhouseUrl, database: stores.clickhouseDatabase, embeddedPath: `${stores.dataDir}/crash-clickhouse` };
    const pool = new pg.Pool({ connectionString: stores.databaseUrl });
    let clickhouse: ClickHouse = await openClickHouseTarget(target);
    await migrate(pool, clickhouse, await projectMigrations(), log);
    await createTestEventsTable(clickhouse);
    const appender = new AnalyticsAppender({ pool, metrics: createMetricsRegistry() });
    const total = 3_000;
    await appender.appendMany(
      "test_events",
      Array.from({ length: total }, (_, seq) => ({ seq, label: "crash", at: "2026-11-23 10:00:00.000" })),
    );
    await clickhouse.close();

    const child = spawn(process.execPath, ["--import", "tsx", `${root}test/support/crash-streamer.ts`], {
      env: {
        ...process.env,
        DATABASE_URL: stores.databaseUrl,
        CLICKHOUSE_URL: stores.clickhouseUrl ?? "",
        CLICKHOUSE_DATABASE: stores.clickhouseDatabase,
        CLICKHOUSE_PATH: target.embeddedPath,
        BATCH_ROWS: "1000",
      },
      stdio: ["ignore", "inherit", "inherit"],
    });
    const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_code, sig) => resolve(sig)));
    expect(signal).toBe("SIGKILL");

    clickhouse = await openClickHouseTarget(target);
    // The first batch reached ClickHouse, and Postgres still holds it as unfinished.
    expect(await seqs(clickhouse)).toHaveLength(1_000);
    const { rows } = await pool.query<{ waiting: number; batches: number; claimed: number }>(
      `SELECT (SELECT coalesce(sum(rows), 0) FROM analytics_outbox)::int AS waiting, (SELECT count(*) FROM analytics_batches)::int AS batches,
              (SELECT coalesce(sum(rows), 0) FROM analytics_batches)::int AS claimed`,
    );
    expect(rows[0]).toEqual({ waiting: total - 1_000, batches: 1, claimed: 1_000 });

    // A healthy streamer takes the expired batch over, sends it again (deduplicated), then the rest.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const streamer = new AnalyticsStreamer({ pool, url: stores.databaseUrl, clickhouse, log, metrics: createMetricsRegistry(), batchRows: 1_000 });
    expect(await streamer.drain()).toBe(total);
    expect(await seqs(clickhouse)).toEqual(Array.from({ length: total }, (_, seq) => seq));
    await clickhouse.close();
    await pool.end();
  });
});
