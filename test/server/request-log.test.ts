import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TrackerService } from "../../gen/funnel/tracker/v1/tracker_pb.js";
import { startApp, type App } from "../../services/app.js";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "../../services/core/embedded-postgres.js";
import { createLogger } from "../../services/core/logger.js";
import { databaseUrl, ensureDatabase } from "../../services/core/postgres.js";
import { freePort } from "../support/ports.js";
import { ADMIN_TOKEN, eventually, testConfig } from "../support/stores.js";

interface Line {
  level?: unknown;
  msg?: string;
  module?: string;
  requestId?: string;
  method?: string;
  route?: string;
  status?: number;
  code?: string;
  ms?: number;
}

/** An app whose log lines (JSON, as in production) are kept in `lines`. */
async function loggedApp(env: Record<string, string> = {}): Promise<{ app: App; lines: Line[] }> {
  const lines: Line[] = [];
  const log = createLogger("info", false, { write: (text: string) => void lines.push(JSON.parse(text) as Line) });
  const app = await startApp({ config: await testConfig(env), roles: ["api"], log });
  return { app, lines };
}

const accessLines = (lines: Line[], route: string): Line[] => lines.filter((line) => line.msg === "request" && line.route === route);

describe("request ids and the access log", () => {
  let app: App;
  let lines: Line[];
  beforeAll(async () => {
    ({ app, lines } = await loggedApp({ ACCESS_LOG_TRACK_SAMPLE: "0" }));
  });
  afterAll(async () => {
    await app?.stop();
  });

  it("writes levels by name", () => {
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(["trace", "debug", "info", "warn", "error", "fatal"]).toContain(line.level);
  });

  it("keeps a sane X-Request-Id, echoes it and logs the request with it", async () => {
    const res = await fetch(`${app.url}/healthz`, { headers: { "x-request-id": "edge-42.a_b" } });
    expect(res.headers.get("x-request-id")).toBe("edge-42.a_b");
    const line = await eventually(async () => accessLines(lines, "/healthz").find((entry) => entry.requestId === "edge-42.a_b"));
    expect(line).toMatchObject({ level: "info", method: "GET", status: 200 });
    expect(typeof line.ms).toBe("number");
  });

  it("replaces an X-Request-Id that is too long or holds other characters", async () => {
    for (const sent of ["x".repeat(129), "has space", "semi;colon"]) {
      const res = await fetch(`${app.url}/healthz`, { headers: { "x-request-id": sent } });
      const id = res.headers.get("x-request-id") ?? "";
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      await eventually(async () => accessLines(lines, "/healthz").find((entry) => entry.requestId === id));
    }
  });

  it("logs an RPC with its result code", async () => {
    const admin: Interceptor = (next) => (req) => (req.header.set("authorization", `Bearer ${ADMIN_TOKEN}`), req.header.set("x-request-id", "rpc-1"), next(req));
    const trackers = createClient(TrackerService, createConnectTransport({ baseUrl: app.url, httpVersion: "1.1", interceptors: [admin] }));
    await expect(trackers.createTracker({ value: "" })).rejects.toThrow();
    const line = await eventually(async () => accessLines(lines, "/funnel.tracker.v1.TrackerService/CreateTracker").find((entry) => entry.requestId === "rpc-1"));
    expect(line).toMatchObject({ method: "POST", status: 400, code: "invalid_argument" });
  });

  it("logs no /track request when the sample is 0, but still gives it an id", async () => {
    const res = await fetch(`${app.url}/track?id=00000000-0000-4000-8000-000000000000`);
    expect(res.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    await fetch(`${app.url}/healthz`, { headers: { "x-request-id": "after-track" } });
    await eventually(async () => accessLines(lines, "/healthz").find((entry) => entry.requestId === "after-track"));
    expect(accessLines(lines, "/track")).toEqual([]);
  });
});

describe("the /track sample", () => {
  it("logs every /track request when the sample is 1", async () => {
    const { app, lines } = await loggedApp({ ACCESS_LOG_TRACK_SAMPLE: "1" });
    try {
      for (let i = 0; i < 3; i++) await fetch(`${app.url}/track?id=00000000-0000-4000-8000-000000000000`);
      await eventually(async () => (accessLines(lines, "/track").length === 3 ? true : undefined));
    } finally {
      await app.stop();
    }
  });
});

describe("the lines a request logs", () => {
  let dir: string;
  let server: EmbeddedPostgres;
  let app: App;
  let lines: Line[];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "funnel-request-log-pg-"));
    // Run as root, Postgres runs as its own user, who must be able to enter the folder.
    await chmod(dir, 0o755);
    server = await startEmbeddedPostgres({ dir, port: await freePort(), log: createLogger("silent", false) });
    await ensureDatabase(server.url, "funnel");
    ({ app, lines } = await loggedApp({ DATABASE_URL: databaseUrl(server.url, "funnel") }));
    await server.stop();
  });
  afterAll(async () => {
    await app?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("carry the request id, on a plain route and on an RPC", async () => {
    const track = await fetch(`${app.url}/track?id=0b7e2a54-6c1f-4d0e-9a51-3f2d8c9e7a10`, { headers: { "x-request-id": "pg-down-track" } });
    expect(track.status).toBe(503);
    const warned = await eventually(async () => lines.find((line) => line.msg === "tracker lookup failed"));
    expect(warned).toMatchObject({ level: "warn", requestId: "pg-down-track", module: "tracker" });

    const admin: Interceptor = (next) => (req) => (req.header.set("authorization", `Bearer ${ADMIN_TOKEN}`), req.header.set("x-request-id", "pg-down-rpc"), next(req));
    const trackers = createClient(TrackerService, createConnectTransport({ baseUrl: app.url, httpVersion: "1.1", interceptors: [admin] }));
    await expect(trackers.getTracker({ uuid: "0b7e2a54-6c1f-4d0e-9a51-3f2d8c9e7a10" })).rejects.toThrow();
    const failed = await eventually(async () => lines.find((line) => line.requestId === "pg-down-rpc" && line.msg !== "request"));
    expect(failed.level).toBe("warn");
  }, 30_000);
});
