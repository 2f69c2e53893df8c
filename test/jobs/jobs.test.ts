import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { OpsService } from "../../gen/funnel/ops/v1/ops_pb.js";
import type { App } from "../../services/app.js";
import { PermanentJobError } from "../../services/core/jobs/jobs.js";
import { prepareRepeatedStatements } from "../../services/core/jobs/prepared.js";
import { defineQueue } from "../../services/core/jobs/queue.js";
import { ADMIN_TOKEN, eventually, startTestApp } from "../support/stores.js";

const outbox = defineQueue<{ n: number }>("test.outbox");
const flaky = defineQueue<{ failTimes: number; key: string }>("test.flaky", { retry: { limit: 3, delay: 1, backoff: true, maxDelay: 2 } });
const doomed = defineQueue<{ key: string }>("test.doomed", { retry: { limit: 1, delay: 1, backoff: false } });
const ordered = defineQueue<{ group: string; n: number }>("test.ordered", { ordered: true, retry: { limit: 3, delay: 1, backoff: false }, localConcurrency: 4 });
const timed = defineQueue<{ n: number }>("test.timed");
const parallel = defineQueue<{ n: number }>("test.parallel", { localConcurrency: 2, batchSize: 3 });
/** A queue without a worker in this process: its jobs wait. */
const idle = defineQueue<{ n: number }>("test.idle");
const queues = [outbox, flaky, doomed, ordered, timed, parallel, idle] as never[];

