import { cpus, totalmem } from "node:os";
import { parseArgs } from "node:util";
import { createClient } from "@connectrpc/connect";
import autocannon from "autocannon";
import { TrackerService } from "../gen/funnel/tracker/v1/tracker_pb.js";
import { freePort, printTable, startBenchServer, startProcess, stopProcess } from "./support.js";

export interface Load {
  readonly requests: number;
  readonly rate: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly ok: number;
  readonly notOk: number;
  readonly errors: number;
}

/**
 * Runs a load for `seconds`, or for exactly `amount` requests: then none is in
 * flight when it ends, so every request the server answered was also counted.
 */
export async function load(url: string, options: { connections: number; seconds?: number; amount?: number; rate?: number }): Promise<Load> {
  const started = performance.now();
  const result = await autocannon({
    url,
    connections: options.connections,
    ...(options.amount !== undefined ? { amount: options.amount } : { duration: options.seconds ?? 10 }),
    ...(options.rate !== undefined ? { overallRate: options.rate } : {}),
  });
  const elapsed = (performance.now() - started) / 1000;
  return {
    requests: result.requests.total,
    rate: result.requests.total / elapsed,
    p50: result.latency.p50,
    p99: result.latency.p99,
    max: result.latency.max,
    ok: result["2xx"],
    notOk: result.non2xx,
    errors: result.errors + result.timeouts,
  };
}

/**
 * `npm run bench -- track [--seconds 20] [--soak-seconds 600]`: the bare-Node
 * limit (a plain http server answering 204), then `/track` on the all-in-one
 * process over embedded stores with 64 connections, then a 100 req/s soak; after
 * each `/track` run the rows in ClickHouse must equal the 204s.
 */
export async function run(argv: readonly string[]): Promise<void> {
  const { values } = parseArgs({
    args: [...argv],
    options: { seconds: { type: "string", default: "20" }, "soak-seconds": { type: "string", default: "600" } },
  });
  const seconds = Number(values.seconds);
  const soakSeconds = Number(values["soak-seconds"]);

  const barePort = await freePort();
  const bare = await startProcess(
    ["-e", `require("node:http").createServer((q, s) => { s.writeHead(q.url === "/ready" ? 200 : 204); s.end(); }).listen(${barePort}, "127.0.0.1")`],
    {},
    `http://127.0.0.1:${barePort}/ready`,
  );
  let bareLoad: Load;
  try {
    bareLoad = await load(`http://127.0.0.1:${barePort}/`, { connections: 64, seconds: Math.min(seconds, 10) });
  } finally {
    await stopProcess(bare);
  }

  const server = await startBenchServer();
  const base = server.url;
  try {
    const trackers = createClient(TrackerService, server.transport);

    /** Hits of `id` in ClickHouse (as /stats counts them) once the analytics stream has nothing left. */
    const rowsOnceDrained = async (id: string, from: Date): Promise<number> => {
      await server.drained();
      const to = new Date(Date.now() + 60_000);
      return Number((await trackers.getStats({ trackerId: id, from: from.toISOString(), to: to.toISOString() })).count);
    };

    const peakTracker = (await trackers.createTracker({ value: "bench-peak" })).tracker!.uuid;
    const peakFrom = new Date(Date.now() - 60_000);
    // Warm-up (connections, JIT, the cache), which also sizes the measured run
    // to about `seconds` as an exact number of requests.
    const warm = await load(`${base}/track?id=${peakTracker}`, { connections: 64, seconds: 3 });
    const warmRows = await rowsOnceDrained(peakTracker, peakFrom);
    const peak = await load(`${base}/track?id=${peakTracker}`, { connections: 64, amount: Math.round(warm.rate * seconds) });
    const peakRows = (await rowsOnceDrained(peakTracker, peakFrom)) - warmRows;

    const soakTracker = (await trackers.createTracker({ value: "bench-soak" })).tracker!.uuid;
    const soakFrom = new Date(Date.now() - 60_000);
    const soak = await load(`${base}/track?id=${soakTracker}`, { connections: 8, amount: 100 * soakSeconds, rate: 100 });
    const soakRows = await rowsOnceDrained(soakTracker, soakFrom);

    // Every hit has its own event_id: distinct ids equal rows when nothing was inserted twice.
    const clickhouse = await server.stopAndOpenClickHouse();
    const result = await clickhouse.client.query({
      query: `SELECT count() AS n, uniqExact(event_id) AS distinct FROM ${clickhouse.database}.tracker_events`,
      format: "JSONEachRow",
    });
    const totals = (await result.json<{ n: string; distinct: string }>())[0];
    await clickhouse.close();

    console.log(`track: ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; Funnel all-in-one on embedded Postgres + ClickHouse in its own process; autocannon in the bench process`);
    printTable([
      ["", "bare Node (204)", `/track, 64 conns, ${peak.requests} requests`, `/track soak, 100 req/s, ${soak.requests} requests`],
      ["requests/s", bareLoad.rate.toFixed(0), peak.rate.toFixed(0), soak.rate.toFixed(0)],
      ["of bare Node", "100 %", `${((100 * peak.rate) / bareLoad.rate).toFixed(0)} %`, "-"],
      ["latency p50 / p99 / max (ms)", `${bareLoad.p50} / ${bareLoad.p99} / ${bareLoad.max}`, `${peak.p50} / ${peak.p99} / ${peak.max}`, `${soak.p50} / ${soak.p99} / ${soak.max}`],
      ["204s / non-2xx / errors", `${bareLoad.ok} / ${bareLoad.notOk} / ${bareLoad.errors}`, `${peak.ok} / ${peak.notOk} / ${peak.errors}`, `${soak.ok} / ${soak.notOk} / ${soak.errors}`],
      ["rows in ClickHouse", "-", String(peakRows), String(soakRows)],
      ["rows = 204s", "-", peakRows === peak.ok ? "yes" : `NO (${peakRows - peak.ok})`, soakRows === soak.ok ? "yes" : `NO (${soakRows - soak.ok})`],
    ]);
    console.log(`all tracker_events rows: ${totals?.n ?? "?"}, distinct event ids: ${totals?.distinct ?? "?"}`);
    if (peakRows !== peak.ok || soakRows !== soak.ok || totals?.n !== totals?.distinct) process.exitCode = 1;
  } finally {
    await server.remove();
  }
}
