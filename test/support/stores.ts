import { randomBytes } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inject } from "vitest";
import { startApp, type App, type Role } from "../../services/app.js";
import { parseConfig, type Config } from "../../services/core/config.js";
import { databaseUrl, ensureDatabase } from "../../services/core/postgres.js";
import type { QueueDefinition } from "../../services/core/jobs/queue.js";

export const ADMIN_TOKEN = "test-admin-token-0123456789";

/** Where one test file keeps its data: its own Postgres database and ClickHouse database. */
export interface TestStores {
  /** URL of this file's own Postgres database. */
  readonly databaseUrl: string;
  readonly clickhouseUrl: string | undefined;
  readonly clickhouseDatabase: string;
  /** Folder for the embedded ClickHouse engine of this test process. */
  readonly dataDir: string;
  /** Environment that points a Funnel process at these stores. */
  readonly env: Record<string, string>;
}

let stores: Promise<TestStores> | undefined;

async function create(): Promise<TestStores> {
  const suffix = randomBytes(5).toString("hex");
  const name = `t_${suffix}`;
  const adminUrl = inject("postgresAdminUrl");
  await ensureDatabase(adminUrl, name);
  const url = databaseUrl(adminUrl, name);
  const clickhouseUrl = inject("clickhouseUrl") || undefined;
  const dataDir = await mkdtemp(join(tmpdir(), "funnel-test-"));
  const env: Record<string, string> = {
    DATABASE_URL: url,
    CLICKHOUSE_DATABASE: name,
    FUNNEL_DATA_DIR: dataDir,
    FUNNEL_ADMIN_TOKEN: ADMIN_TOKEN,
    // DATABASE_URL is set, so the server needs a way to verify user tokens; tests that sign tokens set their own.
    AUTH_JWT_SECRET: "test-jwt-secret-0123456789abcdef",
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    HOST: "127.0.0.1",
    PORT: "0",
    METRICS_PORT: "0",
    ...(clickhouseUrl !== undefined ? { CLICKHOUSE_URL: clickhouseUrl } : {}),
  };
  return { databaseUrl: url, clickhouseUrl, clickhouseDatabase: name, dataDir, env };
}

/**
 * This test file's stores, created on first use: a fresh Postgres database and
 * a fresh ClickHouse database. They are left in place after the run for
 * inspection (the embedded ones vanish with the run's temporary folders).
 */
export function testStores(): Promise<TestStores> {
  stores ??= create();
  return stores;
}

/** A configuration for this file's stores, with `overrides` applied. */
export async function testConfig(overrides: Record<string, string> = {}): Promise<Config> {
  const { env } = await testStores();
  return parseConfig({ ...env, ...overrides });
}

/** Starts a Funnel runtime on this file's stores (port 0, admin token {@link ADMIN_TOKEN}). */
export async function startTestApp(
  options: { roles?: readonly Role[]; env?: Record<string, string>; queues?: readonly QueueDefinition<never>[] } = {},
): Promise<App> {
  return startApp({
    config: await testConfig(options.env),
    roles: options.roles ?? ["api", "worker"],
    ...(options.queues !== undefined ? { queues: options.queues } : {}),
  });
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 10_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Waits until no job of `queue` for the given deliveries is waiting, retrying
 * or running: after that, nothing more can be sent for them, so a count of
 * what a partner or consumer received is final.
 */
export async function deliveriesSettled(app: App, queue: QueueDefinition<{ deliveryId: string }>, deliveryIds: readonly string[], timeoutMs = 10_000): Promise<void> {
  await eventually(
    async () => {
      const { rows } = await app.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${app.config.jobsSchema}.job
          WHERE name = $1 AND data->'payload'->>'deliveryId' = ANY($2::text[]) AND state IN ('created', 'retry', 'active')`,
        [queue.name, deliveryIds],
      );
      return rows[0]?.n === 0 ? true : undefined;
    },
    timeoutMs,
    `the jobs of ${deliveryIds.length} deliveries to finish`,
  );
}
