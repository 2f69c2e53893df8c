import net from "node:net";
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

/** Connections that start a request and never finish it (see {@link holdSlowConnections}). */
interface SlowConnections {
  /** How many times the server closed one (each is opened again at once). */
  readonly closedByServer: number;
  stop(): void;
}

/**
 * Keeps `count` connections open to `url` that each send the start of a
 * `/track` request and then nothing, as a slow or hostile client does; each
 * one the server closes is opened again, so `count` stay open throughout.
 */
async function holdSlowConnections(url: URL, count: number): Promise<SlowConnections> {
  let running = true;
  let closedByServer = 0;
  const sockets = new Set<net.Socket>();
  const open = (): Promise<void> =>
    new Promise((resolve) => {
      const socket = net.connect(Number(url.port), url.hostname, () => {
        socket.write("GET /track?id=");
        resolve();
      });
      sockets.add(socket);
      // Reads (and drops) the server's 408, so that its close is seen.
      socket.resume();
      socket.on("error", () => resolve());
      socket.on("close", () => {
        sockets.delete(socket);
        if (!running) return;
        closedByServer += 1;
        void open();
      });
    });
  await Promise.all(Array.from({ length: count }, open));
  return {
    get closedByServer() {
      return closedByServer;
    },
    stop() {
      running = false;
      for (const socket of sockets) socket.destroy();
    },
  };
}

/**
 * `npm run bench -- track [--seconds 20] [--soak-seconds 600]`: the bare-Node
 * limit (a plain http server answering 204), then `/track` on the all-in-one
 * process over embedded stores with 64 connections, then a 100 req/s soak; after
 * each `/track` run the rows in ClickHouse must equal the 204s. Last, `/track`
 * at 1,000 req/s in rounds without and with 1,000 slow connections open (each
 * sends half a request line and stalls until the server's header timeout
 * closes it, then comes back).
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

    const slowTracker = (await trackers.createTracker({ value: "bench-slow-clients" })).tracker!.uuid;
    const slowFrom = new Date(Date.now() - 60_000);
    // Rounds without and with slow connections take turns, so that a change
    // in the machine's other load falls on both alike.
    const rounds = 3;
    // Each round outlasts the header timeout (10 s), so the slow connections are closed and come back.
    const steady = { connections: 16, amount: 1_000 * Math.max(seconds, 15), rate: 1_000 };
    const calm: Load[] = [];
    const besieged: Load[] = [];
    let closedByServer = 0;
    for (let round = 0; round < rounds; round += 1) {
      calm.push(await load(`${base}/track?id=${slowTracker}`, steady));
      const slowClients = await holdSlowConnections(new URL(base), 1_000);
      try {
        besieged.push(await load(`${base}/track?id=${slowTracker}`, steady));
      } finally {
        closedByServer += slowClients.closedByServer;
        slowClients.stop();
      }
    }
    const slowRows = await rowsOnceDrained(slowTracker, slowFrom);

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
    console.log("");
    const each = (runs: readonly Load[], cell: (run: Load) => string): string => runs.map(cell).join(", ");
    const sum = (runs: readonly Load[], count: (run: Load) => number): number => runs.reduce((total, run) => total + count(run), 0);
    printTable([
      [`/track, 16 conns at 1,000 req/s, ${rounds} rounds each`, "no slow connections", "1,000 slow connections open"],
      ["requests/s", each(calm, (run) => run.rate.toFixed(0)), each(besieged, (run) => run.rate.toFixed(0))],
      ["latency p50 / p99 (ms)", each(calm, (run) => `${run.p50} / ${run.p99}`), each(besieged, (run) => `${run.p50} / ${run.p99}`)],
      ["latency max (ms)", each(calm, (run) => String(run.max)), each(besieged, (run) => String(run.max))],
      ["204s / non-2xx / errors", `${sum(calm, (run) => run.ok)} / ${sum(calm, (run) => run.notOk)} / ${sum(calm, (run) => run.errors)}`, `${sum(besieged, (run) => run.ok)} / ${sum(besieged, (run) => run.notOk)} / ${sum(besieged, (run) => run.errors)}`],
      ["slow connections closed by the server", "-", String(closedByServer)],
    ]);
    const slowOk = sum(calm, (run) => run.ok) + sum(besieged, (run) => run.ok);
    console.log(`rows in ClickHouse for both: ${slowRows}${slowRows === slowOk ? " (= 204s)" : ` (NOT the ${slowOk} 204s)`}`);
    if (peakRows !== peak.ok || soakRows !== soak.ok || slowRows !== slowOk || totals?.n !== totals?.distinct) process.exitCode = 1;
  } finally {
    await server.remove();
  }
}
