import { randomUUID } from "node:crypto";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { startHttpServer, type HttpRoute } from "../../services/core/http-server.js";
import { createLogger } from "../../services/core/logger.js";
import { createMetricsRegistry } from "../../services/core/metrics.js";
import { clickhouseRows, drained } from "../support/ingest.js";
import { eventually, startTestApp, testStores } from "../support/stores.js";

const SEND_PATH = "/funnel.ingest.v1.IngestService/Send";
const SHUTDOWN_TIMEOUT_MS = 20_000;

/**
 * How one request ended, as its client saw it: answered (`status`), or a
 * connection or stream error (`error`, the code Node gave it).
 */
interface Outcome {
  readonly id: string;
  readonly protocol: "h1" | "h2";
  readonly status?: number;
  readonly headers?: Record<string, string | string[] | undefined>;
  readonly error?: string;
  /** Sent after `app.stop()` was called. */
  readonly afterStop: boolean;
}

const body = (id: string): string => JSON.stringify({ event: "element_click", event_id: id, data: { element_type: "drain", page_type: "test" } });
const errorCode = (error: unknown): string => (error as NodeJS.ErrnoException).code ?? (error as Error).message;

/** One HTTP/1.1 keep-alive client: one connection at a time, reused for every request. */
async function h1Client(url: URL, running: () => boolean, stopping: () => boolean, outcomes: Outcome[]): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    while (running()) {
      const id = randomUUID();
      const afterStop = stopping();
      const outcome = await new Promise<Outcome>((resolve) => {
        const text = body(id);
        const req = http.request(
          { host: url.hostname, port: url.port, path: SEND_PATH, method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(text) } },
          (res) => {
            res.resume();
            res.on("end", () => resolve({ id, protocol: "h1", status: res.statusCode ?? 0, headers: res.headers, afterStop }));
            res.on("error", (error) => resolve({ id, protocol: "h1", error: errorCode(error), afterStop }));
            res.on("close", () => resolve({ id, protocol: "h1", error: res.complete ? "closed" : "aborted", afterStop }));
          },
        );
        req.on("error", (error) => resolve({ id, protocol: "h1", error: errorCode(error), afterStop }));
        req.end(text);
      });
      outcomes.push(outcome);
      // A refused connection answers at once: do not spin on it.
      if (outcome.error !== undefined) await sleep(5);
    }
  } finally {
    agent.destroy();
  }
}

/** One HTTP/2 client: one session reused for every stream, a new one when it is gone. */
async function h2Client(url: URL, running: () => boolean, stopping: () => boolean, outcomes: Outcome[]): Promise<void> {
  let session: http2.ClientHttp2Session | undefined;
  try {
    while (running()) {
      if (session === undefined || session.closed || session.destroyed) {
        session = http2.connect(url.origin);
        session.on("error", () => undefined);
      }
      const current = session;
      const id = randomUUID();
      const afterStop = stopping();
      const outcome = await new Promise<Outcome>((resolve) => {
        let stream: http2.ClientHttp2Stream;
        try {
          stream = current.request({ ":method": "POST", ":path": SEND_PATH, "content-type": "application/json" });
        } catch (error) {
          resolve({ id, protocol: "h2", error: errorCode(error), afterStop });
          return;
        }
        let status = 0;
        let headers: Record<string, string | string[] | undefined> = {};
        stream.on("response", (received) => {
          status = Number(received[":status"]);
          headers = received;
        });
        stream.on("error", (error) => resolve({ id, protocol: "h2", error: `${errorCode(error)} (rst ${stream.rstCode})`, afterStop }));
        stream.on("close", () => {
          if (status !== 0 && stream.rstCode === http2.constants.NGHTTP2_NO_ERROR) resolve({ id, protocol: "h2", status, headers, afterStop });
          else resolve({ id, protocol: "h2", error: `rst ${stream.rstCode}`, afterStop });
        });
        stream.resume();
        stream.end(body(id));
      });
      outcomes.push(outcome);
      if (outcome.error !== undefined) await sleep(5);
    }
  } finally {
    session?.destroy();
  }
}

