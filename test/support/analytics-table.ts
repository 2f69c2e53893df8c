import type { ClickHouse } from "../../services/core/clickhouse.js";

/** A ClickHouse table for stream tests, deduplicating retried inserts like the real ones. */
export async function createTestEventsTable(clickhouse: ClickHouse, name = "test_events"): Promise<void> {
  await clickhouse.client.command({
    query: `CREATE TABLE IF NOT EXISTS ${clickhouse.database}.${name} (seq UInt64, label String, at DateTime64(3, 'UTC'))
      ENGINE = MergeTree ORDER BY seq SETTINGS non_replicated_deduplication_window = 10000`,
  });
}

/** Every `seq` in the table, sorted, with repeats kept. */
export async function seqs(clickhouse: ClickHouse, name = "test_events"): Promise<number[]> {
  const result = await clickhouse.client.query({ query: `SELECT seq FROM ${clickhouse.database}.${name} ORDER BY seq`, format: "JSONEachRow" });
  return (await result.json<{ seq: number | string }>()).map((row) => Number(row.seq));
}
