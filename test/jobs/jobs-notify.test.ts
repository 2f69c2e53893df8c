import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../services/app.js";
import { defineQueue } from "../../services/core/jobs/queue.js";
import { eventually, startTestApp } from "../support/stores.js";

const wake = defineQueue<{ sentAt: number }>("test.wake", { localConcurrency: 1 });
const slow = defineQueue<{ ms: number }>("test.slow", { localConcurrency: 1 });

describe("jobs are woken by NOTIFY and drained on shutdown", () => {
  let app: App;
  beforeAll(async () => {
    // Polling every 30 s: only NOTIFY can explain a sub-second start.
    app = await startTestApp({ roles: ["worker"], env: { JOBS_POLL_SECONDS: "30" }, queues: [wake, slow] as never[] });
  });
  afterAll(async () => {
    await app.stop();
  });

  it("starts a newly sent job within 500 ms with a 30 s polling interval", async () => {
    const latencies: number[] = [];
    let resolveStarted: (() => void) | undefined;
    await app.jobs.work(wake, async ({ sentAt }) => {
      latencies.push(Date.now() - sentAt);
      resolveStarted?.();
    });
    // Let the worker's first (empty) fetch pass, so it is idle and waiting.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    for (let i = 0; i < 5; i += 1) {
      const started = new Promise<void>((resolve) => (resolveStarted = resolve));
      await app.jobs.send(wake, { sentAt: Date.now() });
      await started;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(latencies).toHaveLength(5);
    expect(Math.max(...latencies)).toBeLessThan(500);
  });

  it("lets an in-flight job finish when the process stops", async () => {
    let started = false;
    await app.jobs.work(slow, async ({ ms }) => {
      started = true;
      await new Promise((resolve) => setTimeout(resolve, ms));
    });
    const id = await app.jobs.send(slow, { ms: 1_500 });
    await eventually(async () => (started ? true : undefined), 5_000, "the slow job to start");
    const pool = app.pool;
    const schema = app.config.jobsSchema;
    // Read the outcome through a separate connection after stop() closed the app's pool.
    const { databaseUrl } = await import("../support/stores.js").then((m) => m.testStores());
    await app.stop();
    const pg = await import("pg");
    const client = new pg.default.Client({ connectionString: databaseUrl });
    await client.connect();
    const { rows } = await client.query<{ state: string }>(`SELECT state FROM ${schema}.job WHERE id = $1`, [id]);
    await client.end();
    expect(pool.totalCount).toBe(0);
    expect(rows[0]?.state).toBe("completed");
    app = await startTestApp({ roles: ["worker"] });
  });
});
