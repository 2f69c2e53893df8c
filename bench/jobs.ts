import { chmod, mkdtemp, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startApp } from "../services/app.js";
import { parseConfig } from "../services/core/config.js";
import { defineQueue } from "../services/core/jobs/queue.js";
import { withTransaction } from "../services/core/postgres.js";
import { cpuUsed, printTable, readCpu } from "./support.js";

/** Jobs stored per transaction, about a Seen mark group under load. */
const GROUP = 8;
/** Transactions storing jobs at once. */
const PRODUCERS = 8;

const benchQueue = defineQueue<{ n: number }>("bench.noop", { localConcurrency: 4, batchSize: 8 });

/**
 * `npm run bench -- jobs [--seconds 10]`: the jobs core alone, the way Seen
 * and Postback use it. Producers store jobs in transactions of 8 (a Seen mark
 * group under load stores 8–9) while a worker fetches 4 × 8 at a time (Seen's
 * delivery worker) and runs a handler that does nothing. Prints jobs stored
 * and completed per second and what a job's life (insert, fetch, complete)
 * costs in CPU, in this process and in Postgres, before its handler does any
 * work: the floor under every job-per-event design on this machine.
 */
export async function run(argv: readonly string[]): Promise<void> {
  const { values } = parseArgs({ args: [...argv], options: { seconds: { type: "string", default: "10" } } });
  const seconds = Number(values.seconds);
  const dir = await mkdtemp(join(tmpdir(), "funnel-bench-"));
  // As root, the embedded Postgres runs as the postgres user, who must reach its folder.
  await chmod(dir, 0o755);
  const app = await startApp({
    config: parseConfig({ FUNNEL_DATA_DIR: dir, PORT: "0", METRICS_PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "warn", EMBEDDED_POSTGRES_PORT: "54392", DATABASE_POOL_MAX: "20" }),
    roles: ["worker"],
    queues: [benchQueue as never],
    // The jobs core alone: no service module competes for the two cores.
    modules: [],
  });
  try {
    let completed = 0;
    await app.jobs.work(benchQueue, async () => void (completed += 1));

    /** Stores jobs in groups of GROUP from PRODUCERS transactions at a time, until `done()`. */
    const produce = async (done: (stored: number) => boolean): Promise<number> => {
      let stored = 0;
      await Promise.all(
        Array.from({ length: PRODUCERS }, async () => {
          while (!done(stored)) {
            await withTransaction(app.pool, (tx) => app.jobs.sendMany(benchQueue, Array.from({ length: GROUP }, (_, i) => ({ payload: { n: stored + i } })), { tx }));
            stored += GROUP;
          }
        }),
      );
      return stored;
    };
    const drained = async (total: number): Promise<number> => {
      const started = performance.now();
      while (completed < total) {
        if (performance.now() - started > 600_000) throw new Error(`${total - completed} jobs still not completed after 10 minutes`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return (performance.now() - started) / 1000;
    };

    // Warm-up: connections, compilation, prepared statements, the planner's first statistics.
    const warm = await produce((stored) => stored >= 4_000);
    await drained(warm);

    // This process runs the jobs core: it is the server here.
    const cpuBefore = await readCpu(process.pid);
    const started = performance.now();
    const completedBefore = completed;
    const until = started + seconds * 1000;
    const stored = await produce(() => performance.now() >= until);
    const loadSeconds = (performance.now() - started) / 1000;
    const completedDuringLoad = completed - completedBefore;
    const drainSeconds = await drained(warm + stored);
    const totalSeconds = (performance.now() - started) / 1000;
    const used = cpuUsed(cpuBefore, await readCpu(process.pid));

    console.log(
      `jobs: ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; the jobs core alone in the bench process on embedded Postgres; ` +
        `${PRODUCERS} producers storing ${GROUP} jobs per transaction, one worker fetching 4 × 8, a handler that does nothing; load average ${loadavg().map((n) => n.toFixed(2)).join(" ")}`,
    );
    printTable([
      ["", `${stored} jobs`],
      ["stored/s while storing", (stored / loadSeconds).toFixed(0)],
      ["completed/s while storing", (completedDuringLoad / loadSeconds).toFixed(0)],
      ["backlog drained after storing stopped (s)", drainSeconds.toFixed(1)],
      ["jobs/s, first store to last completion", (stored / totalSeconds).toFixed(0)],
      ["cores busy (this process / Postgres)", `${(used.server / totalSeconds).toFixed(2)} / ${(used.postgres / totalSeconds).toFixed(2)}`],
      ["CPU per job (µs, this process / Postgres)", `${((used.server / stored) * 1e6).toFixed(0)} / ${((used.postgres / stored) * 1e6).toFixed(0)}`],
    ]);
    if (completed !== warm + stored) process.exitCode = 1;
  } finally {
    await app.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
