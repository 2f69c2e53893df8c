import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../services/app.js";
import { AnalyticsAppender } from "../../services/core/analytics/appender.js";
import { AnalyticsStreamer, analyticsBacklog } from "../../services/core/analytics/streamer.js";
import { createMetricsRegistry } from "../../services/core/metrics.js";
import { withTransaction } from "../../services/core/postgres.js";
import { createTestEventsTable, seqs } from "../support/analytics-table.js";
import { eventually, startTestApp } from "../support/stores.js";

const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i);
const at = "2026-11-23 10:00:00.000";

describe("analytics stream", () => {
  let app: App;
  let seq = 0;
  const next = (count: number) => {
    const out = range(seq, count);
    seq += count;
    return out;
  };

  beforeAll(async () => {
    app = await startTestApp({ roles: ["worker"] });
    await createTestEventsTable(app.clickhouse);
  });
  afterAll(async () => {
    await app.stop();
  });

  /** Rows not yet in ClickHouse: waiting in the outbox or claimed in an unfinished batch. */
  const outboxCount = async () => (await analyticsBacklog(app.pool)).rows;

  it("makes each append durable before it resolves, sharing commits between concurrent callers", async () => {
    await app.streamer?.stop();
    const metrics = createMetricsRegistry();
    const appender = new AnalyticsAppender({ pool: app.pool, metrics });
    const ids = next(500);
    await Promise.all(ids.map((id) => appender.append("test_events", { seq: id, label: "durable", at })));
    // Durable: visible through another connection the moment the calls resolved.
    expect(await outboxCount()).toBe(500);
    const commits = (await metrics.getSingleMetricAsString("funnel_analytics_commit_rows")).match(/funnel_analytics_commit_rows_count (\d+)/);
    expect(Number(commits?.[1])).toBeGreaterThan(0);
    expect(Number(commits?.[1])).toBeLessThan(50);
    await app.streamer?.start();
    await eventually(async () => ((await outboxCount()) === 0 ? true : undefined), 10_000, "the backlog to drain");
    expect((await seqs(app.clickhouse)).filter((s) => ids.includes(s))).toEqual(ids);
  });

  it("keeps waiting chunks compressed and a claimed batch's text plain", async () => {
    const { rows } = await app.pool.query<{ relname: string; attstorage: string }>(
      `SELECT c.relname, a.attstorage FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        WHERE c.relname IN ('analytics_outbox', 'analytics_batches') AND c.relnamespace = current_schema()::regnamespace AND a.attname = 'content'
        ORDER BY c.relname`,
    );
    // x: compressed when large (the default), e: out of line without compression.
    expect(rows).toEqual([
      { relname: "analytics_batches", attstorage: "e" },
      { relname: "analytics_outbox", attstorage: "x" },
    ]);
  });

  it("rejects a bad stream name and stores nothing", async () => {
    await expect(app.analytics.append("bad name; DROP", { seq: 1 })).rejects.toThrow(/stream: "bad name; DROP" is not a table name/);
  });

  it("streams NOTIFY-woken within the lag target, each row exactly once", async () => {
    const ids = next(300);
    const started = Date.now();
    await Promise.all(ids.map((id) => app.analytics.append("test_events", { seq: id, label: "notify", at })));
    await eventually(async () => {
      const present = (await seqs(app.clickhouse)).filter((s) => ids.includes(s));
      return present.length === ids.length ? present : undefined;
    }, 10_000, "rows in ClickHouse");
    expect(Date.now() - started).toBeLessThan(2_000);
    expect((await seqs(app.clickhouse)).filter((s) => ids.includes(s))).toEqual(ids);
  });

  it("wakes the streamers after commits with at most one NOTIFY per interval, not one per commit", async () => {
    const listener = new pg.Client({ connectionString: app.postgres.url });
    await listener.connect();
    const arrivals: number[] = [];
    listener.on("notification", () => arrivals.push(performance.now()));
    await listener.query("LISTEN funnel_analytics");
    try {
      const appender = new AnalyticsAppender({ pool: app.pool, metrics: createMetricsRegistry() });
      // One commit after another: 100 commits.
      for (const id of next(100)) await appender.append("test_events", { seq: id, label: "waker", at });
      const lastCommit = performance.now();
      // The commits after the last NOTIFY still get one (the trailing one of their window).
      await eventually(async () => (arrivals.some((t) => t >= lastCommit) ? true : undefined), 2_000, "a NOTIFY after the last commit");
      expect(arrivals.length).toBeLessThan(100);
      // Never two in one window (they are sent at least 50 ms apart; delivery adds jitter).
      for (let i = 1; i < arrivals.length; i += 1) expect(arrivals[i]! - arrivals[i - 1]!).toBeGreaterThan(20);
    } finally {
      await listener.end();
    }
  });

  it("never skips a row whose id committed after later ids were streamed", async () => {
    const [late, ...rest] = next(4);
    let appended!: () => void;
    const lateAppended = new Promise<void>((resolve) => (appended = resolve));
    let commit!: () => void;
    const committing = new Promise<void>((resolve) => (commit = resolve));
    const transaction = withTransaction(app.pool, async (tx) => {
      // Takes the lower sequence value now, commits last.
      await app.analytics.appendInTransaction(tx, "test_events", [{ seq: late, label: "late", at }]);
      appended();
      await committing;
    });
    await lateAppended;
    await Promise.all(rest.map((id) => app.analytics.append("test_events", { seq: id, label: "early", at })));
    await eventually(async () => ((await seqs(app.clickhouse)).includes(rest[2]!) ? true : undefined), 10_000, "early rows");
    expect(await seqs(app.clickhouse)).not.toContain(late);
    commit();
    await transaction;
    await eventually(async () => ((await seqs(app.clickhouse)).includes(late!) ? true : undefined), 10_000, "the late row");
    expect((await seqs(app.clickhouse)).filter((s) => s === late || rest.includes(s))).toEqual([late, ...rest]);
  });

  it("two streamers together insert every row exactly once", async () => {
    await app.streamer?.stop();
    const ids = next(12_000);
    for (let i = 0; i < ids.length; i += 2_000) {
      await app.analytics.appendMany("test_events", ids.slice(i, i + 2_000).map((id) => ({ seq: id, label: "pair", at })));
    }
    const make = () =>
      new AnalyticsStreamer({ pool: app.pool, url: app.postgres.url, clickhouse: app.clickhouse, log: app.log, metrics: createMetricsRegistry(), batchRows: 1_000 });
    const [a, b] = [make(), make()];
    const [fromA, fromB] = await Promise.all([a.drain(), b.drain()]);
    expect(fromA + fromB).toBe(ids.length);
    expect(fromA).toBeGreaterThan(0);
    expect(fromB).toBeGreaterThan(0);
    expect((await seqs(app.clickhouse)).filter((s) => s >= ids[0]!)).toEqual(ids);
    await app.streamer?.start();
  });

  it("inserts whole chunks per batch, adding the next while the rows before it are fewer than batchRows", async () => {
    await app.streamer?.stop();
    expect(await outboxCount()).toBe(0);
    // Chunk sizes grouped by the batch each must land in, for batchRows 5.
    const batches = [[12], [2, 2, 1], [3, 4], [1, 1, 1, 1, 1], [1, 1]];
    const chunks = batches.flat().map((size) => next(size));
    for (const ids of chunks) {
      await withTransaction(app.pool, (tx) => app.analytics.appendInTransaction(tx, "test_events", ids.map((id) => ({ seq: id, label: "chunk", at }))));
    }
    const first = chunks[0]![0]!;
    const inserts: { rows: number; seqs: number[] }[] = [];
    let seen = 0;
    const streamer = new AnalyticsStreamer({
      pool: app.pool,
      url: app.postgres.url,
      clickhouse: app.clickhouse,
      log: app.log,
      metrics: createMetricsRegistry(),
      batchRows: 5,
      afterInsert: async (batchId) => {
        const { rows } = await app.pool.query<{ rows: number }>("SELECT rows FROM analytics_batches WHERE id = $1", [batchId]);
        const present = (await seqs(app.clickhouse)).filter((s) => s >= first);
        inserts.push({ rows: rows[0]!.rows, seqs: present.slice(seen) });
        seen = present.length;
      },
    });
    expect(await streamer.drain()).toBe(chunks.flat().length);
    let taken = 0;
    expect(inserts).toEqual(
      batches.map((sizes) => {
        const ids = chunks.slice(taken, (taken += sizes.length)).flat();
        return { rows: ids.length, seqs: ids };
      }),
    );
    expect((await seqs(app.clickhouse)).filter((s) => s >= first)).toEqual(chunks.flat());
    await app.streamer?.start();
  });

  it("keeps rows in Postgres while ClickHouse is down and drains them in order when it is back", async () => {
    await app.streamer?.stop();
    const { createClient } = await import("@clickhouse/client");
    const unreachable = {
      client: createClient({ url: "http://127.0.0.1:1", request_timeout: 500 }),
      database: app.clickhouse.database,
      backend: "server" as const,
      cluster: undefined,
      close: async () => undefined,
    };
    const metrics = createMetricsRegistry();
    const broken = new AnalyticsStreamer({ pool: app.pool, url: app.postgres.url, clickhouse: unreachable, log: app.log, metrics, minIntervalMs: 10 });
    await broken.start();
    const ids = next(200);
    await Promise.all(ids.map((id) => app.analytics.append("test_events", { seq: id, label: "outage", at })));
    await eventually(async () => {
      const text = await metrics.getSingleMetricAsString("funnel_analytics_insert_failures_total");
      return /funnel_analytics_insert_failures_total\{stream="test_events"\} [1-9]/.test(text) ? true : undefined;
    }, 10_000, "a failed insert");
    await broken.stop();
    await unreachable.close();
    const backlog = await analyticsBacklog(app.pool);
    expect(backlog.rows).toBe(200);
    expect(backlog.lagSeconds).toBeGreaterThan(0);
    const backlogText = await metrics.getSingleMetricAsString("funnel_analytics_backlog_rows");
    expect(backlogText).toMatch(/funnel_analytics_backlog_rows 200/);
    await app.streamer?.start();
    await eventually(async () => ((await outboxCount()) === 0 ? true : undefined), 15_000, "the backlog to drain");
    expect((await seqs(app.clickhouse)).filter((s) => ids.includes(s))).toEqual(ids);
  });

  it("exposes appended, streamed, backlog and lag in /metrics", async () => {
    const text = await app.metrics.metrics();
    expect(text).toMatch(/funnel_analytics_appended_total\{stream="test_events"\} \d+/);
    expect(text).toMatch(/funnel_analytics_streamed_total\{stream="test_events"\} \d+/);
    expect(text).toMatch(/funnel_analytics_backlog_rows \d+/);
    expect(text).toMatch(/funnel_analytics_lag_seconds [\d.e-]+/);
  });
});
