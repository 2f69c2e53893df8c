import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../services/app.js";
import { defineQueue } from "../../services/core/jobs/queue.js";
import { eventually, startTestApp, testStores } from "../support/stores.js";

const root = new URL("../..", import.meta.url).pathname;
const queue = defineQueue<{ n: number }>("test.crash", { expireInSeconds: 2 });

describe("at-least-once under a crash", () => {
  let app: App;
  beforeAll(async () => {
    app = await startTestApp({ roles: ["worker"], queues: [queue as never], env: { JOBS_SUPERVISE_SECONDS: "1", JOBS_POLL_SECONDS: "1" } });
  });
  afterAll(async () => {
    await app.stop();
  });

  it("a job whose worker is SIGKILLed mid-run is retried after its expiry and finishes", async () => {
    const id = await app.jobs.send(queue, { n: 1 });
    const { databaseUrl } = await testStores();
    const child = spawn(process.execPath, ["--import", "tsx", `${root}test/support/crash-worker.ts`], {
      env: { ...process.env, DATABASE_URL: databaseUrl, QUEUE: queue.name },
      stdio: ["ignore", "inherit", "inherit"],
    });
    const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_code, sig) => resolve(sig)));
    expect(signal).toBe("SIGKILL");
    const state = async () =>
      (await app.pool.query<{ state: string; retry_count: number }>(`SELECT state, retry_count FROM pgboss.job WHERE id = $1`, [id])).rows[0];
    expect((await state())?.state).toBe("active");

    const runs: number[] = [];
    await app.jobs.work(queue, async (_payload, context) => void runs.push(context.attempt));
    const finished = await eventually(async () => {
      const row = await state();
      return row?.state === "completed" ? row : undefined;
    }, 30_000, "the job to be retried and completed");
    expect(finished.retry_count).toBe(1);
    expect(runs).toEqual([2]);
  });
});
