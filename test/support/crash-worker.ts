// A worker that dies by SIGKILL in the middle of its first job, KILL_AFTER_MS into it.
import pg from "pg";
import { parseConfig } from "../../services/core/config.js";
import { Jobs } from "../../services/core/jobs/jobs.js";
import { defineQueue } from "../../services/core/jobs/queue.js";
import { createLogger } from "../../services/core/logger.js";
import { createMetricsRegistry } from "../../services/core/metrics.js";

const url = process.env.DATABASE_URL ?? "";
const config = parseConfig({
  DATABASE_URL: url,
  JOBS_HEARTBEAT_SECONDS: process.env.JOBS_HEARTBEAT_SECONDS,
  JOBS_HEARTBEAT_STALE_SECONDS: process.env.JOBS_HEARTBEAT_STALE_SECONDS,
});
const queue = defineQueue<{ n: number }>(process.env.QUEUE ?? "", { expireInSeconds: Number(process.env.EXPIRE_SECONDS ?? 2) });
const killAfterMs = Number(process.env.KILL_AFTER_MS ?? 0);
const pool = new pg.Pool({ connectionString: url });
const jobs = new Jobs({
  url,
  schema: "pgboss",
  pool,
  log: createLogger("silent", false),
  metrics: createMetricsRegistry(),
  queues: [queue as never],
  heartbeatSeconds: config.jobsHeartbeatSeconds,
  staleSeconds: config.jobsHeartbeatStaleSeconds,
});
await jobs.start();
await jobs.work(queue, async () => {
  await new Promise((resolve) => setTimeout(resolve, killAfterMs));
  process.kill(process.pid, "SIGKILL");
  await new Promise(() => undefined);
});
