import { chmod, mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import autocannon from "autocannon";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { HttpMethod, PartnerService } from "../gen/funnel/postback/v1/partner_pb.js";
import { PostbackService } from "../gen/funnel/postback/v1/postback_pb.js";
import { startApp, type App, type Role } from "../services/app.js";
import { parseConfig } from "../services/core/config.js";
import { BENCH_TOKEN, describeCpu, percentile, readCpu, startBenchServer } from "./support.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
/** Postbacks queued before the worker starts, for the throughput run. */
const BACKLOG = Number(process.env.BENCH_BACKLOG ?? 20_000);
const RATE = 100;
const FAILING_EVENTS = Number(process.env.BENCH_FAILING_EVENTS ?? 1_000);
/** The second recording run: more callers than the first, for what group commit does with more concurrency. */
const WIDE_CALLERS = Number(process.env.BENCH_WIDE_CALLERS ?? 128);
const WIDE_EVENTS = Number(process.env.BENCH_WIDE_EVENTS ?? 10_000);
/** Installs recorded by the server in its own process (phase 0). */
const OWN_PROCESS_EVENTS = Number(process.env.BENCH_OWN_PROCESS_EVENTS ?? 20_000);

/** A partner endpoint recording when each stag arrived; `failRate` of requests get a 503. */
async function partnerServer() {
  const arrivals = new Map<string, number[]>();
  const ok = new Map<string, number>();
  let failRate = 0;
  let requests = 0;
  const server = http.createServer((req, res) => {
    requests += 1;
    const stag = new URL(req.url ?? "/", "http://x").searchParams.get("s") ?? "";
    const now = performance.now();
    arrivals.set(stag, [...(arrivals.get(stag) ?? []), now]);
    if (Math.random() < failRate) {
      res.writeHead(503);
      res.end("busy");
      return;
    }
    ok.set(stag, (ok.get(stag) ?? 0) + 1);
    res.writeHead(200);
    res.end("ok");
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    arrivals,
    ok,
    requests: () => requests,
    setFailRate: (rate: number) => void (failRate = rate),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The bench partner: installs go to `partnerUrl`, retried quickly. */
const benchPartner = (partnerUrl: string) => ({
  id: "bench",
  name: "bench",
  enabled: true,
  install: { enabled: true, method: HttpMethod.GET, urlTemplate: `${partnerUrl}/pb?s={stag}&c={stag_clickID}&ts={timestamp}` },
  timeout: durationFromMs(5_000),
  retry: { maxAttempts: 20, initialDelay: durationFromMs(100), maxDelay: durationFromMs(1_000) },
});

interface OwnProcessRecording {
  readonly connections: number;
  readonly rate: number;
  readonly p50: number;
  readonly p99: number;
  readonly answeredOk: number;
  readonly failed: number;
  /** Of `funnel_postback_events_total{outcome="queued"}` on the server, what this run added. */
  readonly queued: number;
  /** Mean events per group commit in this run. */
  readonly groupMean: number;
  /** Cores busy in the server, Postgres and this process meanwhile. */
  readonly cpu: string;
}

/** The server's funnel event counters that phase 0 reads before and after each run. */
async function eventCounters(metricsUrl: string): Promise<{ queued: number; groupEvents: number; groups: number }> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  const sum = (pattern: RegExp) => [...text.matchAll(pattern)].reduce((total, match) => total + Number(match[1]), 0);
  return {
    queued: sum(/^funnel_postback_events_total\{[^}]*outcome="queued"[^}]*\} (\S+)$/gm),
    groupEvents: sum(/^funnel_postback_event_group_events_sum (\S+)$/gm),
    groups: sum(/^funnel_postback_event_group_events_count (\S+)$/gm),
  };
}

/**
 * Phase 0: the server in its own process (api role, as phase 1's recording
 * runs: no worker delivers meanwhile), and autocannon in this one sending
 * RecordInstall over Connect JSON, each request a new stag: `count` events
 * on each of `connections` in turn. The load generator thus takes no CPU
 * from the server's own event loop, as a connect-es client in the same
 * process does in phases 1 and 4.
 */
async function recordInOwnProcess(partnerUrl: string, count: number, connections: readonly number[]): Promise<OwnProcessRecording[]> {
  const server = await startBenchServer({ DATABASE_POOL_MAX: "40", POSTBACK_ALLOW_PRIVATE: "true" }, undefined, "api");
  try {
    await createClient(PartnerService, server.transport).createPartner({ partner: benchPartner(partnerUrl) });
    const runs: OwnProcessRecording[] = [];
    let n = 0;
    for (const callers of connections) {
      const countersBefore = await eventCounters(server.metricsUrl);
      const cpuBefore = await readCpu(server.pid);
      const started = performance.now();
      const result = await autocannon({
        url: `${server.url}/funnel.postback.v1.PostbackService/RecordInstall`,
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${BENCH_TOKEN}` },
        connections: callers,
        amount: count,
        requests: [{ method: "POST", setupRequest: (request) => ({ ...request, body: JSON.stringify({ stag: `bench_own-${(n += 1)}` }) }) }],
      });
      const seconds = (performance.now() - started) / 1000;
      const cpu = describeCpu(cpuBefore, await readCpu(server.pid), seconds);
      const counters = await eventCounters(server.metricsUrl);
      runs.push({
        connections: callers,
        rate: result["2xx"] / seconds,
        p50: result.latency.p50,
        p99: result.latency.p99,
        answeredOk: result["2xx"],
        failed: result.non2xx + result.errors + result.timeouts,
        queued: counters.queued - countersBefore.queued,
        groupMean: (counters.groupEvents - countersBefore.groupEvents) / (counters.groups - countersBefore.groups),
        cpu,
      });
    }
    return runs;
  } finally {
    await server.remove();
  }
}

function clients(app: App) {
  const transport = createConnectTransport({
    baseUrl: app.url,
    httpVersion: "1.1",
    interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${app.adminToken}`), next(req))],
  });
  return { events: createClient(PostbackService, transport), partners: createClient(PartnerService, transport) };
}

