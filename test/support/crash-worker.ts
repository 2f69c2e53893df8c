// A worker that dies by SIGKILL in the middle of its first job.
import pg from "pg";
import { Jobs } from "../../services/core/jobs/jobs.js";
import { defineQueue } from "../../services/core/jobs/queue.js";
import { createLogger } from "../../services/core/logger.js";
import { createMetricsRegistry } from "../../services/core/metrics.js";

const url = process.env.DATABASE_URL ?? "";
const queue = defineQueue<{ n: number }>(process.env.QUEUE ?? "", { expireInSeconds: 2 });
const pool = new pg.Pool({ connectionString: url });
const jobs = new Jobs({ url, schema: "pgboss", pool, log: createLogger("silent", false), metrics: createMetricsRegistry(), queues: [queue as never] });
await jobs.start();
await jobs.work(queue, async () => {
  process.kill(process.pid, "SIGKILL");
  await new Promise(() => undefined);
});
