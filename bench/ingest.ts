import { randomUUID } from "node:crypto";
import { Pool } from "undici";
import { cpus, totalmem } from "node:os";
import { BENCH_TOKEN, type BenchServer, describeCpu, describeFlushes, percentile, readCpu, scrapeMetrics, startBenchServer, startFlushProbe } from "./support.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const SEED_RATE = 660;
const CALLERS = 64;
const BATCH_CALLERS = 8;
const BATCH = 100;
// The web SDK's shape: batches of 20 from many browser sessions, each session
// one request at a time with consecutive seq numbers.
const SDK_SESSIONS = 2_000;
const SDK_CALLERS = 64;
const SDK_BATCH = 20;

const ms = (value: number) => `${value.toFixed(2)} ms`;

/**
 * One Connect JSON POST over a pool of keep-alive HTTP/1.1 connections
 * (undici: the cheapest client at hand, since it shares the cores with the
 * server); resolves with the latency.
 */
async function post(pool: Pool, path: string, body: string, started = performance.now()): Promise<number> {
  const { statusCode, body: answer } = await pool.request({ method: "POST", path, headers: { "content-type": "application/json" }, body });
  await answer.dump();
  if (statusCode !== 200) throw new Error(`HTTP ${statusCode}`);
  return performance.now() - started;
}

