import http from "node:http";
import type { AddressInfo } from "node:net";
import { cpus, loadavg, totalmem } from "node:os";
import { parseArgs } from "node:util";
import { createClient } from "@connectrpc/connect";
import autocannon from "autocannon";
import { SeenAdminService } from "../gen/funnel/seen/v1/admin_pb.js";
import { describeCpu, percentile, readCpu, type Scrape, scrapeMetrics, startBenchServer } from "./support.js";

/** The local consumer: counts deliveries per Idempotency-Key and the mark → 2xx latency. */
class Consumer {
  readonly keys = new Map<string, number>();
  /** Latency (ms) of each first delivery, with the phase it belongs to. */
  readonly latencies: { phase: string; ms: number }[] = [];
  phase = "peak";
  received = 0;
  readonly #server = http.createServer((req, res) => {
    let text = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => (text += chunk));
    req.on("end", () => {
      this.received += 1;
      const key = String(req.headers["idempotency-key"]);
      const seen = this.keys.get(key) ?? 0;
      this.keys.set(key, seen + 1);
      if (seen === 0) {
        const body = JSON.parse(text) as { seen_at: string };
        this.latencies.push({ phase: this.phase, ms: Date.now() - Date.parse(body.seen_at) });
      }
      res.writeHead(204).end();
    });
  });
  url = "";

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/seen`;
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  get duplicates(): number {
    let extra = 0;
    for (const count of this.keys.values()) extra += count - 1;
    return extra;
  }
}

interface MarkLoad {
  readonly requests: number;
  readonly rate: number;
  readonly p50: number;
  readonly p99: number;
  readonly ok: number;
  readonly notOk: number;
  readonly errors: number;
}

/** MarkSeen over Connect JSON, each request a new id (so each one is a new mark and a delivery). */
async function markLoad(base: string, prefix: string, options: { connections: number; amount?: number; seconds?: number; rate?: number }): Promise<MarkLoad> {
  let n = 0;
  const started = performance.now();
  const result = await autocannon({
    url: `${base}/funnel.seen.v1.SeenService/MarkSeen`,
    method: "POST",
    headers: { "content-type": "application/json", "x-funnel-device-id": "bench-device" },
    connections: options.connections,
    ...(options.amount !== undefined ? { amount: options.amount } : { duration: options.seconds ?? 10 }),
    ...(options.rate !== undefined ? { overallRate: options.rate } : {}),
    requests: [{ method: "POST", setupRequest: (request) => ({ ...request, body: JSON.stringify({ tag: "bench", id: `${prefix}-${(n += 1)}` }) }) }],
  });
  const elapsed = (performance.now() - started) / 1000;
  return {
    requests: result.requests.total,
    rate: result.requests.total / elapsed,
    p50: result.latency.p50,
    p99: result.latency.p99,
    ok: result["2xx"],
    notOk: result.non2xx,
    errors: result.errors + result.timeouts,
  };
}

/** Mean marks per group commit and its mean duration between two scrapes of the server's /metrics. */
function groupStats(before: Scrape, after: Scrape): { marks: number; ms: number } {
  const delta = (name: string) => after(name) - before(name);
  const groups = delta("funnel_seen_mark_group_marks_count");
  return { marks: delta("funnel_seen_mark_group_marks_sum") / groups, ms: (delta("funnel_seen_mark_group_seconds_sum") / groups) * 1000 };
}

/**
 * `npm run bench -- seen [--seconds 20] [--latency-seconds 30]`: MarkSeen over
 * Connect JSON with 64 connections on the all-in-one server in its own process (embedded stores)
 * while a local consumer receives the api deliveries; then 100 marks/s to
 * measure mark → consumer latency. Deliveries must equal marks, no duplicates.
 */
export async function run(argv: readonly string[]): Promise<void> {
  const { values } = parseArgs({
    args: [...argv],
    options: { seconds: { type: "string", default: "20" }, "latency-seconds": { type: "string", default: "30" } },
  });
  const seconds = Number(values.seconds);
  const latencySeconds = Number(values["latency-seconds"]);
  const consumer = new Consumer();
  await consumer.start();

  // The consumer is a local server.
  const server = await startBenchServer({ DATABASE_POOL_MAX: "40", SEEN_ALLOW_PRIVATE: "true", ...(process.env.BENCH_PROFILE ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${process.env.BENCH_PROFILE}` } : {}) });
  const base = server.url;
  try {
    await createClient(SeenAdminService, server.transport).createIntegration({
      integration: { name: "bench-consumer", tags: ["bench"], enabled: true, delivery: { case: "api", value: { url: consumer.url } } },
    });

    /** Waits until the consumer has `count` distinct deliveries; returns the seconds it took. */
    const deliveredAll = async (count: number): Promise<number> => {
      const started = Date.now();
      while (consumer.keys.size < count && Date.now() - started < 600_000) await new Promise((resolve) => setTimeout(resolve, 100));
      return (Date.now() - started) / 1000;
    };

    // Warm-up (connections, JIT, the first planner statistics of the new
    // tables), which also sizes the measured run to about `seconds`; exact
    // request counts, so no request is in flight at the end. With a warm-up of
    // 1,000 marks (about a second), about one run in three warmed up slowly
    // and then measured about 1,400 marks/s in a run sized short from it.
    const warm = await markLoad(base, "warm", { connections: 64, amount: 5_000 });
    await deliveredAll(warm.ok);
    const metricsBefore = await scrapeMetrics(server.metricsUrl);
    const peakStarted = Date.now();
    const cpuBefore = await readCpu(server.pid);
    const peak = await markLoad(base, "peak", { connections: 64, amount: Math.max(1_000, Math.round(warm.rate * seconds)) });
    const peakCpu = describeCpu(cpuBefore, await readCpu(server.pid), (Date.now() - peakStarted) / 1000);
    const drainSeconds = await deliveredAll(warm.ok + peak.ok);
    const groups = groupStats(metricsBefore, await scrapeMetrics(server.metricsUrl));
    const deliveryRate = peak.ok / ((Date.now() - peakStarted) / 1000);

    consumer.phase = "paced";
    const paced = await markLoad(base, "paced", { connections: 8, amount: 100 * latencySeconds, rate: 100 });
    await deliveredAll(warm.ok + peak.ok + paced.ok);
    const pacedLatency = consumer.latencies.filter((entry) => entry.phase === "paced").map((entry) => entry.ms).sort((a, b) => a - b);
    const marks = warm.ok + peak.ok + paced.ok;

    const rows = [
      ["", `MarkSeen, 64 conns, ${peak.requests} requests`, `MarkSeen, 100/s, ${paced.requests} requests`],
      ["marks/s", peak.rate.toFixed(0), paced.rate.toFixed(0)],
      ["MarkSeen p50 / p99 (ms)", `${peak.p50} / ${peak.p99}`, `${paced.p50} / ${paced.p99}`],
      ["200s / non-2xx / errors", `${peak.ok} / ${peak.notOk} / ${peak.errors}`, `${paced.ok} / ${paced.notOk} / ${paced.errors}`],
      ["marks per transaction (mean) / commit (ms, mean)", `${groups.marks.toFixed(1)} / ${groups.ms.toFixed(1)}`, "-"],
      ["deliveries/s (marks to last delivery)", deliveryRate.toFixed(0), "-"],
      ["backlog drained after the load (s)", drainSeconds.toFixed(1), "-"],
      ["delivery latency p50 / p99 (ms)", "-", `${percentile(pacedLatency, 50)} / ${percentile(pacedLatency, 99)}`],
    ];
    const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
    console.log(
      `seen: ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; Funnel all-in-one in its own process on embedded Postgres + ClickHouse; one api integration; autocannon and the consumer in the bench process; load average ${loadavg().map((n) => n.toFixed(2)).join(" ")}`,
    );
    for (const row of rows) console.log(row.map((cell, c) => cell.padEnd(widths[c]!)).join("  "));
    console.log(`during the 64-connection run, ${peakCpu} (the load generator is autocannon plus the consumer)`);
    console.log(`deliveries received: ${consumer.keys.size} distinct for ${marks} marks, ${consumer.duplicates} duplicates`);
    if (consumer.keys.size !== marks || consumer.duplicates > 0) process.exitCode = 1;
  } finally {
    await server.remove();
    await consumer.stop();
  }
}
