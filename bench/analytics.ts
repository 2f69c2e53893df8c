import { chmod, mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { startApp } from "../services/app.js";
import { parseConfig } from "../services/core/config.js";
import { percentile } from "./support.js";

const CALLERS = 64;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);

/** 64 callers appending as fast as they can for `SECONDS`; returns per-call latencies. */
async function load(append: (seq: number) => Promise<void>): Promise<{ count: number; seconds: number; latencies: number[] }> {
  const latencies: number[] = [];
  let seq = 0;
  const started = performance.now();
  const until = started + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: CALLERS }, async () => {
      while (performance.now() < until) {
        const t = performance.now();
        await append(seq++);
        latencies.push(performance.now() - t);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  return { count: latencies.length, seconds: (performance.now() - started) / 1000, latencies };
}

/**
 * Durable appends/s with 64 concurrent callers through the group-commit
 * appender, end-to-end lag to ClickHouse, and the naive way (one autocommit
 * INSERT per row) side by side. Embedded stores in a temporary folder.
 */
export async function run(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "funnel-bench-"));
  // As root, the embedded Postgres runs as the postgres user, who must reach its folder.
  await chmod(dir, 0o755);
  const app = await startApp({
    config: parseConfig({ FUNNEL_DATA_DIR: dir, PORT: "0", METRICS_PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "warn", EMBEDDED_POSTGRES_PORT: "54391", DATABASE_POOL_MAX: "80" }),
    roles: ["worker"],
    // The stream alone: no service module competes for the two cores.
    modules: [],
  });
  try {
    const db = app.clickhouse.database;
    await app.clickhouse.client.command({
      query: `CREATE TABLE IF NOT EXISTS ${db}.bench_events (seq UInt64, appended_at DateTime64(3, 'UTC'), inserted_at DateTime64(3, 'UTC') DEFAULT now64(3))
        ENGINE = MergeTree ORDER BY seq SETTINGS non_replicated_deduplication_window = 10000`,
    });
    const grouped = await load((seq) => app.analytics.append("bench_events", { seq, appended_at: new Date().toISOString() }));

    // Wait for the stream to catch up, then read the lag from ClickHouse.
    const deadline = Date.now() + 120_000;
    let inClickHouse = 0;
    while (Date.now() < deadline) {
      const result = await app.clickhouse.client.query({ query: `SELECT count() AS n FROM ${db}.bench_events`, format: "JSONEachRow" });
      inClickHouse = Number((await result.json<{ n: string }>())[0]?.n ?? 0);
      if (inClickHouse >= grouped.count) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const lagResult = await app.clickhouse.client.query({
      query: `SELECT quantileExact(0.5)(dateDiff('millisecond', appended_at, inserted_at)) AS p50,
                     quantileExact(0.99)(dateDiff('millisecond', appended_at, inserted_at)) AS p99,
                     uniqExact(seq) AS distinct_rows FROM ${db}.bench_events`,
      format: "JSONEachRow",
    });
    const lag = (await lagResult.json<{ p50: number; p99: number; distinct_rows: string }>())[0];

    await app.streamer?.stop();
    const naive = await load(async (seq) => {
      await app.pool.query("INSERT INTO analytics_outbox (stream, content) VALUES ($1, $2)", [
        "bench_naive",
        JSON.stringify({ seq, appended_at: new Date().toISOString() }),
      ]);
    });

    const rate = (r: { count: number; seconds: number }) => r.count / r.seconds;
    const rows = [
      ["", "group commit", "naive (INSERT per row)"],
      ["durable appends/s", rate(grouped).toFixed(0), rate(naive).toFixed(0)],
      ["append p50 (ms)", percentile(grouped.latencies, 50).toFixed(2), percentile(naive.latencies, 50).toFixed(2)],
      ["append p99 (ms)", percentile(grouped.latencies, 99).toFixed(2), percentile(naive.latencies, 99).toFixed(2)],
      ["lag p50 / p99 (ms)", `${lag?.p50 ?? "?"} / ${lag?.p99 ?? "?"}`, "-"],
      ["rows appended / in ClickHouse / distinct", `${grouped.count} / ${inClickHouse} / ${lag?.distinct_rows ?? "?"}`, String(naive.count)],
      ["speed-up", `${(rate(grouped) / rate(naive)).toFixed(1)}x`, "1x"],
    ];
    const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
    console.log(`analytics stream, ${CALLERS} callers, ${SECONDS} s each; ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, embedded Postgres + ClickHouse`);
    for (const row of rows) console.log(row.map((cell, c) => cell.padEnd(widths[c]!)).join("  "));
  } finally {
    await app.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
