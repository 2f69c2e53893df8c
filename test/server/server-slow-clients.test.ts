import http2 from "node:http2";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TrackerService } from "../../gen/funnel/tracker/v1/tracker_pb.js";
import type { App } from "../../services/app.js";
import { ADMIN_TOKEN, eventually, startTestApp } from "../support/stores.js";

const withToken: Interceptor = (next) => (req) => {
  req.header.set("authorization", `Bearer ${ADMIN_TOKEN}`);
  return next(req);
};

/** A raw TCP connection that sends `bytes` and then nothing; `closedAfter` is set when the server closes it. */
interface SlowConnection {
  readonly socket: net.Socket;
  openedAt: number;
  /** Milliseconds from open to the server's close; undefined while open. */
  closedAfter: number | undefined;
  /** Everything the server sent. */
  received: string;
}

function openSlow(url: URL, bytes: string | Buffer): Promise<SlowConnection> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname);
    const connection: SlowConnection = { socket, openedAt: 0, closedAfter: undefined, received: "" };
    socket.on("data", (chunk: Buffer) => (connection.received += chunk.toString("latin1")));
    socket.on("error", () => undefined);
    socket.on("close", () => (connection.closedAfter = performance.now() - connection.openedAt));
    socket.once("connect", () => {
      connection.openedAt = performance.now();
      if (bytes.length > 0) socket.write(bytes);
      resolve(connection);
    });
    socket.once("error", reject);
  });
}

/** The HTTP/2 client preface and an empty SETTINGS frame: a session that never opens a stream. */
const H2_PREFACE_AND_SETTINGS = Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1"), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);

/** What slow clients send before they stall, one kind per connection in turn. */
const stalls: readonly (string | Buffer)[] = [
  "",
  "GET /track?id=",
  "GET /healthz HTTP/1.1\r\nHost: funnel\r\nUser-Agent: slow",
  "POST /funnel.ingest.v1.IngestService/Send HTTP/1.1\r\nHost: funnel\r\nContent-Type: application/json\r\n",
  "PRI * HTTP/2.0\r\n",
  H2_PREFACE_AND_SETTINGS,
];