/** Sequence gaps the server has counted so far (GetQuality, every day and type). */
async function gaps(url: string): Promise<number> {
  const res = await fetch(`${url}/funnel.ingest.v1.IngestService/GetQuality`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${BENCH_TOKEN}` },
    body: "{}",
  });
  const { rows = [] } = (await res.json()) as { rows?: { gaps?: string }[] };
  return rows.reduce((sum, row) => sum + Number(row.gaps ?? 0), 0);
}

let seq = 0;
const event = (session: string) => ({
  event: "element_click",
  token: null,
  event_id: randomUUID(),
  session_id: session,
  seq: ++seq,
  data: { element_type: "movie", page_type: "category" },
});

/**
 * Runs one phase; returns its lines: throughput and latency, what the server
 * did for it (from its metrics) and which processes kept the cores busy.
 */
async function phase(
  server: BenchServer,
  name: string,
  load: () => Promise<{ events: number; latencies: number[]; notes?: () => Promise<string[]> }>,
): Promise<{ text: string; events: number }> {
  const [metricsBefore, cpuBefore] = [await scrapeMetrics(server.metricsUrl), await readCpu(server.pid)];
  const started = performance.now();
  const { events, latencies, notes: noted } = await load();
  const seconds = (performance.now() - started) / 1000;
  const [metricsAfter, cpuAfter] = [await scrapeMetrics(server.metricsUrl), await readCpu(server.pid)];
  const notes = (await noted?.()) ?? [];
  latencies.sort((a, b) => a - b);
  const delta = (metric: string) => metricsAfter(metric) - metricsBefore(metric);
  const lateMs = (stat: "p99" | "max") => Math.max(0, metricsAfter(`funnel_nodejs_eventloop_lag_${stat}_seconds`) * 1000 - 10);
  const transactions = delta("funnel_ingest_commit_seconds_count");
  const indent = "".padEnd(36);
  const text = [
    `${name.padEnd(34)} ${Math.round(events / seconds).toLocaleString("en").padStart(7)} events/s   p50 ${ms(percentile(latencies, 50))}   p99 ${ms(percentile(latencies, 99))}`,
    `${indent}${transactions.toLocaleString("en")} transactions of ${(delta("funnel_ingest_commit_events_sum") / transactions).toFixed(1)} events, ${ms((delta("funnel_ingest_commit_seconds_sum") * 1000) / transactions)} each`,
    `${indent}${describeCpu(cpuBefore, cpuAfter, seconds)}`,
    // The server's event loop since the scrape before the phase (prom-client resets its
    // histogram at each scrape): how late its 10 ms sampling timer fired.
    `${indent}server event loop late by: p99 ${ms(lateMs("p99"))}, max ${ms(lateMs("max"))}`,
    ...notes.map((note) => `${indent}${note}`),
  ].join("\n");
  return { text, events };
}

/**
 * Ingest over Connect JSON against the all-in-one server in its own process
 * (embedded stores): single `Send` at the seed's 660 events/s and flat out,
 * `SendBatch` of 100 flat out, then the lag to ClickHouse and a row count
 * check once the server has stopped.
 */
export async function run(): Promise<void> {
  const server = await startBenchServer({ DATABASE_POOL_MAX: "40", ...(process.env.BENCH_PROFILE ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${process.env.BENCH_PROFILE}` } : {}) });
  const agent = new Pool(server.url, { connections: CALLERS, pipelining: 1 });
  const send = "/funnel.ingest.v1.IngestService/Send";
  const sendBatch = "/funnel.ingest.v1.IngestService/SendBatch";
  const phases: { text: string; events: number }[] = [];
  try {
    // 1. The seed's rate, open loop: one event every 1/660 s whatever the
    // answers do. The first two seconds warm up (connections, JIT) and are
    // not measured.
    // Every call is timed from its start; a probe meanwhile times the
    // disk's flushes, which every commit waits for.
    const openLoop = async (seconds: number, flushProbe?: Awaited<ReturnType<typeof startFlushProbe>>) => {
      const calls: [number, number][] = [];
      const inFlight: Promise<void>[] = [];
      const started = performance.now();
      for (let i = 0; i < SEED_RATE * seconds; i += 1) {
        const due = started + (i * 1000) / SEED_RATE;
        const wait = due - performance.now();
        if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
        const start = performance.now();
        inFlight.push(post(agent, send, JSON.stringify(event("rate")), start).then((latency) => void calls.push([start, latency])));
      }
      await Promise.all(inFlight);
      // The probe is started and stopped outside the phase's timing.
      const notes = flushProbe === undefined ? undefined : async () => [describeFlushes(await flushProbe.stop(), calls)];
      return { events: calls.length, latencies: calls.map(([, latency]) => latency), ...(notes !== undefined ? { notes } : {}) };
    };
    phases.push({ text: "", events: (await openLoop(2)).events });
    const flushProbe = await startFlushProbe(server.dir);
    phases.push(await phase(server, `Send at ${SEED_RATE}/s (open loop)`, () => openLoop(SECONDS, flushProbe)));
    // 2. Single events flat out: 64 callers, each waiting for its answer.
    phases.push(
      await phase(server, `Send max (${CALLERS} callers)`, async () => {
        const latencies: number[] = [];
        const until = performance.now() + SECONDS * 1000;
        await Promise.all(
          Array.from({ length: CALLERS }, async (_, caller) => {
            while (performance.now() < until) latencies.push(await post(agent, send, JSON.stringify(event(`single-${caller}`))));
          }),
        );
        return { events: latencies.length, latencies };
      }),
    );
    // 3. Batches of 100 flat out.
    phases.push(
      await phase(server, `SendBatch ×${BATCH} max (${BATCH_CALLERS} callers)`, async () => {
        const latencies: number[] = [];
        const until = performance.now() + SECONDS * 1000;
        await Promise.all(
          Array.from({ length: BATCH_CALLERS }, async (_, caller) => {
            while (performance.now() < until) {
              const body = JSON.stringify({ events: Array.from({ length: BATCH }, () => event(`batch-${caller}`)) });
              latencies.push(await post(agent, sendBatch, body));
            }
          }),
        );
        return { events: latencies.length * BATCH, latencies };
      }),
    );

    // 4. As the web SDK sends: SendBatch ×20 in its JSON (event_id, session_id,
    // seq, client_time), 64 browsers' requests in flight over 2,000 sessions;
    // the server must count no seq gap for them.
    const gapsBefore = await gaps(server.url);
    phases.push(
      await phase(server, `SDK SendBatch ×${SDK_BATCH} (${SDK_SESSIONS.toLocaleString("en")} sessions)`, async () => {
        const latencies: number[] = [];
        const until = performance.now() + SECONDS * 1000;
        const sessions = Array.from({ length: SDK_SESSIONS }, () => ({ id: randomUUID(), seq: 0 }));
        await Promise.all(
          Array.from({ length: SDK_CALLERS }, async (_, caller) => {
            const own = sessions.filter((_, i) => i % SDK_CALLERS === caller);
            for (let turn = 0; performance.now() < until; turn += 1) {
              const session = own[turn % own.length]!;
              const events = Array.from({ length: SDK_BATCH }, (_, i) => ({
                event: "element_click",
                data: { element_type: `tile-${i}`, page_type: "category" },
                eventId: randomUUID(),
                sessionId: session.id,
                seq: ++session.seq,
                clientTime: new Date().toISOString(),
              }));
              latencies.push(await post(agent, sendBatch, JSON.stringify({ events })));
            }
          }),
        );
        return { events: latencies.length * SDK_BATCH, latencies, notes: async () => [`seq gaps counted by the server: ${(await gaps(server.url)) - gapsBefore}`] };
      }),
    );

    const accepted = phases.reduce((sum, { events }) => sum + events, 0);
    await server.drained();
    const clickhouse = await server.stopAndOpenClickHouse();
    const db = clickhouse.database;
    let stats = { rows: 0, distinct: 0, lag50: 0, lag99: 0 };
    {
      const result = await clickhouse.client.query({
        query: `SELECT count() AS rows, uniqExact(event_id) AS distinct,
                       quantile(0.5)(dateDiff('millisecond', timestamp, inserted_at)) AS lag50,
                       quantile(0.99)(dateDiff('millisecond', timestamp, inserted_at)) AS lag99
                  FROM ${db}.element_click`,
        format: "JSONEachRow",
      });
      const row = (await result.json<Record<string, string | number>>())[0] ?? {};
      stats = { rows: Number(row.rows), distinct: Number(row.distinct), lag50: Number(row.lag50), lag99: Number(row.lag99) };
    }
    await clickhouse.close();
    console.log(`ingest benchmark: ${SECONDS} s per phase; ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.versions.node}; the server (embedded stores) in its own process, the load in the bench process`);
    for (const { text } of phases) if (text !== "") console.log(text);
    console.log(`ClickHouse lag (timestamp → inserted_at)  p50 ${ms(stats.lag50)}   p99 ${ms(stats.lag99)}`);
    const exact = stats.rows === accepted && stats.distinct === accepted;
    console.log(`accepted ${accepted.toLocaleString("en")}   rows in ClickHouse ${stats.rows.toLocaleString("en")}   distinct ${stats.distinct.toLocaleString("en")}   ${exact ? "(none lost, none duplicated)" : "(MISMATCH)"}`);
    if (!exact) process.exitCode = 1;
  } finally {
    await agent.destroy();
    await server.remove();
  }
}