/** Records `count` installs of distinct stags from `callers` concurrent callers; returns events/s. */
async function recordInstalls(api: ReturnType<typeof clients>, name: string, count: number, callers: number): Promise<number> {
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (next < count) await api.events.recordInstall({ stag: `bench_${name}-${next++}` });
    }),
  );
  return count / ((performance.now() - started) / 1000);
}

async function until(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Postback recording and delivery: (0) events recorded/s by a server in its
 * own process under autocannon; then, with the API in this process and a
 * connect-es client as the caller, (1) events recorded/s with 32 callers and
 * sustained deliveries/s draining that backlog queued while no worker ran;
 * (2) event → partner latency at 100 events/s; (3) with 30 % of requests
 * failing (503), every event still delivered exactly once to a 2xx and every
 * attempt logged; (4) recording again with more callers. Embedded stores and
 * a local partner HTTP server.
 */
export async function run(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "funnel-bench-"));
  // As root, the embedded Postgres runs as the postgres user, who must reach its folder.
  await chmod(dir, 0o755);
  const partner = await partnerServer();
  const config = parseConfig({
    FUNNEL_DATA_DIR: dir,
    PORT: "0", METRICS_PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: "warn",
    EMBEDDED_POSTGRES_PORT: process.env.EMBEDDED_POSTGRES_PORT ?? "54392",
    DATABASE_POOL_MAX: "40",
    POSTBACK_ALLOW_PRIVATE: "true",
    JOBS_POLL_SECONDS: "1",
    POSTBACK_CONCURRENCY: process.env.POSTBACK_CONCURRENCY ?? "128",
  });
  const loadBefore = loadavg();
  const own = await recordInOwnProcess(partner.url, OWN_PROCESS_EVENTS, [32, WIDE_CALLERS]);
  const start = (roles: Role[]) => startApp({ config, roles });
  let app = await start(["api"]);
  try {
    const setup = clients(app);
    await setup.partners.createPartner({
      partner: benchPartner(partner.url),
    });

    // 1. Throughput: queue a backlog with the API alone, then let a worker drain it.
    const recordRate = await recordInstalls(setup, "backlog", BACKLOG, 32);
    await app.stop();
    app = await start(["api", "worker"]);
    await until(() => partner.ok.size >= BACKLOG, 600_000, "the backlog to drain");
    const times = [...partner.arrivals.values()].map((t) => t[0] ?? 0).sort((a, b) => a - b);
    const drainSeconds = ((times.at(-1) ?? 0) - (times[0] ?? 0)) / 1000;
    const deliveryRate = BACKLOG / drainSeconds;
    await until(async () => (await app.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM postbacks WHERE status <> 'delivered'")).rows[0]?.n === 0, 60_000, "every postback recorded as delivered");

    // 2. Latency at 100 events/s, open loop.
    const api = clients(app);
    const sentAt = new Map<string, number>();
    const paced = performance.now();
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < RATE * SECONDS; i += 1) {
      const due = paced + (i * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const stag = `bench_paced-${i}`;
      sentAt.set(stag, performance.now());
      sends.push(api.events.recordInstall({ stag }));
    }
    await Promise.all(sends);
    await until(() => [...sentAt.keys()].every((stag) => partner.ok.has(stag)), 60_000, "the paced postbacks");
    const latencies = [...sentAt].map(([stag, at]) => (partner.arrivals.get(stag)?.[0] ?? 0) - at).sort((a, b) => a - b);

    // 3. 30 % of requests fail: each event still reaches a 2xx exactly once.
    partner.setFailRate(0.3);
    const before = partner.requests();
    const failing = Array.from({ length: FAILING_EVENTS }, (_, i) => `bench_flaky-${i}`);
    await Promise.all(failing.map((stag) => api.events.recordInstall({ stag })));
    await until(() => failing.every((stag) => partner.ok.has(stag)), 300_000, "the flaky postbacks");
    await until(async () => (await app.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM postbacks WHERE status <> 'delivered'")).rows[0]?.n === 0, 60_000, "every flaky postback recorded");
    const flakyRequests = partner.requests() - before;
    const exactlyOnce = failing.every((stag) => partner.ok.get(stag) === 1);
    const logged = (
      await app.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM postback_deliveries WHERE stag LIKE 'bench_flaky-%'")
    ).rows[0]?.n;

    // 4. Recording again with the API alone, with more callers.
    await app.stop();
    app = await start(["api"]);
    const wideRate = await recordInstalls(clients(app), "wide", WIDE_EVENTS, WIDE_CALLERS);

    const rows = [
      ...own.map((run) => [
        `events recorded/s (RecordInstall over Connect JSON, ${run.connections} connections, server in its own process (api role), ${OWN_PROCESS_EVENTS} events)`,
        `${run.rate.toFixed(0)} (p50 ${run.p50} ms, p99 ${run.p99} ms; ${run.queued} queued of ${run.answeredOk} answered, ${run.failed} failed; ${run.groupMean.toFixed(1)} events per group)`,
      ]),
      ["events recorded/s (RecordInstall over Connect, 32 callers)", recordRate.toFixed(0)],
      [`events recorded/s (RecordInstall over Connect, ${WIDE_CALLERS} callers, ${WIDE_EVENTS} events)`, wideRate.toFixed(0)],
      [`sustained deliveries/s (backlog of ${BACKLOG})`, deliveryRate.toFixed(0)],
      [`event → partner latency p50 / p99 at ${RATE} events/s for ${SECONDS} s (ms)`, `${percentile(latencies, 50).toFixed(1)} / ${percentile(latencies, 99).toFixed(1)}`],
      [`30 % failing: events / requests / attempts logged`, `${FAILING_EVENTS} / ${flakyRequests} / ${logged}`],
      ["30 % failing: every event delivered exactly once to a 2xx", exactlyOnce ? "yes" : "NO"],
    ];
    const width = Math.max(...rows.map((r) => r[0]!.length));
    console.log(
      `postback delivery; ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, embedded Postgres + ClickHouse, partner on 127.0.0.1; load average at start ${loadBefore.map((n) => n.toFixed(2)).join(" ")}`,
    );
    for (const [name, value] of rows) console.log(`${name!.padEnd(width)}  ${value}`);
    for (const run of own) console.log(`while the server in its own process recorded on ${run.connections} connections: ${run.cpu}`);
  } finally {
    await app.stop();
    await partner.close();
    await rm(dir, { recursive: true, force: true });
  }
}
