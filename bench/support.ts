import { spawn, type ChildProcess } from "node:child_process";
import { chmod, mkdtemp, open, readdir, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { OpsService } from "../gen/funnel/ops/v1/ops_pb.js";
import { openClickHouseTarget, type ClickHouse } from "../services/core/clickhouse.js";

const root = new URL("..", import.meta.url).pathname;
export const BENCH_TOKEN = "bench-admin-token-0123456789";

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts a child process and resolves once `readyUrl` answers 200. */
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

/** A Funnel server (`all` roles) in its own process, on embedded stores in a temporary folder. */
export interface BenchServer {
  readonly url: string;
  /** Base URL of its metrics server (`METRICS_PORT`). */
  readonly metricsUrl: string;
  readonly dir: string;
  /** The server's process id. */
  readonly pid: number;
  readonly transport: ReturnType<typeof createConnectTransport>;
  readonly ops: Client<typeof OpsService>;
  /** Waits until the analytics stream has nothing left in Postgres. */
  drained(): Promise<void>;
  /** Stops the server, then opens its ClickHouse (the embedded engine allows one process at a time). */
  stopAndOpenClickHouse(): Promise<ClickHouse>;
  /** Removes the temporary folder (after the ClickHouse handle is closed). */
  remove(): Promise<void>;
}

/**
 * Starts a bench server on a new temporary folder, or on `existing` to start
 * again on the stores of one stopped before; `role` is the process role
 * (`all` by default, `api` for a server that only answers).
 */
export async function startBenchServer(env: Record<string, string> = {}, existing?: string, role: "all" | "api" = "all"): Promise<BenchServer> {
  const dir = existing ?? (await mkdtemp(join(tmpdir(), "funnel-bench-")));
  await chmod(dir, 0o755);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const metricsPort = await freePort();
  const child = await startProcess(
    [join(root, "services/bin.js"), role],
    {
      FUNNEL_DATA_DIR: dir,
      PORT: String(port),
      HOST: "127.0.0.1",
      METRICS_PORT: String(metricsPort),
      LOG_LEVEL: "warn",
      FUNNEL_ADMIN_TOKEN: BENCH_TOKEN,
      EMBEDDED_POSTGRES_PORT: String(await freePort()),
      ...env,
    },
    `${url}/readyz`,
  );
  const transport = createConnectTransport({
    baseUrl: url,
    httpVersion: "1.1",
    interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${BENCH_TOKEN}`), next(req))],
  });
  const ops = createClient(OpsService, transport);
  return {
    url,
    metricsUrl: `http://127.0.0.1:${metricsPort}`,
    dir,
    pid: child.pid as number,
    transport,
    ops,
    async drained() {
      const deadline = Date.now() + 300_000;
      while (Date.now() < deadline) {
        const status = await ops.getStatus({});
        if (Number(status.analytics?.backlogRows ?? 0) === 0) return;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      throw new Error("the analytics stream did not drain within 5 minutes");
    },
    async stopAndOpenClickHouse() {
      await stopProcess(child);
      return openClickHouseTarget({ url: undefined, database: "funnel", embeddedPath: join(dir, "clickhouse") });
    },
    async remove() {
      await stopProcess(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Prints rows as aligned columns. */
export function printTable(rows: readonly (readonly string[])[]): void {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const row of rows) console.log(row.map((cell, c) => cell.padEnd(widths[c]!)).join("  "));
}

/** The p-th percentile of ascending `sorted` values (nearest rank); 0 when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/** A scrape of a server's `/metrics`: the value of an unlabelled series, NaN when absent. */
export type Scrape = (name: string) => number;

/** Scrapes `/metrics` at `url`, the server's metrics URL (`BenchServer.metricsUrl`). */
export async function scrapeMetrics(url: string): Promise<Scrape> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const values = new Map<string, number>();
  for (const match of text.matchAll(/^([a-z_:][a-z0-9_:]*) ([-+\d.eE]+|NaN)$/gm)) values.set(match[1]!, Number(match[2]));
  return (name) => values.get(name) ?? NaN;
}

type CpuGroup = "server" | "postgres" | "load" | "other";

/** CPU seconds used so far by each live process, with its group: the server, Postgres, this (load) process, anything else. */
export type CpuReading = ReadonlyMap<number, { readonly group: CpuGroup; readonly seconds: number }>;

/** Reads every process's CPU time from /proc (Linux). */
export async function readCpu(serverPid: number): Promise<CpuReading> {
  const ticks = 100; // USER_HZ on Linux
  const reading = new Map<number, { group: CpuGroup; seconds: number }>();
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => undefined);
    if (stat === undefined) continue;
    const close = stat.lastIndexOf(")");
    const comm = stat.slice(stat.indexOf("(") + 1, close);
    const fields = stat.slice(close + 2).split(" ");
    const pid = Number(entry);
    const group: CpuGroup = pid === serverPid ? "server" : comm === "postgres" ? "postgres" : pid === process.pid ? "load" : "other";
    reading.set(pid, { group, seconds: (Number(fields[11]) + Number(fields[12])) / ticks });
  }
  return reading;
}

/** CPU seconds each group used between two readings (processes gone by the second reading are left out). */
export function cpuUsed(before: CpuReading, after: CpuReading): Record<CpuGroup, number> {
  const used: Record<CpuGroup, number> = { server: 0, postgres: 0, load: 0, other: 0 };
  for (const [pid, { group, seconds: total }] of after) used[group] += total - (before.get(pid)?.seconds ?? 0);
  return used;
}

/** The cores each group kept busy between two readings `seconds` apart. */
export function describeCpu(before: CpuReading, after: CpuReading, seconds: number): string {
  const used = cpuUsed(before, after);
  const cores = (group: CpuGroup) => (used[group] / seconds).toFixed(2);
  return `cores busy: server ${cores("server")}, Postgres ${cores("postgres")}, load generator ${cores("load")}, other ${cores("other")}`;
}

const PROBE_EVERY_MS = 10;

/** One timed flush of the disk probe: when it started (performance.now()) and how long it took, in ms. */
export interface Flush {
  readonly at: number;
  readonly ms: number;
}

/**
 * Times the disk under the server's data: it overwrites 8 KiB of a
 * preallocated file in `dir` and waits for `fdatasync`, the way Postgres
 * makes a commit durable, then waits `PROBE_EVERY_MS` and does it again (so a
 * long stall is one sample). The flushes run on libuv's thread pool, so the
 * bench's event loop keeps sending meanwhile, but their ends are timed on
 * that loop: a stall of the bench itself would show here too. The probe adds
 * about 100 small flushes a second of its own. `stop()` returns every flush.
 */
export async function startFlushProbe(dir: string): Promise<{ stop(): Promise<Flush[]> }> {
  const path = join(dir, "flush-probe");
  const size = 1 << 20;
  const file = await open(path, "w+");
  await file.write(Buffer.alloc(size));
  await file.sync();
  const block = Buffer.alloc(8192, 1);
  const flushes: Flush[] = [];
  let running = true;
  const loop = (async () => {
    for (let offset = 0; running; offset = (offset + block.length) % size) {
      await file.write(block, 0, block.length, offset);
      const at = performance.now();
      await file.datasync();
      flushes.push({ at, ms: performance.now() - at });
      await new Promise((resolve) => setTimeout(resolve, PROBE_EVERY_MS));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      await file.close();
      await rm(path, { force: true });
      return flushes;
    },
  };
}

/**
 * Of the calls slower than `slowCallMs` (each `[start, latency]`), how many
 * were in flight while a probe flush took longer than `slowFlushMs`: an
 * overlap, which shows where to look, not a proof of cause. Also the share of
 * the probe's time in which a flush still had more than `slowCallMs` to go.
 * If the disk holds Postgres's flushes whenever it holds the probe's (the
 * overlaps are the evidence; it is not measured directly), a commit made then
 * waits longer than that, so a share over 1 % would put more than 1 % of
 * calls arriving evenly over `slowCallMs` whatever the server does. The probe
 * does not see stalls between its flushes.
 */
export function describeFlushes(flushes: readonly Flush[], calls: readonly (readonly [number, number])[], slowCallMs = 10, slowFlushMs = 5): string {
  const durations = flushes.map((flush) => flush.ms).sort((a, b) => a - b);
  const slow = flushes.filter((flush) => flush.ms > slowFlushMs);
  const slowCalls = calls.filter(([, latency]) => latency > slowCallMs);
  const behind = slowCalls.filter(([start, latency]) => slow.some((flush) => flush.at < start + latency && start < flush.at + flush.ms));
  const first = flushes[0];
  const last = flushes.at(-1);
  const probed = first === undefined || last === undefined ? 0 : last.at + last.ms - first.at;
  const stalled = flushes.reduce((sum, flush) => sum + Math.max(0, flush.ms - slowCallMs), 0);
  return (
    `disk flushes (8 KiB + fdatasync, ${PROBE_EVERY_MS} ms apart): p50 ${percentile(durations, 50).toFixed(2)} ms, p99 ${percentile(durations, 99).toFixed(2)} ms, ` +
    `max ${(durations.at(-1) ?? 0).toFixed(1)} ms, ${slow.length} over ${slowFlushMs} ms; ` +
    `${behind.length} of the ${slowCalls.length} calls over ${slowCallMs} ms were in flight during one of those; ` +
    `a flush had more than ${slowCallMs} ms to go for ${probed > 0 ? ((100 * stalled) / probed).toFixed(2) : "0"} % of the probe's time`
  );
}
