import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../services/app.js";
import { defineQueue } from "../../services/core/jobs/queue.js";
import { deliverQueue } from "../../services/seen/queue.js";
import { adminClients, Consumer, deliveriesOf, JWT_SECRET, seenClients, token } from "../support/seen.js";
import { deliveriesSettled, eventually, startTestApp, testStores } from "../support/stores.js";

const root = new URL("../..", import.meta.url).pathname;
/** Short heartbeats, so a dead process's jobs are found within seconds. */
const heartbeat = { JOBS_HEARTBEAT_SECONDS: "1", JOBS_HEARTBEAT_STALE_SECONDS: "5" };
/** An expiry far beyond the test's patience: only the heartbeat can bring the job back. */
const crashQueue = defineQueue<{ n: number }>("test.crash-heartbeat", { expireInSeconds: 600 });
const slowQueue = defineQueue<{ n: number }>("test.slow-heartbeat", { expireInSeconds: 600 });

const exited = (child: ChildProcess): Promise<NodeJS.Signals | null> =>
  new Promise((resolve) => child.once("exit", (_code, signal) => resolve(signal)));

describe("a worker process that dies mid-job", () => {
  let app: App;
  const children: ChildProcess[] = [];
  const consumer = new Consumer();
  beforeAll(async () => {
    app = await startTestApp({
      roles: ["api"],
      queues: [crashQueue as never, slowQueue as never],
      env: { ...heartbeat, JOBS_POLL_SECONDS: "1", AUTH_JWT_SECRET: JWT_SECRET, SEEN_ALLOW_PRIVATE: "true" },
    });
  });
  afterAll(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await app.stop();
    await consumer.stop();
  });

  const rescued = async (queue: string): Promise<number> => {
    const metric = await app.metrics.getSingleMetric("funnel_jobs_rescued_total")?.get();
    return metric?.values.find((value) => value.labels.queue === queue)?.value ?? 0;
  };
  const jobRow = async (id: string) =>
    (
      await app.pool.query<{ state: string; retry_count: number; moved: boolean }>(
        `SELECT state, retry_count, heartbeat_on > started_on + interval '1 second' AS moved FROM ${app.config.jobsSchema}.job WHERE id = $1`,
        [id],
      )
    ).rows[0];

  it("retries a job held by a SIGKILLed process within 60 s, long before its expiry, and runs it once more", async () => {
    const id = await app.jobs.send(crashQueue, { n: 1 });
    const { databaseUrl } = await testStores();
    const child = spawn(process.execPath, ["--import", "tsx", `${root}test/support/crash-worker.ts`], {
      env: { ...process.env, ...heartbeat, DATABASE_URL: databaseUrl, QUEUE: crashQueue.name, EXPIRE_SECONDS: "600", KILL_AFTER_MS: "2500" },
      stdio: ["ignore", "inherit", "inherit"],
    });
    children.push(child);
    expect(await exited(child)).toBe("SIGKILL");
    const killedAt = Date.now();
    expect((await jobRow(id))?.state).toBe("active");

    const runs: number[] = [];
    await app.jobs.work(crashQueue, async (_payload, context) => void runs.push(context.attempt));
    const finished = await eventually(async () => {
      const row = await jobRow(id);
      return row?.state === "completed" ? row : undefined;
    }, 60_000, "the job of the dead process to be retried and completed");
    console.log(`job of a SIGKILLed worker completed ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill (expiry 600 s)`);
    expect(finished.retry_count).toBe(1);
    expect(runs).toEqual([2]);
    expect(await rescued(crashQueue.name)).toBe(1);
    const history = (await app.jobs.get(id))?.history ?? [];
    expect(history.map((entry) => [entry.attempt, entry.error])).toEqual([[1, expect.stringMatching(/stopped heartbeating/) as unknown]]);
  }, 90_000);

  it("leaves alone a slow handler whose process is alive and heartbeating", async () => {
    const id = await app.jobs.send(slowQueue, { n: 1 });
    const runs: number[] = [];
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    await app.jobs.work(slowQueue, async (_payload, context) => {
      runs.push(context.attempt);
      await released;
    });
    // Running for twice the stale threshold, with the heartbeat moving.
    await eventually(async () => ((await jobRow(id))?.moved === true ? true : undefined), 10_000, "the running job's heartbeat to move");
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    expect((await jobRow(id))?.state).toBe("active");
    release();
    const finished = await eventually(async () => {
      const row = await jobRow(id);
      return row?.state === "completed" ? row : undefined;
    }, 10_000, "the slow job to complete");
    expect(finished.retry_count).toBe(0);
    expect(runs).toEqual([1]);
    expect(await rescued(slowQueue.name)).toBe(0);
    expect((await app.jobs.get(id))?.history).toEqual([]);
  }, 60_000);

  it("retries a Seen delivery in flight in a SIGKILLed worker process through another worker, delivering it once", async () => {
    const stores = await testStores();
    const startWorker = async (): Promise<ChildProcess> => {
      const child = spawn(process.execPath, ["--import", "tsx", `${root}test/support/worker-process.ts`], {
        env: { ...process.env, ...stores.env, ...heartbeat, JOBS_POLL_SECONDS: "1", SEEN_ALLOW_PRIVATE: "true", FUNNEL_DATA_DIR: await mkdtemp(join(tmpdir(), "funnel-worker-")) },
        stdio: ["ignore", "pipe", "inherit"],
      });
      children.push(child);
      await new Promise<void>((resolve, reject) => {
        child.stdout?.on("data", (chunk: Buffer) => {
          if (chunk.toString().includes("ready")) resolve();
        });
        child.once("exit", () => reject(new Error("the worker process exited before it was ready")));
      });
      return child;
    };
    // The first request is never answered: the worker dies waiting for it.
    consumer.answer = (_request, index) => (index === 0 ? { status: 200, body: "never", delayMs: 120_000 } : { status: 200, body: "ok" });
    await consumer.start();
    await adminClients(app).admin.createIntegration({
      integration: {
        name: "crash-owner",
        tags: ["crash"],
        enabled: true,
        delivery: { case: "api", value: { url: consumer.url, timeout: durationFromMs(60_000), initialBackoff: durationFromMs(10), maxBackoff: durationFromMs(50), maxAttempts: 0 } },
      },
    });
    const doomed = await startWorker();
    await seenClients(app, { authorization: `Bearer ${token({ sub: "u-1", uid: "4001", bound_uids: [], phone_id: "p-1" })}` }).seen.markSeen({ tag: "crash", id: "promo-1" });
    await eventually(async () => (consumer.received.length === 1 ? true : undefined), 20_000, "the delivery to be in flight");
    const survivor = await startWorker();
    doomed.kill("SIGKILL");
    expect(await exited(doomed)).toBe("SIGKILL");
    const killedAt = Date.now();
    expect(await deliveriesOf(app, "crash", "promo-1")).toMatchObject([{ status: "pending", attempts: 0 }]);

    const delivery = await eventually(async () => {
      const [found] = await deliveriesOf(app, "crash", "promo-1");
      return found?.status === "delivered" ? found : undefined;
    }, 60_000, "the delivery to be retried and delivered");
    console.log(`Seen delivery of a SIGKILLed worker delivered ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill (expiry ${deliverQueue.expireInSeconds} s)`);
    await deliveriesSettled(app, deliverQueue, [delivery.id]);
    // The killed attempt was never recorded: the retry is still attempt 1, recorded once.
    expect(delivery).toMatchObject({ status: "delivered", attempts: 1, last_error: "" });
    expect(consumer.received.map((request) => request.headers["idempotency-key"])).toEqual([delivery.id, delivery.id]);
    const { rows: attempts } = await app.pool.query("SELECT attempt, http_status, outcome FROM seen_delivery_attempts WHERE delivery_id = $1", [delivery.id]);
    expect(attempts).toEqual([{ attempt: 1, http_status: 200, outcome: "delivered" }]);
    // Two live processes looked for it every second; one failed it, once.
    const { rows: jobs } = await app.pool.query<{ state: string; retry_count: number; failures: string[] }>(
      `SELECT j.state, j.retry_count, array(SELECT f.error FROM job_failures f WHERE f.job_id = j.id) AS failures
         FROM ${app.config.jobsSchema}.job j WHERE j.name = $1 AND j.data->'payload'->>'deliveryId' = $2`,
      [deliverQueue.name, delivery.id],
    );
    expect(jobs).toEqual([{ state: "completed", retry_count: 1, failures: [expect.stringMatching(/stopped heartbeating/) as unknown] }]);
    survivor.kill("SIGTERM");
    await exited(survivor);
  }, 120_000);
});
