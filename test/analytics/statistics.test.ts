import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../services/app.js";
import { defineQueue } from "../../services/core/jobs/queue.js";
import { createMetricsRegistry } from "../../services/core/metrics.js";
import { StatisticsKeeper } from "../../services/core/statistics.js";
import { eventually, startTestApp } from "../support/stores.js";

/**
 * How long Postgres may take to report changes and the analyzer to act on them:
 * an idle backend flushes its statistics only every 10 s, later on a busy machine.
 */
const SETTLE_MS = 30_000;

const burst = defineQueue<{ n: number }>("test.burst");

describe("planner statistics", () => {
  let app: App;

  beforeAll(async () => {
    app = await startTestApp({ roles: ["api", "worker"], queues: [burst] as never[], env: { POSTGRES_ANALYZE_CHECK_SECONDS: "1" } });
  });
  afterAll(async () => {
    await app.stop();
  });

  const lastAnalyze = async (schema: string, table: string): Promise<Date | null> =>
    (await app.pool.query<{ at: Date | null }>("SELECT last_analyze AS at FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = $2", [schema, table])).rows[0]?.at ?? null;
  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  /** Waits until Postgres's statistics show `rows` changes of `table` since its last analyze (backends report them lazily). */
  const changesReported = (schema: string, table: string, rows: number) =>
    eventually(async () => {
      const { rows: found } = await app.pool.query<{ n: number }>(
        "SELECT n_mod_since_analyze::int AS n FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = $2",
        [schema, table],
      );
      return (found[0]?.n ?? 0) >= rows ? true : undefined;
    }, SETTLE_MS, `${rows} changes of ${table} reported`);

  it("analyzes pg-boss's job table after a burst of jobs, and counts it", async () => {
    const sentAt = new Date();
    await app.jobs.sendMany(burst, Array.from({ length: 2_000 }, (_, n) => ({ payload: { n } })));
    const table = await eventually(async () => {
      const { rows } = await app.pool.query<{ table: string }>(
        "SELECT relname AS table FROM pg_stat_user_tables WHERE schemaname = $1 AND last_analyze > $2 AND n_live_tup >= 2000",
        [app.config.jobsSchema, sentAt],
      );
      return rows[0]?.table;
    }, SETTLE_MS, "an analyzed job table");
    const metrics = await (await fetch(`${app.metricsUrl}/metrics`)).text();
    expect(metrics).toContain(`funnel_statistics_analyzed_total{table="${app.config.jobsSchema}.${table}"}`);
  }, 2 * SETTLE_MS);

  it("analyzes a table that changed by half or more, leaves small changes to autovacuum, and takes turns under its lock", async () => {
    const schema = (await app.pool.query<{ schema: string }>("SELECT current_schema() AS schema")).rows[0]!.schema;
    await app.pool.query("CREATE TABLE stats_probe (n int)");
    await app.pool.query("ANALYZE stats_probe");
    const first = await lastAnalyze(schema, "stats_probe");
    await app.pool.query("INSERT INTO stats_probe SELECT generate_series(1, 2000)");
    const analyzed = await eventually(async () => {
      const at = await lastAnalyze(schema, "stats_probe");
      return at !== null && at > first! ? at : undefined;
    }, SETTLE_MS, "stats_probe analyzed");

    // Each threshold alone is not enough: 600 more rows of 2,000 are enough rows but under
    // half; 300 rows in a new table are all of it but too few.
    await app.pool.query("INSERT INTO stats_probe SELECT generate_series(1, 600)");
    await app.pool.query("CREATE TABLE stats_probe_small (n int)");
    await app.pool.query("ANALYZE stats_probe_small");
    const small = await lastAnalyze(schema, "stats_probe_small");
    await app.pool.query("INSERT INTO stats_probe_small SELECT generate_series(1, 300)");
    await changesReported(schema, "stats_probe", 600);
    await changesReported(schema, "stats_probe_small", 300);
    await pause(2_500);
    expect(await lastAnalyze(schema, "stats_probe")).toEqual(analyzed);
    expect(await lastAnalyze(schema, "stats_probe_small")).toEqual(small);

    // While another session holds the lock, nobody analyzes.
    const holder = await app.pool.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT pg_advisory_xact_lock(hashtextextended('funnel-statistics', 0))");
      await app.pool.query("CREATE TABLE stats_probe_2 (n int)");
      await app.pool.query("ANALYZE stats_probe_2");
      const before = await lastAnalyze(schema, "stats_probe_2");
      await app.pool.query("INSERT INTO stats_probe_2 SELECT generate_series(1, 5000)");
      const keeper = new StatisticsKeeper({ pool: app.pool, log: app.log, metrics: createMetricsRegistry(), schemas: [], intervalMs: 0 });
      await changesReported(schema, "stats_probe_2", 5_000);
      await pause(1_500);
      expect(await keeper.look()).toEqual([]);
      expect(await lastAnalyze(schema, "stats_probe_2")).toEqual(before);
      await holder.query("COMMIT");
      await eventually(async () => {
        const at = await lastAnalyze(schema, "stats_probe_2");
        return at !== null && at > before! ? at : undefined;
      }, SETTLE_MS, "stats_probe_2 analyzed once the lock is free");
    } finally {
      holder.release();
    }
  }, 4 * SETTLE_MS);
});
