import { chmod, mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { HttpMethod, PartnerService } from "../gen/funnel/postback/v1/partner_pb.js";
import { PostbackService } from "../gen/funnel/postback/v1/postback_pb.js";
import { startApp, type App, type Role } from "../services/app.js";
import { parseConfig } from "../services/core/config.js";
import { percentile } from "./support.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
/** Postbacks queued before the worker starts, for the throughput run. */
const BACKLOG = Number(process.env.BENCH_BACKLOG ?? 20_000);
const RATE = 100;
const FAILING_EVENTS = Number(process.env.BENCH_FAILING_EVENTS ?? 1_000);
/** The second recording run: more callers than the first, for what group commit does with more concurrency. */
const WIDE_CALLERS = Number(process.env.BENCH_WIDE_CALLERS ?? 128);
const WIDE_EVENTS = Number(process.env.BENCH_WIDE_EVENTS ?? 10_000);

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
 * Postback delivery: (1) sustained deliveries/s draining a backlog queued
 * while no worker ran; (2) event → partner latency at 100 events/s;
 * (3) with 30 % of requests failing (503), every event still delivered
 * exactly once to a 2xx and every attempt logged; (4) recording again with
 * more callers. Embedded stores, a local
 * partner HTTP server, everything in one process.
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
  const start = (roles: Role[]) => startApp({ config, roles });
  let app = await start(["api"]);
  try {
    const setup = clients(app);
    await setup.partners.createPartner({
      partner: {
        id: "bench",
        name: "bench",
        enabled: true,
        install: { enabled: true, method: HttpMethod.GET, urlTemplate: `${partner.url}/pb?s={stag}&c={stag_clickID}&ts={timestamp}` },
        timeout: durationFromMs(5_000),
        retry: { maxAttempts: 20, initialDelay: durationFromMs(100), maxDelay: durationFromMs(1_000) },
      },
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
      ["events recorded/s (RecordInstall over Connect, 32 callers)", recordRate.toFixed(0)],
      [`events recorded/s (RecordInstall over Connect, ${WIDE_CALLERS} callers, ${WIDE_EVENTS} events)`, wideRate.toFixed(0)],
      [`sustained deliveries/s (backlog of ${BACKLOG})`, deliveryRate.toFixed(0)],
      [`event → partner latency p50 / p99 at ${RATE} events/s for ${SECONDS} s (ms)`, `${percentile(latencies, 50).toFixed(1)} / ${percentile(latencies, 99).toFixed(1)}`],
      [`30 % failing: events / requests / attempts logged`, `${FAILING_EVENTS} / ${flakyRequests} / ${logged}`],
      ["30 % failing: every event delivered exactly once to a 2xx", exactlyOnce ? "yes" : "NO"],
    ];
    const width = Math.max(...rows.map((r) => r[0]!.length));
    console.log(`postback delivery; ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, embedded Postgres + ClickHouse, partner on 127.0.0.1`);
    for (const [name, value] of rows) console.log(`${name!.padEnd(width)}  ${value}`);
  } finally {
    await app.stop();
    await partner.close();
    await rm(dir, { recursive: true, force: true });
  }
}
