import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TrackerService } from "../../gen/funnel/tracker/v1/tracker_pb.js";
import { startApp, type App } from "../../services/app.js";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "../../services/core/embedded-postgres.js";
import { defineQueue } from "../../services/core/jobs/queue.js";
import { createLogger } from "../../services/core/logger.js";
import { databaseUrl, ensureDatabase } from "../../services/core/postgres.js";
import { callIngest, clickhouseRows } from "../support/ingest.js";
import { freePort } from "../support/ports.js";
import { postSeen, seenClients } from "../support/seen.js";
import { ADMIN_TOKEN, eventually, testConfig } from "../support/stores.js";

const wake = defineQueue<{ sentAt: number }>("test.restart-wake", { localConcurrency: 1 });
const click = (page: string) => ({ event: "element_click", token: null, data: { element_type: "trailer", page_type: page } });

/** Application names of the sessions that LISTEN (Funnel's listeners, and pg-boss's by its heartbeat query). */
async function listeningSessions(adminUrl: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string }>(
      `SELECT DISTINCT application_name AS name FROM pg_stat_activity
        WHERE datname = 'funnel' AND (query LIKE 'LISTEN %' OR query LIKE '%pg_listening_channels()%') ORDER BY 1`,
    );
    return rows.map((row) => row.name);
  } finally {
    await client.end();
  }
}

async function notifiedTrackerQueries(app: App): Promise<number> {
  const metrics = await app.metrics.metrics();
  return Number(/funnel_tracker_cache_queries_total\{kind="notify"\} (\d+)/.exec(metrics)?.[1] ?? 0);
}

