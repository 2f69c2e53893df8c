import { spawn, type ChildProcess } from "node:child_process";
import { chmod, mkdtemp, readFile, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import pg from "pg";
import { pino, type Logger } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startApp, type App } from "../../services/app.js";
import { startEmbeddedPostgres, type RestartOutcome } from "../../services/core/embedded-postgres.js";
import { callIngest } from "../support/ingest.js";
import { freePort } from "../support/ports.js";
import { seenClients } from "../support/seen.js";
import { eventually, testConfig } from "../support/stores.js";

/** The pid of the running postmaster, from the cluster's lock file. */
async function postmasterPid(app: App): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(join(app.config.dataDir, "postgres", "cluster", "postmaster.pid"), "utf8")).split("\n")[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Application names of the sessions that LISTEN (Funnel's listeners, and pg-boss's by its heartbeat query). */
async function listeningSessions(app: App): Promise<string[]> {
  const { rows } = await app.pool.query<{ name: string }>(
    `SELECT DISTINCT application_name AS name FROM pg_stat_activity
      WHERE datname = current_database() AND (query LIKE 'LISTEN %' OR query LIKE '%pg_listening_channels()%') ORDER BY 1`,
  );
  return rows.map((row) => row.name);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("the embedded Postgres heals by itself", () => {
  let app: App;

  beforeAll(async () => {
    // No DATABASE_URL: the app starts its own Postgres in this file's fresh data folder.
    const config = await testConfig({ DATABASE_URL: "", EMBEDDED_POSTGRES_PORT: String(await freePort()) });
    // Run as root, Postgres runs as its own user, who must be able to enter the temporary folder.
    await chmod(config.dataDir, 0o755);
    app = await startApp({ config, roles: ["api", "worker"] });
  });
  afterAll(async () => {
    await app?.stop();
  });

  it("restarts its Postgres after kill -9 of the postmaster: ready and writable again within 30 s", async () => {
    expect(app.postgres.backend).toBe("embedded");
    expect((await fetch(`${app.url}/readyz`)).status).toBe(200);
    const killed = (await postmasterPid(app))!;
    expect(isAlive(killed)).toBe(true);
    const listening = await eventually(async () => {
      const names = await listeningSessions(app);
      return names.length >= 4 ? names : undefined;
    }, 15_000, "every LISTEN session");

    const killedAt = performance.now();
    process.kill(killed, "SIGKILL");
    await eventually(async () => (isAlive(killed) ? undefined : true), 5_000, "the postmaster to die");

    const device = { "x-funnel-device-id": "heal-device" };
    const recovered = await eventually(
      async () => {
        const pid = await postmasterPid(app);
        if (pid === undefined || pid === killed || !isAlive(pid)) return undefined;
        if ((await fetch(`${app.url}/readyz`)).status !== 200) return undefined;
        const sent = await callIngest(app, "Send", { event: "element_click", token: null, data: { element_type: "trailer", page_type: "promotion" } });
        if (sent.status !== 200) return undefined;
        return performance.now() - killedAt;
      },
      30_000,
      "/readyz 200 and an accepted Send after the kill",
    );
    console.log(`embedded Postgres killed with SIGKILL: ready and writable again after ${Math.round(recovered)} ms`);

    expect((await seenClients(app, device).seen.markSeen({ tag: "promo", id: "after-kill" })).created).toBe(true);
    // Funnel's listeners and pg-boss's reconnect to the new server.
    await eventually(async () => {
      const names = await listeningSessions(app);
      return listening.every((name) => names.includes(name)) ? true : undefined;
    }, 30_000, `the LISTEN sessions ${listening.join(", ")} after the restart`);
    // Counted once the supervisor itself has seen the new server accept connections.
    await eventually(
      async () => (/funnel_embedded_postgres_restarts_total\{outcome="started"\} 1\b/.test(await app.metrics.metrics()) ? true : undefined),
      30_000,
      "the restart to be counted",
    );
  });
});

describe("a start right after a stop", () => {
  const root = new URL("../..", import.meta.url).pathname;
  let dir: string;
  let port: number;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "funnel-owner-"));
    port = await freePort();
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Starts the draining owner of `dir` in a process of its own; resolves once its Postgres runs. */
  async function startOwner(drainMs: number): Promise<{ child: ChildProcess; exited: Promise<{ code: number | null; at: number }> }> {
    const child = spawn(process.execPath, ["--import", "tsx", `${root}test/support/draining-owner.ts`], {
      env: { ...process.env, DIR: dir, PORT: String(port), DRAIN_MS: String(drainMs) },
      stdio: ["ignore", "pipe", "inherit"],
    });
    const exited = new Promise<{ code: number | null; at: number }>((resolve) => child.once("exit", (code) => resolve({ code, at: performance.now() })));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (chunk: Buffer) => {
        if (chunk.toString().includes("ready")) resolve();
      });
      void exited.then(({ code }) => reject(new Error(`the owner exited (code ${code}) before its Postgres ran`)));
    });
    return { child, exited };
  }

  /** A logger whose lines the test can read. */
  function capturedLog(): { log: Logger; lines: string[] } {
    const lines: string[] = [];
    const log = pino({ level: "info" }, new Writable({ write: (chunk: Buffer, _encoding, done) => (lines.push(chunk.toString()), done()) }));
    return { log, lines };
  }

  it("waits for the previous process to finish draining, then starts", async () => {
    const owner = await startOwner(2_000);
    owner.child.kill("SIGTERM");
    const { log, lines } = capturedLog();
    const postgres = await startEmbeddedPostgres({ dir, port, log, ownerWaitMs: 20_000 });
    const startedAt = performance.now();
    try {
      const exit = await owner.exited;
      expect(exit.code).toBe(0);
      expect(exit.at).toBeLessThan(startedAt);
      expect(lines.join("")).toMatch(new RegExp(`belongs to process ${owner.child.pid}, which is still running \\(stopping\\?\\); waiting for it to exit`));
      const client = new pg.Client({ connectionString: postgres.url });
      await client.connect();
      expect((await client.query<{ one: number }>("SELECT 1 AS one")).rows[0]!.one).toBe(1);
      await client.end();
    } finally {
      await postgres.stop();
    }
  });

  it("fails clearly when the previous process outlives the wait", async () => {
    const owner = await startOwner(600_000);
    owner.child.kill("SIGTERM");
    try {
      await expect(startEmbeddedPostgres({ dir, port, log: capturedLog().log, ownerWaitMs: 1_000 })).rejects.toThrow(
        new RegExp(`embedded Postgres in ${dir} is still in use by process ${owner.child.pid} after waiting 1 s; stop it or set DATABASE_URL`),
      );
    } finally {
      owner.child.kill("SIGKILL");
      await owner.exited;
    }
    // The killed owner's server is an orphan now: the next start stops it and takes over.
    const postgres = await startEmbeddedPostgres({ dir, port, log: capturedLog().log });
    await postgres.stop();
  });

  it("gives up after the configured restart attempts, and says so", async () => {
    const outcomes: RestartOutcome[] = [];
    const { log, lines } = capturedLog();
    const postgres = await startEmbeddedPostgres({ dir, port, log, restartAttempts: 2, onRestart: (outcome) => outcomes.push(outcome) });
    const version = join(dir, "cluster", "PG_VERSION");
    try {
      const pid = Number((await readFile(join(dir, "cluster", "postmaster.pid"), "utf8")).split("\n")[0]);
      // Without its version file the folder is no cluster Postgres will start on.
      await rename(version, `${version}.away`);
      process.kill(pid, "SIGKILL");
      await eventually(async () => (outcomes.length === 3 ? true : undefined), 30_000, "two failed restarts and the end of the attempts");
      expect(outcomes).toEqual(["failed", "failed", "gave_up"]);
      expect(lines.join("")).toMatch(/embedded Postgres could not be restarted; the process stays unready until it is restarted/);
    } finally {
      await rename(`${version}.away`, version);
      await postgres.stop();
    }
  });
});