describe("jobs core", () => {
  let app: App;
  const attempts = new Map<string, number>();
  const seen: { group: string; n: number }[] = [];
  const processed: number[] = [];

  beforeAll(async () => {
    app = await startTestApp({ roles: ["api", "worker"], queues, env: { JOBS_POLL_SECONDS: "1", JOBS_SUPERVISE_SECONDS: "1" } });
    await app.jobs.work(outbox, async ({ n }) => void processed.push(n));
    await app.jobs.work(flaky, async ({ failTimes, key }) => {
      const count = (attempts.get(key) ?? 0) + 1;
      attempts.set(key, count);
      if (count <= failTimes) throw new Error(`attempt ${count} of ${key} fails`);
    });
    await app.jobs.work(doomed, async ({ key }) => {
      attempts.set(key, (attempts.get(key) ?? 0) + 1);
      if (key.startsWith("permanent")) throw new PermanentJobError(`${key} is refused for good`);
      throw new Error(`${key} always fails`);
    });
    await app.jobs.work(ordered, async ({ group, n }) => {
      const key = `${group}:${n}`;
      const count = (attempts.get(key) ?? 0) + 1;
      attempts.set(key, count);
      // The first job of group "a" fails once: the rest of "a" must wait for it.
      if (group === "a" && n === 0 && count === 1) throw new Error("first attempt fails");
      seen.push({ group, n });
    });
    await app.jobs.work(timed, async ({ n }) => void processed.push(n));
  });
  afterAll(async () => {
    await app.stop();
  });

  const stateOf = async (id: string) =>
    (await app.pool.query<{ state: string }>(`SELECT state FROM ${app.config.jobsSchema}.job WHERE id = $1`, [id])).rows[0]?.state;

  it("a job saved in a rolled-back transaction never runs; a committed one does", async () => {
    const client = await app.pool.connect();
    await client.query("BEGIN");
    const rolledBack = await app.jobs.send(outbox, { n: 1 }, { tx: client });
    await client.query("ROLLBACK");
    await client.query("BEGIN");
    const committed = await app.jobs.send(outbox, { n: 2 }, { tx: client });
    await client.query("COMMIT");
    // Both sends ran one statement, prepared once on this connection.
    const prepared = await client.query<{ name: string }>("SELECT name FROM pg_prepared_statements WHERE name LIKE 'pgboss-%'");
    client.release();
    expect(prepared.rows).toHaveLength(1);
    await eventually(async () => ((await stateOf(committed)) === "completed" ? true : undefined), 5_000, "the committed job");
    expect(await stateOf(rolledBack)).toBeUndefined();
    expect(processed).toContain(2);
    expect(processed).not.toContain(1);
  });

  it("runs a repeated pg-boss statement prepared from its third use; others as they come", async () => {
    const client = await app.pool.connect();
    try {
      const db = { executeSql: (text: string, values?: unknown[]) => client.query(text, values) as Promise<{ rows: unknown[] }> };
      prepareRepeatedStatements(db);
      const prepared = async () =>
        (
          await client.query<{ statement: string }>("SELECT statement FROM pg_prepared_statements WHERE name LIKE 'pgboss-%' AND statement LIKE 'SELECT%'")
        ).rows.map((row) => row.statement);
      const repeated = "SELECT $1::int + 1 AS n";
      for (const n of [1, 2]) expect((await db.executeSql(repeated, [n])).rows).toEqual([{ n: n + 1 }]);
      expect(await prepared()).toEqual([]);
      expect((await db.executeSql(repeated, [3])).rows).toEqual([{ n: 4 }]);
      expect(await prepared()).toEqual([repeated]);
      for (const n of [4, 5]) expect((await db.executeSql(repeated, [n])).rows).toEqual([{ n: n + 1 }]);
      expect(await prepared()).toEqual([repeated]);
      // Without parameters a text may hold several commands: never prepared.
      for (let i = 0; i < 4; i += 1) await db.executeSql("SELECT 1; SELECT 2");
      for (let i = 0; i < 4; i += 1) await db.executeSql(`SELECT $1::int + ${i} AS n`, [i]);
      expect(await prepared()).toEqual([repeated]);
    } finally {
      client.release(true);
    }
  });

  it("runs pg-boss's own repeated statements prepared", async () => {
    // Every pool's queries, pg-boss's included: a send outside a transaction runs on pg-boss's pool.
    const query = vi.spyOn(pg.Pool.prototype, "query");
    try {
      const sent = [11, 12, 13, 14];
      for (const n of sent) await app.jobs.send(idle, { n });
      const carries = (n: number) => (call: unknown[]) => JSON.stringify(call).replaceAll("\\", "").includes(`"payload":{"n":${n}}`);
      const sends = sent.map((n) => (query.mock.calls as unknown[][]).find(carries(n))?.[0]);
      const textOf = (config: unknown) => (typeof config === "string" ? config : (config as { text: string }).text);
      // One statement text for every send: run as it is at first, prepared from its third use.
      expect(new Set(sends.map(textOf)).size).toBe(1);
      expect(sends.map((config) => (typeof config === "string" ? "plain" : (config as { name?: string }).name?.slice(0, 7)))).toEqual(["plain", "plain", "pgboss-", "pgboss-"]);
    } finally {
      query.mockRestore();
    }
  });

  it("sendMany stores each job exactly as send does, inside the caller's transaction", async () => {
    const deadline = new Date(Date.now() + 60_000);
    const startAfter = new Date(Date.now() + 300);
    const single = await app.jobs.send(flaky, { failTimes: 1, key: "sent" }, { deadline, startAfter, groupId: "g-sent" });
    const client = await app.pool.connect();
    await client.query("BEGIN");
    const [rolledBack] = await app.jobs.sendMany(flaky, [{ payload: { failTimes: 0, key: "batch-rolled-back" } }], { tx: client });
    await client.query("ROLLBACK");
    await client.query("BEGIN");
    const batch = await app.jobs.sendMany(
      flaky,
      [
        { payload: { failTimes: 1, key: "batched" }, deadline, startAfter, groupId: "g-batched" },
        { payload: { failTimes: 0, key: "batched-plain" } },
      ],
      { tx: client },
    );
    await client.query("COMMIT");
    client.release();
    expect(batch).toHaveLength(2);

    const stored = async (id: string) =>
      (
        await app.pool.query<Record<string, unknown>>(
          `SELECT name, data, priority, retry_limit, retry_delay, retry_backoff, retry_delay_max, expire_seconds, deletion_seconds,
                  extract(epoch FROM keep_until - start_after)::int AS keep_seconds, policy, dead_letter, singleton_key, start_after
             FROM ${app.config.jobsSchema}.job WHERE id = $1`,
          [id],
        )
      ).rows[0];
    const sentRow = await stored(single);
    const batchedRow = await stored(batch[0]!);
    expect(batchedRow).toEqual({
      ...sentRow,
      data: { payload: { failTimes: 1, key: "batched" }, deadline: deadline.toISOString() },
      singleton_key: "g-batched",
    });
    expect(sentRow).toMatchObject({ data: { payload: { failTimes: 1, key: "sent" } }, singleton_key: "g-sent", retry_limit: 3, dead_letter: "test.flaky.dead" });
    expect((sentRow!.start_after as Date).getTime()).toBe(startAfter.getTime());

    // Both run the same way: a first failure, a retry by the queue's policy, then success.
    for (const id of [single, ...batch]) await eventually(async () => ((await stateOf(id)) === "completed" ? true : undefined), 10_000, `job ${id}`);
    expect([attempts.get("sent"), attempts.get("batched"), attempts.get("batched-plain")]).toEqual([2, 2, 1]);
    expect((await app.jobs.get(batch[0]!))?.history.map((h) => h.error)).toEqual(["attempt 1 of batched fails"]);
    expect(await stateOf(rolledBack!)).toBeUndefined();
    expect(attempts.has("batch-rolled-back")).toBe(false);

    // A job the queue refuses (its id is taken) fails the call.
    await expect(app.jobs.sendMany(flaky, [{ payload: { failTimes: 0, key: "taken" }, id: single }])).rejects.toThrow(/refused 1 of 1 jobs/);
  });

  it("retries a failing job with backoff until it succeeds, recording each failure", async () => {
    const id = await app.jobs.send(flaky, { failTimes: 2, key: "flaky-1" });
    await eventually(async () => ((await stateOf(id)) === "completed" ? true : undefined), 20_000, "the flaky job to succeed");
    expect(attempts.get("flaky-1")).toBe(3);
    const job = await app.jobs.get(id);
    expect(job?.history.map((h) => [h.attempt, h.error])).toEqual([
      [1, "attempt 1 of flaky-1 fails"],
      [2, "attempt 2 of flaky-1 fails"],
    ]);
    const gap = job!.history[1]!.failedAt.getTime() - job!.history[0]!.failedAt.getTime();
    expect(gap).toBeGreaterThanOrEqual(500);
  });

  it("dead-letters an exhausted job with its history, and redrives it", async () => {
    const id = await app.jobs.send(doomed, { key: "exhaust-1" });
    const dead = await eventually(async () => {
      const [row] = await app.jobs.list("test.doomed.dead", "created", 10);
      return row?.sourceId === id ? row : undefined;
    }, 20_000, "the dead letter");
    expect(attempts.get("exhaust-1")).toBe(2);
    const ops = createClient(OpsService, createConnectTransport({
      baseUrl: app.url,
      httpVersion: "1.1",
      interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${ADMIN_TOKEN}`), next(req))],
    }));
    const { job } = await ops.getJob({ id: dead.id });
    expect(job?.sourceQueue).toBe("test.doomed");
    expect((job?.output?.history as { error: string }[] | undefined)?.map((h) => h.error)).toEqual(["exhaust-1 always fails", "exhaust-1 always fails"]);
    const status = await ops.getStatus({});
    expect(status.queues.find((q) => q.name === "test.doomed")?.dead).toBe(1n);
    // A dead letter is dead, not waiting: it adds nothing to queued or to the oldest wait.
    expect(status.queues.find((q) => q.name === "test.doomed.dead")).toMatchObject({ queued: 0n, retrying: 0n, dead: 1n, oldestWaitingSeconds: 0 });
    const { redriven } = await ops.redriveDeadLetters({ queue: "test.doomed", limit: 0 });
    expect(redriven).toBe(1n);
    await eventually(async () => ((attempts.get("exhaust-1") ?? 0) >= 3 ? true : undefined), 10_000, "the redriven job to run again");
    await expect(ops.redriveDeadLetters({ queue: "no.such.queue" })).rejects.toMatchObject({ code: Code.InvalidArgument });
    await expect(ops.getJob({ id: "not-a-uuid" })).rejects.toBeInstanceOf(ConnectError);
  });

  it("dead-letters at once on a permanent error", async () => {
    const id = await app.jobs.send(doomed, { key: "permanent-1" });
    await eventually(async () => {
      const rows = await app.jobs.list("test.doomed.dead", "created", 50);
      return rows.some((row) => row.sourceId === id) ? true : undefined;
    }, 10_000, "the permanent failure to be dead-lettered");
    expect(attempts.get("permanent-1")).toBe(1);
  });

  it("runs jobs of one group strictly in order, across a retry, without blocking other groups", async () => {
    for (let n = 0; n < 4; n += 1) {
      await app.jobs.send(ordered, { group: "a", n }, { groupId: "a" });
      await app.jobs.send(ordered, { group: "b", n }, { groupId: "b" });
    }
    await eventually(async () => (seen.length === 8 ? true : undefined), 20_000, "all ordered jobs");
    expect(seen.filter((s) => s.group === "a").map((s) => s.n)).toEqual([0, 1, 2, 3]);
    expect(seen.filter((s) => s.group === "b").map((s) => s.n)).toEqual([0, 1, 2, 3]);
    // Group b finished while a waited for its retry.
    expect(seen.findIndex((s) => s.group === "b" && s.n === 3)).toBeLessThan(seen.findIndex((s) => s.group === "a" && s.n === 0));
    await expect(app.jobs.send(ordered, { group: "c", n: 0 })).rejects.toThrow(/needs a groupId/);
  });

  it("runs at most localConcurrency × batchSize jobs at once", async () => {
    let running = 0;
    let peak = 0;
    const ids = await Promise.all(Array.from({ length: 12 }, (_, n) => app.jobs.send(parallel, { n })));
    await app.jobs.work(parallel, async () => {
      running += 1;
      peak = Math.max(peak, running);
      await new Promise((resolve) => setTimeout(resolve, 300));
      running -= 1;
    });
    await eventually(async () => {
      const states = await Promise.all(ids.map(stateOf));
      return states.every((s) => s === "completed") ? true : undefined;
    }, 10_000, "the parallel jobs");
    expect(peak).toBe(6);
  });

  it("does not run a job past its deadline: dead-letters and counts it", async () => {
    const late = await app.jobs.send(timed, { n: 100 }, { deadline: new Date(Date.now() - 1_000) });
    const onTime = await app.jobs.send(timed, { n: 101 }, { deadline: new Date(Date.now() + 60_000) });
    await eventually(async () => ((await stateOf(onTime)) === "completed" ? true : undefined), 5_000, "the on-time job");
    await eventually(async () => ((await stateOf(late)) === "failed" ? true : undefined), 5_000, "the late job to fail");
    expect(processed).toContain(101);
    expect(processed).not.toContain(100);
    const metrics = await app.metrics.metrics();
    expect(metrics).toMatch(/funnel_jobs_deadline_missed_total\{queue="test.timed",action="dead-letter"\} 1/);
    expect((await app.jobs.list("test.timed.dead", "created", 10)).map((j) => j.sourceId)).toContain(late);
  });

  it("reports per-queue counts and the oldest waiting job in /metrics", async () => {
    // Jobs that wait: their queue has no worker in this process (four were sent above).
    await app.jobs.send(idle, { n: 1 });
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const counts = (await app.jobs.counts()).find((q) => q.name === "test.idle");
    expect(counts).toMatchObject({ queued: 5, active: 0, dead: 0 });
    expect(counts!.oldestWaitingSeconds).toBeGreaterThan(1);
    const text = await (await fetch(`${app.metricsUrl}/metrics`)).text();
    expect(text).toMatch(/funnel_jobs\{queue="test.idle",state="queued"\} 5/);
    expect(text).toMatch(/funnel_jobs_oldest_waiting_seconds\{queue="test.idle"\} [1-9]/);
  });
});

describe("jobs cleanup", () => {
  const stale = defineQueue<{ n: number }>("test.stale", { retentionSeconds: 1, keepCompletedSeconds: 1 });
  let app: App;
  beforeAll(async () => {
    app = await startTestApp({ roles: ["worker"], queues: [stale as never], env: { JOBS_MAINTENANCE_SECONDS: "1", JOBS_SUPERVISE_SECONDS: "1", JOBS_POLL_SECONDS: "1" } });
  });
  afterAll(async () => {
    await app.stop();
  });

  const exists = async (id: string) =>
    ((await app.pool.query(`SELECT 1 FROM ${app.config.jobsSchema}.job WHERE id = $1`, [id])).rowCount ?? 0) > 0;

  it("drops never-processed jobs after their retention and counts them", async () => {
    const id = await app.jobs.send(stale, { n: 1 });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await eventually(async () => ((await exists(id)) ? undefined : true), 10_000, "the stale job to be dropped");
    expect(await app.metrics.metrics()).toMatch(/funnel_jobs_expired_unprocessed_total\{queue="test.stale"\} 1/);
  });

  it("removes completed jobs after keepCompletedSeconds", async () => {
    await app.jobs.work(stale, async () => undefined);
    const id = await app.jobs.send(stale, { n: 2 });
    await eventually(async () => {
      const { rows } = await app.pool.query<{ state: string }>(`SELECT state FROM ${app.config.jobsSchema}.job WHERE id = $1`, [id]);
      return rows[0]?.state === "completed" ? true : undefined;
    }, 10_000, "completion");
    await eventually(async () => ((await exists(id)) ? undefined : true), 20_000, "the completed job to be removed");
  });
});