describe("slow clients", () => {
  let app: App;
  let url: URL;
  beforeAll(async () => {
    app = await startTestApp({
      env: { HTTP_HEADERS_TIMEOUT_SECONDS: "1", HTTP_REQUEST_TIMEOUT_SECONDS: "2", HTTP_KEEP_ALIVE_TIMEOUT_SECONDS: "1" },
    });
    url = new URL(app.url);
  });
  afterAll(async () => {
    await app?.stop();
  });

  it("closes 500 connections that never finish their request at the header timeout, and serves others meanwhile", async () => {
    const tracker = createClient(TrackerService, createConnectTransport({ baseUrl: app.url, httpVersion: "1.1", interceptors: [withToken] }));
    const trackerId = (await tracker.createTracker({ value: "slow-clients" })).tracker?.uuid ?? "";
    const slow: SlowConnection[] = [];
    try {
      for (let i = 0; i < 500; i += 50) {
        slow.push(...(await Promise.all(Array.from({ length: 50 }, (_, j) => openSlow(url, stalls[(i + j) % stalls.length] ?? "")))));
      }
      // While they hang, the pixel and health still answer.
      expect((await fetch(`${app.url}/healthz`)).status).toBe(200);
      expect((await fetch(`${app.url}/track?id=${trackerId}`)).status).toBe(204);
      await eventually(async () => (slow.every((connection) => connection.closedAfter !== undefined) ? true : undefined), 15_000, "every slow connection to be closed");
      const lifetimes = slow.map((connection) => connection.closedAfter ?? Infinity);
      // Closed for being slow (not refused at once), and within the header timeout plus one check of the server's.
      expect(Math.min(...lifetimes)).toBeGreaterThanOrEqual(900);
      expect(Math.max(...lifetimes)).toBeLessThan(8_000);
      // An unfinished HTTP/1.1 request is told why.
      expect(slow[2]?.received).toMatch(/^HTTP\/1\.1 408 /);
    } finally {
      for (const connection of slow) connection.socket.destroy();
    }
    expect((await fetch(`${app.url}/track?id=${trackerId}`)).status).toBe(204);
  });

  it("cuts a request whose body never finishes at the request timeout", async () => {
    const connection = await openSlow(url, "POST /funnel.ingest.v1.IngestService/Send HTTP/1.1\r\nHost: funnel\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"event\":");
    try {
      await eventually(async () => connection.closedAfter, 10_000, "the connection to be closed");
      expect(connection.closedAfter).toBeGreaterThanOrEqual(1_900);
      expect(connection.received).toMatch(/^HTTP\/1\.1 408 /);
    } finally {
      connection.socket.destroy();
    }
  });

  it("resets an HTTP/2 stream whose body never finishes at the request timeout, and keeps its session", async () => {
    const session = http2.connect(app.url);
    session.on("error", () => undefined);
    try {
      const stream = session.request({ ":method": "POST", ":path": "/funnel.ingest.v1.IngestService/Send", "content-type": "application/json" });
      stream.on("error", () => undefined);
      stream.write('{"event":');
      const openedAt = performance.now();
      await new Promise((resolve) => stream.on("close", resolve));
      expect(performance.now() - openedAt).toBeGreaterThanOrEqual(1_900);
      expect(stream.rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
      const health = session.request({ ":path": "/healthz" });
      const status = await new Promise((resolve) => health.on("response", (headers) => resolve(headers[":status"])));
      health.resume();
      expect(status).toBe(200);
    } finally {
      session.destroy();
    }
  });

  it("closes idle keep-alive connections, HTTP/1.1 and HTTP/2, at the keep-alive timeout", async () => {
    const h1 = await openSlow(url, "GET /healthz HTTP/1.1\r\nHost: funnel\r\n\r\n");
    const h2 = http2.connect(app.url);
    let h2ClosedAt: number | undefined;
    h2.on("error", () => undefined);
    h2.on("close", () => (h2ClosedAt = performance.now()));
    try {
      const stream = h2.request({ ":path": "/healthz" });
      stream.resume();
      await new Promise((resolve) => stream.on("close", resolve));
      const answeredAt = performance.now();
      await eventually(async () => (h1.closedAfter !== undefined && h2ClosedAt !== undefined ? true : undefined), 10_000, "both idle connections to be closed");
      expect(h1.received).toMatch(/^HTTP\/1\.1 200 /);
      expect((h2ClosedAt ?? 0) - answeredAt).toBeGreaterThanOrEqual(900);
    } finally {
      h1.socket.destroy();
      h2.destroy();
    }
  });
});

describe("connection cap", () => {
  let app: App;
  beforeAll(async () => {
    app = await startTestApp({ env: { HTTP_MAX_CONNECTIONS: "40" } });
  });
  afterAll(async () => {
    await app?.stop();
  });

  it("closes connections over HTTP_MAX_CONNECTIONS at once, counts them, and takes new ones when others leave", async () => {
    const url = new URL(app.url);
    const held: SlowConnection[] = [];
    try {
      for (let i = 0; i < 40; i += 1) held.push(await openSlow(url, ""));
      // Let the server accept them all before the extra ones arrive.
      await sleep(200);
      const extra = await Promise.all(Array.from({ length: 10 }, () => openSlow(url, "GET /healthz HTTP/1.1\r\nHost: funnel\r\n\r\n")));
      await eventually(async () => (extra.every((connection) => connection.closedAfter !== undefined) ? true : undefined), 5_000, "the extra connections to be closed");
      expect(extra.map((connection) => connection.received)).toEqual(Array.from({ length: 10 }, () => ""));
      expect(held.every((connection) => connection.closedAfter === undefined)).toBe(true);
      const dropped = await app.metrics.getSingleMetric("funnel_http_connections_dropped_total")?.get();
      expect(dropped?.values[0]?.value).toBe(10);
    } finally {
      for (const connection of held) connection.socket.destroy();
    }
    // Room again once the held connections are gone.
    await eventually(async () => ((await fetch(`${app.url}/healthz`).catch(() => undefined))?.ok === true ? true : undefined), 5_000, "a connection under the cap");
  });
});
