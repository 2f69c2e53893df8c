// A streamer that dies by SIGKILL right after its first batch reached ClickHouse
// and before Postgres forgot the batch: the worst moment for exactly-once.
import pg from "pg";
import { AnalyticsStreamer } from "../../services/core/analytics/streamer.js";
import { openClickHouseTarget } from "../../services/core/clickhouse.js";
import { createLogger } from "../../services/core/logger.js";
import { createMetricsRegistry } from "../../services/core/metrics.js";

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is required`);
  return value;
};

const pool = new pg.Pool({ connectionString: env("DATABASE_URL") });
const clickhouse = await openClickHouseTarget({
  url: process.env.CLICKHOUSE_URL || undefined,
  database: env("CLICKHOUSE_DATABASE"),
  embeddedPath: env("CLICKHOUSE_PATH"),
});
const streamer = new AnalyticsStreamer({
  pool,
  url: env("DATABASE_URL"),
  clickhouse,
  log: createLogger("silent", false),
  metrics: createMetricsRegistry(),
  batchRows: Number(env("BATCH_ROWS")),
  leaseSeconds: 1,
  afterInsert: () => {
    process.kill(process.pid, "SIGKILL");
  },
});
await streamer.drain();
