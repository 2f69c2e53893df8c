import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../services/app.js";
import { AnalyticsAppender, analyticsStatement } from "../../services/core/analytics/appender.js";
import { analyticsBacklog } from "../../services/core/analytics/streamer.js";
import { createMetricsRegistry } from "../../services/core/metrics.js";
import { afterCommit, withTransaction } from "../../services/core/postgres.js";
import { createTestEventsTable, seqs } from "../support/analytics-table.js";
import { eventually, startTestApp } from "../support/stores.js";

const TABLE = "after_commit_events";
const at = "2026-11-23 10:00:00.000";

/** Appends one row per `seq` of `$1`, labelled `$2`, from inside a statement that also returns how many it saw. */
const APPEND_SEQS = analyticsStatement(
  "test-append-seqs",
  (append) => `
WITH input AS (SELECT seq, ord FROM unnest($1::int[]) WITH ORDINALITY AS i(seq, ord)),
appended AS (
  ${append({ from: "input", stream: `'${TABLE}'`, line: `json_build_object('seq', seq, 'label', $2::text, 'at', '${at}')::text`, order: "ord" })}
)
SELECT count(*)::int AS n FROM input`,
);

class Rollback extends Error {}

describe("analytics after commit", () => {
  let app: App;
  let seq = 1_000_000;
  const next = (count: number) => Array.from({ length: count }, () => seq++);
  const present = async (ids: readonly number[]) => (await seqs(app.clickhouse, TABLE)).filter((s) => ids.includes(s));

  beforeAll(async () => {
    app = await startTestApp({ roles: ["worker"] });
    await createTestEventsTable(app.clickhouse, TABLE);
  });
  afterAll(async () => {
    await app.stop();
  });

  /** NOTIFYs on the analytics channel while `during` runs and `quietMs` after it. */
  async function notifiesDuring(during: (heard: () => number) => Promise<void>, quietMs = 300): Promise<number> {
    const listener = new pg.Client({ connectionString: app.postgres.url });
    await listener.connect();
    let heard = 0;
    listener.on("notification", () => (heard += 1));
    await listener.query("LISTEN funnel_analytics");
    try {
      await during(() => heard);
      await new Promise((resolve) => setTimeout(resolve, quietMs));
      return heard;
    } finally {
      await listener.end();
    }
  }

  /** Lets the streamer find nothing and wait (for a NOTIFY, or its 5 s poll). */
  const idle = () => new Promise((resolve) => setTimeout(resolve, 1_000));

  it("runs after-commit hooks once COMMIT succeeded, and never for a transaction that rolled back", async () => {
    const ran: string[] = [];
    await withTransaction(app.pool, async (tx) => {
      afterCommit(tx, () => ran.push("first"));
      await tx.query("SELECT 1");
      // Not yet: the transaction is open.
      expect(ran).toEqual([]);
      afterCommit(tx, () => ran.push("second"));
    });
    expect(ran).toEqual(["first", "second"]);

    await expect(
      withTransaction(app.pool, async (tx) => {
        afterCommit(tx, () => ran.push("rolled back"));
        throw new Rollback("no");
      }),
    ).rejects.toBeInstanceOf(Rollback);
    // A failed statement whose error was caught aborts the transaction: COMMIT rolls it back.
    await expect(
      withTransaction(app.pool, async (tx) => {
        afterCommit(tx, () => ran.push("aborted"));
        await tx.query("SELECT 1/0").catch(() => undefined);
      }),
    ).rejects.toThrow(/rolled back/);
    expect(ran).toEqual(["first", "second"]);
  });

  it("refuses an after-commit hook on a client outside withTransaction", async () => {
    const client = await app.pool.connect();
    try {
      // @ts-expect-error a pooled client is not a Transaction
      expect(() => afterCommit(client, () => undefined)).toThrow(/not in a transaction of withTransaction/);
    } finally {
      client.release();
    }
  });

  it("refuses an append on a client outside withTransaction before storing anything", async () => {
    await app.streamer?.stop();
    const client = await app.pool.connect();
    try {
      const before = (await analyticsBacklog(app.pool)).rows;
      // @ts-expect-error a pooled client is not a Transaction
      await expect(app.analytics.appendInTransaction(client, TABLE, [{ seq: next(1)[0], label: "outside", at }])).rejects.toThrow(/not in a transaction of withTransaction/);
      expect((await analyticsBacklog(app.pool)).rows).toBe(before);
    } finally {
      client.release();
      await app.streamer?.start();
    }
  });

  it("stores nothing and wakes nobody for an append in a transaction that rolled back", async () => {
    await app.streamer?.stop();
    try {
      const appender = new AnalyticsAppender({ pool: app.pool, metrics: createMetricsRegistry() });
      const before = (await analyticsBacklog(app.pool)).rows;
      const heard = await notifiesDuring(async () => {
        await expect(
          withTransaction(app.pool, async (tx) => {
            await appender.appendInTransaction(tx, TABLE, [{ seq: next(1)[0], label: "rolled back", at }]);
            await appender.run(APPEND_SEQS, tx, [next(3), "rolled back"]);
            throw new Rollback("no");
          }),
        ).rejects.toBeInstanceOf(Rollback);
      });
      expect(heard).toBe(0);
      expect((await analyticsBacklog(app.pool)).rows).toBe(before);
    } finally {
      await app.streamer?.start();
    }
  });

  it("wakes the streamers once, after COMMIT, for appends in a committed transaction", async () => {
    const appender = new AnalyticsAppender({ pool: app.pool, metrics: createMetricsRegistry() });
    let heardBeforeCommit = -1;
    const heard = await notifiesDuring(async (heardSoFar) => {
      await withTransaction(app.pool, async (tx) => {
        await appender.appendInTransaction(tx, TABLE, [{ seq: next(1)[0], label: "once", at }]);
        await appender.appendInTransaction(tx, TABLE, [{ seq: next(1)[0], label: "once", at }]);
        await appender.run(APPEND_SEQS, tx, [next(2), "once"]);
        await new Promise((resolve) => setTimeout(resolve, 200));
        heardBeforeCommit = heardSoFar();
      });
    });
    expect(heardBeforeCommit).toBe(0);
    expect(heard).toBe(1);
  });

  it("streams a committed append promptly without being told", async () => {
    const [id] = next(1);
    await idle();
    const committedAt = Date.now();
    await withTransaction(app.pool, (tx) => app.analytics.appendInTransaction(tx, TABLE, [{ seq: id, label: "own transaction", at }]));
    await eventually(async () => ((await present([id!])).length === 1 ? true : undefined), 10_000, "the committed row");
    expect(Date.now() - committedAt).toBeLessThan(2_500);
  });

  it("streams the rows a statement appended, run on the pool or in a transaction, promptly and in order", async () => {
    const onPool = next(3);
    await idle();
    let started = Date.now();
    const { rows } = await app.analytics.run<{ n: number }>(APPEND_SEQS, app.pool, [onPool, "pool"]);
    expect(rows).toEqual([{ n: 3 }]);
    await eventually(async () => ((await present(onPool)).length === 3 ? true : undefined), 10_000, "the pool statement's rows");
    expect(Date.now() - started).toBeLessThan(2_500);

    const inTransaction = next(4);
    await idle();
    started = Date.now();
    await withTransaction(app.pool, (tx) => app.analytics.run(APPEND_SEQS, tx, [inTransaction, "transaction"]));
    await eventually(async () => ((await present(inTransaction)).length === 4 ? true : undefined), 10_000, "the transaction's rows");
    expect(Date.now() - started).toBeLessThan(2_500);
    expect(await present([...onPool, ...inTransaction])).toEqual([...onPool, ...inTransaction]);
  });

  it("appends nothing for a statement whose source is empty", async () => {
    await app.streamer?.stop();
    try {
      const before = (await analyticsBacklog(app.pool)).rows;
      await app.analytics.run(APPEND_SEQS, app.pool, [[], "empty"]);
      expect((await analyticsBacklog(app.pool)).rows).toBe(before);
    } finally {
      await app.streamer?.start();
    }
  });
});
