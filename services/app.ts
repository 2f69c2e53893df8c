import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ConnectRouter } from "@connectrpc/connect";
import type pg from "pg";
import { OpsService } from "../gen/funnel/ops/v1/ops_pb.js";
import { AnalyticsAppender } from "./core/analytics/appender.js";
import { AnalyticsStreamer, analyticsBacklog } from "./core/analytics/streamer.js";
import { createAdminAuthInterceptor } from "./core/auth.js";
import { openClickHouse, type ClickHouse } from "./core/clickhouse.js";
import type { Config } from "./core/config.js";
import { consoleRoutes } from "./core/console.js";
import { createErrorInterceptor } from "./core/errors.js";
import { probeClickHouse, probePostgres } from "./core/health.js";
import { registerHealth } from "./core/health-service.js";
import { createIdentityResolver, developmentSecret, identityOptionsFromConfig } from "./core/identity/index.js";
import { sendJson, startHttpServer, type HttpRoute } from "./core/http-server.js";
import { Jobs } from "./core/jobs/jobs.js";
import type { QueueDefinition } from "./core/jobs/queue.js";
import { createLogger, type Logger } from "./core/logger.js";
import { createMetricsRegistry, type Registry } from "./core/metrics.js";
import { startMetricsServer } from "./core/metrics-server.js";
import { loadMigrations, migrate, type MigrationSet } from "./core/migrate.js";
import { openPostgres, type Postgres } from "./core/postgres.js";
import { registerReflection } from "./core/reflection.js";
import { createRequestCheckInterceptor } from "./core/request-check.js";
import { readOrCreateSecret } from "./core/secret-file.js";
import { StatisticsKeeper } from "./core/statistics.js";
import type { Role, ServiceModule, StartedModule } from "./module-contract.js";
import { serviceModules } from "./service-modules.js";
import { createOpsService } from "./ops/service.js";

export type { Role } from "./module-contract.js";

export interface AppOptions {
  readonly config: Config;
  readonly roles: readonly Role[];
  readonly log?: Logger;
  /** Extra queues (tests). */
  readonly queues?: readonly QueueDefinition<never>[];
  /** The service modules to run; all of them by default. */
  readonly modules?: readonly ServiceModule[];
}

/** How often a gRPC health Watch probes readiness. */
const HEALTH_WATCH_INTERVAL_MS = 2_000;

/** A running Funnel process: stores, jobs and (for the api role) the server. */
export interface App {
  readonly config: Config;
  readonly log: Logger;
  readonly roles: readonly Role[];
  readonly postgres: Postgres;
  readonly pool: pg.Pool;
  readonly clickhouse: ClickHouse;
  readonly jobs: Jobs;
  /** Durable appends of analytics rows (group commit), streamed to ClickHouse. */
  readonly analytics: AnalyticsAppender;
  /** The Postgres → ClickHouse streamer (worker role only). */
  readonly streamer: AnalyticsStreamer | undefined;
  readonly metrics: Registry;
  readonly adminToken: string;
  /** Base URL of the process's HTTP server (a worker-only process serves only health). */
  readonly url: string;
  /** Base URL of the metrics server (`METRICS_HOST`:`METRICS_PORT`), which serves `/metrics` alone. */
  readonly metricsUrl: string;
  /** Drains and closes everything, in reverse order of start-up. */
  stop(): Promise<void>;
}

const migrationsDir = fileURLToPath(new URL("./migrations/", import.meta.url));

/** Loads the project's migrations for both stores. */
export async function projectMigrations(): Promise<MigrationSet> {
  return {
    postgres: await loadMigrations(join(migrationsDir, "postgres")),
    clickhouse: await loadMigrations(join(migrationsDir, "clickhouse")),
  };
}

/**
 * The admin token: `FUNNEL_ADMIN_TOKEN`, or in embedded mode one generated once
 * into `$FUNNEL_DATA_DIR/admin-token` (the CLI reads it from there).
 */
