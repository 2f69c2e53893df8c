import { spawn, type ChildProcess } from "node:child_process";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import autocannon from "autocannon";
import { OpsService } from "../gen/funnel/ops/v1/ops_pb.js";
import { TrackerService } from "../gen/funnel/tracker/v1/tracker_pb.js";

const root = new URL("..", import.meta.url).pathname;
const TOKEN = "bench-admin-token-0123456789";

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts a child process and resolves once `url` answers 200. */
export async function startProcess(args: string[], env: Record<string, string>, readyUrl: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "inherit"] });
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${args.join(" ")} exited with ${child.exitCode}`);
    try {
      if ((await fetch(readyUrl)).ok) return child;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  child.kill("SIGKILL");
  throw new Error(`${readyUrl} did not become ready`);
}

export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
}

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

  const dir = await mkdtemp(join(tmpdir(), "funnel-bench-track-"));
  await chmod(dir, 0o755);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = await startProcess(
    [join(root, "services/bin.js"), "all"],
    { FUNNEL_DATA_DIR: dir, PORT: String(port), HOST: "127.0.0.1", LOG_LEVEL: "warn", FUNNEL_ADMIN_TOKEN: TOKEN, EMBEDDED_POSTGRES_PORT: String(await freePort()) },
    `${base}/readyz`,
  );
  try {
    const transport = createConnectTransport({
      baseUrl: base,
      httpVersion: "1.1",
      interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${TOKEN}`), next(req))],
    });
    const trackers = createClient(TrackerService, transport);
    const ops = createClient(OpsService, transport);

    /** Hits of `id` in ClickHouse once the analytics stream has nothing left. */
    const rowsOnceDrained = async (id: string, from: Date): Promise<number> => {
      const deadline = Date.now() + 300_000;
      while (Date.now() < deadline) {
        const status = await ops.getStatus({});
        if (Number(status.analytics?.backlogRows ?? 0) === 0) break;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
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

    const rows = [
      ["", "bare Node (204)", `/track, 64 conns, ${peak.requests} requests`, `/track soak, 100 req/s, ${soak.requests} requests`],
      ["requests/s", bareLoad.rate.toFixed(0), peak.rate.toFixed(0), soak.rate.toFixed(0)],
      ["of bare Node", "100 %", `${((100 * peak.rate) / bareLoad.rate).toFixed(0)} %`, "-"],
      ["latency p50 / p99 / max (ms)", `${bareLoad.p50} / ${bareLoad.p99} / ${bareLoad.max}`, `${peak.p50} / ${peak.p99} / ${peak.max}`, `${soak.p50} / ${soak.p99} / ${soak.max}`],
      ["204s / non-2xx / errors", `${bareLoad.ok} / ${bareLoad.notOk} / ${bareLoad.errors}`, `${peak.ok} / ${peak.notOk} / ${peak.errors}`, `${soak.ok} / ${soak.notOk} / ${soak.errors}`],
      ["rows in ClickHouse", "-", String(peakRows), String(soakRows)],
      ["rows = 204s", "-", peakRows === peak.ok ? "yes" : `NO (${peakRows - peak.ok})`, soakRows === soak.ok ? "yes" : `NO (${soakRows - soak.ok})`],
    ];
    const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
    console.log(`track: ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; Funnel all-in-one on embedded Postgres + ClickHouse; autocannon in the bench process`);
    for (const row of rows) console.log(row.map((cell, c) => cell.padEnd(widths[c]!)).join("  "));
    if (peakRows !== peak.ok || soakRows !== soak.ok) process.exitCode = 1;
  } finally {
    await stopProcess(server);
    await rm(dir, { recursive: true, force: true });
  }
}