describe("a Postgres server restarted under a running app (DATABASE_URL)", () => {
  const log = createLogger("silent", false);
  let dir: string;
  let port: number;
  let server: EmbeddedPostgres;
  let app: App;
  let trackers: Client<typeof TrackerService>;
  const started: number[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "funnel-restart-pg-"));
    // Run as root, Postgres runs as its own user, who must be able to enter the folder.
    await chmod(dir, 0o755);
    port = await freePort();
    server = await startEmbeddedPostgres({ dir, port, log });
    await ensureDatabase(server.url, "funnel");
    // Polling every minute and a tracker refresh every hour: only NOTIFY explains a prompt wake-up.
    const config = await testConfig({ DATABASE_URL: databaseUrl(server.url, "funnel"), JOBS_POLL_SECONDS: "60", TRACKER_CACHE_REFRESH_SECONDS: "3600" });
    app = await startApp({ config, roles: ["api", "worker"], queues: [wake as never] });
    await app.jobs.work(wake, async ({ sentAt }) => void started.push(Date.now() - sentAt));
    const transport = createConnectTransport({
      baseUrl: app.url,
      httpVersion: "1.1",
      interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${ADMIN_TOKEN}`), next(req))],
    });
    trackers = createClient(TrackerService, transport);
  });
  afterAll(async () => {
    await app?.stop();
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("answers unavailable while Postgres is down, and the pool and every LISTEN come back after its restart", async () => {
    const device = { "x-funnel-device-id": "restart-device" };
    const { seen } = seenClients(app, device);
    const tracker = (await trackers.createTracker({ value: "before" })).tracker!.uuid;
    expect((await callIngest(app, "Send", click("before"))).status).toBe(200);
    expect((await seen.markSeen({ tag: "promo", id: "before" })).created).toBe(true);
    const listening = await eventually(async () => {
      const names = await listeningSessions(server.url);
      return names.length >= 4 ? names : undefined;
    }, 15_000, "every LISTEN session");
    expect(listening).toEqual(expect.arrayContaining(["funnel-analytics-listen", "funnel-jobs", "funnel-seen-topics-listen", "funnel-trackers-listen"]));

    await server.stop();

    expect((await fetch(`${app.url}/readyz`)).status).toBe(503);
    const send = await callIngest(app, "Send", click("during"));
    expect(send.status).toBe(503);
    expect(send.body.code).toBe("unavailable");
    await expect(seen.markSeen({ tag: "promo", id: "during" })).rejects.toMatchObject({ code: Code.Unavailable });
    expect((await postSeen(app, JSON.stringify({ tag: "promo", id: "during" }), { headers: device })).status).toBe(503);
    await expect(trackers.updateTracker({ uuid: tracker, value: "during" })).rejects.toMatchObject({ code: Code.Unavailable });
    expect((await fetch(`${app.url}/track?id=${tracker}`)).status).toBe(503);
    expect((await fetch(`${app.url}/download?stag=partner_click`, { redirect: "manual" })).status).toBe(503);

    const restartedAt = performance.now();
    server = await startEmbeddedPostgres({ dir, port, log });
    const ready = await eventually(
      async () => ((await fetch(`${app.url}/readyz`)).status === 200 ? performance.now() - restartedAt : undefined),
      30_000,
      "/readyz 200 after the restart",
    );
    expect((await callIngest(app, "Send", click("after"))).status).toBe(200);
    expect((await seen.markSeen({ tag: "promo", id: "after" })).created).toBe(true);
    const relistened = await eventually(
      async () => {
        const names = await listeningSessions(server.url);
        return listening.every((name) => names.includes(name)) ? performance.now() - restartedAt : undefined;
      },
      30_000,
      `the LISTEN sessions ${listening.join(", ")} after the restart`,
    );
    console.log(`Postgres restarted under the app: /readyz 200 after ${Math.round(ready)} ms, every LISTEN back after ${Math.round(relistened)} ms`);

    // Each listener is woken again by NOTIFY, not by its fallback timer.
    const notified = await notifiedTrackerQueries(app);
    await trackers.updateTracker({ uuid: tracker, value: "after" });
    await eventually(async () => ((await notifiedTrackerQueries(app)) > notified ? true : undefined), 10_000, "the tracker cache to hear of the change");
    await app.jobs.send(wake, { sentAt: Date.now() });
    await eventually(async () => (started.length > 0 ? true : undefined), 10_000, "a job sent after the restart to start");
    await eventually(async () => ((await clickhouseRows(app, "element_click", "page_type = 'after'")).length > 0 ? true : undefined), 15_000, "the event sent after the restart in ClickHouse");
  });

  it("a Postgres killed under load: every request in flight answers ok or unavailable, never internal", async () => {
    const { seen } = seenClients(app, { "x-funnel-device-id": "kill-device" });
    const answers = new Map<string, number>();
    const count = (answer: string): void => void answers.set(answer, (answers.get(answer) ?? 0) + 1);
    let running = true;
    const load = Array.from({ length: 16 }, async (_, worker) => {
      for (let i = 0; running; i += 1) {
        const sent = await callIngest(app, "Send", click(`load-${worker}`)).catch((): { status: number; body: Record<string, unknown> } => ({ status: 0, body: {} }));
        count(sent.status === 200 ? "ok" : `send ${sent.status} ${String(sent.body.code)}`);
        count(
          await seen.markSeen({ tag: "promo", id: `load-${worker}-${i}` }).then(
            () => "ok",
            (error: { code?: Code }) => `markSeen ${Code[error.code ?? Code.Unknown]}`,
          ),
        );
      }
    });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const pid = Number((await readFile(join(dir, "cluster", "postmaster.pid"), "utf8")).split("\n")[0]);
    // The whole group: the postmaster and its backends, as a crash of the machine's Postgres would.
    process.kill(-pid, "SIGKILL");
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    server = await startEmbeddedPostgres({ dir, port, log });
    await eventually(async () => ((await fetch(`${app.url}/readyz`)).status === 200 ? true : undefined), 30_000, "/readyz 200 after the kill");
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    running = false;
    await Promise.all(load);
    console.log("answers while Postgres was killed and restarted:", Object.fromEntries(answers));
    expect([...answers.keys()].filter((answer) => answer !== "ok" && !/ 503 unavailable$| Unavailable$/.test(answer))).toEqual([]);
    expect(answers.get("ok")).toBeGreaterThan(0);
    expect([...answers.keys()].some((answer) => answer !== "ok")).toBe(true);
  });
});