async function resolveAdminToken(config: Config, log: Logger): Promise<string> {
  if (config.adminToken !== undefined) return config.adminToken;
  if (config.databaseUrl !== undefined) {
    throw new Error("FUNNEL_ADMIN_TOKEN is required when DATABASE_URL is set (only the embedded mode generates one)");
  }
  const file = join(config.dataDir, "admin-token");
  const { secret, created } = await readOrCreateSecret(file);
  if (created) log.info({ file }, "generated a development admin token; the CLI reads it from this file");
  return secret;
}


/**
 * Starts a Funnel process with the given roles: opens the stores, applies
 * migrations, starts jobs and workers, then (api role) the server.
 * On any start-up failure, whatever was started is closed again.
 */
export async function startApp(options: AppOptions): Promise<App> {
  const { config, roles } = options;
  const modules = options.modules ?? serviceModules;
  const log = options.log ?? createLogger(config.logLevel);
  const startedAt = Date.now();
  const closers: (() => Promise<void>)[] = [];
  const closeAll = async (): Promise<void> => {
    for (const close of closers.reverse()) {
      try {
        await close();
      } catch (error) {
        log.warn({ err: error }, "error while closing");
      }
    }
    closers.length = 0;
  };
  try {
    const adminToken = await resolveAdminToken(config, log);
    const tokenSecret = await developmentSecret(config, log);
    const metrics = createMetricsRegistry({ maxLabelValues: config.metricsMaxPartnerSeries });
    const identity = createIdentityResolver({ ...identityOptionsFromConfig(config, tokenSecret), log, metrics });
    const postgres = await openPostgres(config, log, metrics);
    closers.push(() => postgres.close());
    const clickhouse = await openClickHouse(config);
    closers.push(() => clickhouse.close());
    const applied = await migrate(postgres.pool, clickhouse, await projectMigrations(), log);
    log.info({ ...applied, postgres: postgres.backend, clickhouse: clickhouse.backend }, "stores ready");

    let streamer: AnalyticsStreamer | undefined;
    if (roles.includes("worker")) {
      const started = new AnalyticsStreamer({ pool: postgres.pool, url: postgres.url, clickhouse, log, metrics });
      await started.start();
      closers.push(() => started.stop());
      streamer = started;
    }
    const analytics = new AnalyticsAppender({ pool: postgres.pool, metrics });
    closers.push(() => analytics.close());
    const jobs = new Jobs({
      url: postgres.url,
      schema: config.jobsSchema,
      pool: postgres.pool,
      log,
      metrics,
      queues: [...modules.flatMap((module) => module.queues ?? []), ...(options.queues ?? [])],
      pollingIntervalSeconds: config.jobsPollSeconds,
      superviseIntervalSeconds: config.jobsSuperviseSeconds,
      maintenanceIntervalSeconds: config.jobsMaintenanceSeconds,
      heartbeatSeconds: config.jobsHeartbeatSeconds,
      staleSeconds: config.jobsHeartbeatStaleSeconds,
    });
    await jobs.start();
    closers.push(() => jobs.stop(config.shutdownTimeoutMs));
    if (roles.includes("worker")) {
      const statistics = new StatisticsKeeper({
        pool: postgres.pool,
        log,
        metrics,
        schemas: [config.jobsSchema],
        intervalMs: config.postgresAnalyzeCheckSeconds * 1000,
      });
      statistics.start();
      closers.push(() => statistics.stop());
    }

    const startedModules: StartedModule[] = [];
    for (const module of modules) {
      const running = await module.start({
        config,
        log: log.child({ module: module.name }),
        roles,
        pool: postgres.pool,
        postgresUrl: postgres.url,
        clickhouse,
        jobs,
        analytics,
        metrics,
        adminToken,
        identity,
      });
      startedModules.push(running);
      if (running.stop !== undefined) closers.push(() => running.stop?.() ?? Promise.resolve());
    }

    // Every role serves health (and metrics on their own port), so a
    // worker-only process can be probed and scraped like an API process; only
    // the api role adds the RPCs and the services' plain routes.
    // Ready means Postgres answers: /readyz and the gRPC health service ask the same probe.
    const probeReadiness = () => probePostgres(postgres.pool, postgres.backend);
    const operationsRoutes: [string, HttpRoute][] = [
      ["/healthz", (_req, res) => sendJson(res, 200, { status: "ok" })],
      [
        "/readyz",
        async (_req, res) => {
          const [pg, ch] = await Promise.all([probeReadiness(), probeClickHouse(clickhouse)]);
          // ClickHouse is not required to accept traffic: analytics rows wait in Postgres.
          sendJson(res, pg.healthy ? 200 : 503, {
            status: pg.healthy ? (ch.healthy ? "ready" : "degraded") : "unavailable",
            migrations: "applied",
            postgres: pg,
            clickhouse: ch,
          });
        },
      ],
    ];
    const api = roles.includes("api");
    const ops = api ? createOpsService({
      pool: postgres.pool,
      postgresBackend: postgres.backend,
      clickhouse,
      jobs,
      roles,
      startedAt,
      analyticsBacklog: () => analyticsBacklog(postgres.pool),
    }) : undefined;
    const rpc = (router: ConnectRouter): void => {
      if (ops === undefined) return;
      router.service(OpsService, ops);
      for (const module of startedModules) module.rpc?.(router);
      // Last: both describe the services registered before them.
      registerHealth(router, { ready: async () => (await probeReadiness()).healthy, intervalMs: HEALTH_WATCH_INTERVAL_MS });
      registerReflection(router);
    };
    const consoleServing = api ? consoleRoutes(log) : undefined;
    const routes = new Map<string, HttpRoute>([
      ...(api ? startedModules.flatMap((module) => [...(module.routes ?? [])]) : []),
      ...(consoleServing?.exact ?? []),
      ...operationsRoutes,
    ]);
    // Series name partners and integrations: never on the public port.
    const metricsServer = await startMetricsServer({ port: config.metricsPort, host: config.metricsHost, metrics, log });
    closers.push(() => metricsServer.close());
    const server = await startHttpServer({
      port: config.port,
      host: config.host,
      log,
      rpc,
      routes,
      ...(consoleServing !== undefined ? { prefixRoutes: consoleServing.prefix } : {}),
      interceptors: [
        createErrorInterceptor(log, metrics),
        createAdminAuthInterceptor(adminToken, new Set([OpsService.typeName, ...startedModules.flatMap((module) => module.adminOnly ?? [])])),
        createRequestCheckInterceptor(Object.fromEntries(startedModules.flatMap((module) => Object.entries(module.handlerChecks ?? {})))),
      ],
      readMaxBytes: 4 * 1024 * 1024,
      cors: { origins: config.corsAllowedOrigins, paths: new Set(api ? startedModules.flatMap((module) => module.corsPaths ?? []) : []) },
      metrics,
      accessLogTrackSample: config.accessLogTrackSample,
      headersTimeoutMs: config.httpHeadersTimeoutSeconds * 1000,
      requestTimeoutMs: config.httpRequestTimeoutSeconds * 1000,
      keepAliveTimeoutMs: config.httpKeepAliveTimeoutSeconds * 1000,
      maxConnections: config.httpMaxConnections,
    });
    // Stopped first: no new work is accepted while the rest drains.
    closers.push(async () => {
      for (const module of startedModules) module.closing?.();
      await server.close(config.shutdownTimeoutMs);
    });

    return {
      config,
      log,
      roles,
      postgres,
      pool: postgres.pool,
      clickhouse,
      jobs,
      analytics,
      streamer,
      metrics,
      adminToken,
      url: server.url,
      metricsUrl: metricsServer.url,
      stop: closeAll,
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}