describe("shutdown under keep-alive load", () => {
  it("answers or refuses every request before any work, stores exactly the 2xx ones, and ends the drain with the requests", async () => {
    const app = await startTestApp({ env: { SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS) } });
    const url = new URL(app.url);
    const outcomes: Outcome[] = [];
    let stopCalled = false;
    let loadRunning = true;
    const clients = [
      ...Array.from({ length: 32 }, () => h1Client(url, () => loadRunning, () => stopCalled, outcomes)),
      ...Array.from({ length: 4 }, () => h2Client(url, () => loadRunning, () => stopCalled, outcomes)),
    ];
    let stopMs: number;
    try {
      // Load first, long enough that every client has a busy keep-alive connection.
      await eventually(async () => (outcomes.filter((outcome) => outcome.status === 200).length >= 300 ? true : undefined), 30_000, "300 events accepted");
      stopCalled = true;
      const started = performance.now();
      await app.stop();
      stopMs = performance.now() - started;
    } finally {
      loadRunning = false;
      await Promise.all(clients);
    }

    const ok = outcomes.filter((outcome) => outcome.status === 200);
    const refused = outcomes.filter((outcome) => outcome.status === 503);
    const failed = outcomes.filter((outcome) => outcome.error !== undefined);
    const other = outcomes.filter((outcome) => outcome.status !== undefined && outcome.status !== 200 && outcome.status !== 503);
    console.log(
      `shutdown under load: ${outcomes.length} requests, ${ok.length} ok, ${refused.length} refused with 503, ${failed.length} connection or stream errors ` +
        `(${[...new Set(failed.map((outcome) => outcome.error))].join(", ")}), stop took ${stopMs.toFixed(0)} ms`,
    );
    expect(other.map((outcome) => outcome.status)).toEqual([]);
    // Load reached the server after the stop began, so the drain met it; and
    // nothing sent after the stop began was taken, on any connection.
    const late = outcomes.filter((outcome) => outcome.afterStop);
    expect(late.length).toBeGreaterThan(0);
    expect(late.filter((outcome) => outcome.status === 200).length).toBe(0);
    // A refusal tells an HTTP/1.1 client to retry elsewhere, on a new connection.
    for (const outcome of refused) {
      expect(outcome.headers?.["retry-after"]).toBeDefined();
      if (outcome.protocol === "h1") expect(outcome.headers?.connection).toBe("close");
    }
    // Requests stop being taken when the stop begins, so the drain does not wait for the timeout.
    expect(stopMs).toBeLessThan(SHUTDOWN_TIMEOUT_MS / 2);

    // Exactly the answered events were stored: none answered and lost, and none
    // stored whose client saw an error or a refusal (its work committed, its answer cut).
    const stores = await testStores();
    const client = new pg.Client({ connectionString: stores.databaseUrl });
    await client.connect();
    let stored: string[];
    try {
      const ids = outcomes.map((outcome) => outcome.id);
      stored = (await client.query<{ event_id: string }>("SELECT event_id::text FROM ingest_event_ids WHERE event_id = ANY($1::uuid[])", [ids])).rows.map((row) => row.event_id);
    } finally {
      await client.end();
    }
    const okIds = new Set(ok.map((outcome) => outcome.id));
    expect(stored.filter((id) => !okIds.has(id))).toEqual([]);
    expect(stored.length).toBe(okIds.size);

    // And the analytics stream carries exactly those to ClickHouse.
    const again = await startTestApp();
    try {
      await drained(again);
      const rows = await clickhouseRows(again, "element_click", "element_type = 'drain'");
      expect(rows.length).toBe(okIds.size);
      expect(rows.every((row) => okIds.has(String(row.event_id)))).toBe(true);
    } finally {
      await again.stop();
    }
  });
});

describe("the HTTP server's drain", () => {
  it("closes idle connections at once, closes busy ones after their answer, and refuses a request that arrives late with 503", async () => {
    let release = (): void => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    // /stream has sent its headers (keep-alive) and is still writing when the drain begins;
    // /wait has sent nothing yet.
    const routes = new Map<string, HttpRoute>([
      ["/stream", async (_req, res) => {
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("first part;");
        await released;
        res.end("last part");
      }],
      ["/wait", async (_req, res) => {
        await released;
        res.writeHead(200, { "content-type": "text/plain", "content-length": "4" });
        res.end("done");
      }],
      ["/fast", (_req, res) => {
        res.writeHead(200, { "content-length": "2" });
        res.end("ok");
      }],
    ]);
    const server = await startHttpServer({
      port: 0,
      host: "127.0.0.1",
      log: createLogger("silent"),
      rpc: () => undefined,
      interceptors: [],
      routes,
      readMaxBytes: 1024,
      metrics: createMetricsRegistry(),
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 10_000,
      keepAliveTimeoutMs: 60_000,
      maxConnections: 100,
    });
    const connect = async (): Promise<{ socket: net.Socket; text: () => string; closed: Promise<void> }> => {
      const socket = net.connect(server.port, "127.0.0.1");
      let received = "";
      socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
      const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
      await new Promise((resolve) => socket.once("connect", resolve));
      return { socket, text: () => received, closed };
    };
    const request = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: funnel\r\n\r\n`;

    const idle = await connect();
    idle.socket.write(request("/fast"));
    const streaming = await connect();
    streaming.socket.write(request("/stream"));
    const waiting = await connect();
    waiting.socket.write(request("/wait"));
    await eventually(async () => (idle.text().includes("\r\n\r\nok") && streaming.text().includes("first part;") ? true : undefined), 5_000, "the first answers");
    await sleep(50);

    const closing = server.close(10_000);
    // A request on the busy keep-alive connection after the drain began.
    streaming.socket.write(request("/fast"));
    await idle.closed;
    await sleep(100);
    release();
    await Promise.all([streaming.closed, waiting.closed]);
    await closing;

    // The idle connection was closed without another byte.
    expect(idle.text()).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*Connection: keep-alive\r\n[^]*ok$/);
    // The answer in flight finished, told the connection closes, and the late request was refused.
    const [first, late] = streaming.text().split(/(?=HTTP\/1\.1 )/);
    expect(first).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*first part;[^]*last part/);
    expect(late).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
    expect(late).toMatch(/\r\nretry-after: 1\r\n/i);
    expect(late).toMatch(/\r\nconnection: close\r\n/i);
    expect(waiting.text()).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*connection: close\r\n[^]*done$/i);
  });
});
