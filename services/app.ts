import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ConnectRouter } from "@connectrpc/connect";
import type pg from "pg";
import { AnalyticsAppender } from "./core/analytics/appender.js";
import { AnalyticsStreamer } from "./core/analytics/streamer.js";
import { createAdminAuthInterceptor } from "./core/auth.js";
import { openClickHouse, type ClickHouse } from "./core/clickhouse.js";
import type { Config } from "./core/config.js";
import { createErrorInterceptor } from "./core/errors.js";
import { createReadiness } from "./core/health.js";
import { startHttpServer, type HttpRoute, type HttpServer } from "./core/http-server.js";
import { createIdentityResolver, developmentSecret, identityOptionsFromConfig } from "./core/identity/index.js";
import { Jobs } from "./core/jobs/jobs.js";
import type { QueueDefinition } from "./core/jobs/queue.js";
import { createLogger, type Logger } from "./core/logger.js";
import { createMetricsRegistry, type Registry } from "./core/metrics.js";
import { loadMigrations, migrate, type MigrationSet } from "./core/migrate.js";
import { openPostgres, type Postgres } from "./core/postgres.js";
import { createRequestCheckInterceptor } from "./core/request-check.js";
import { consoleModule, healthModule, metricsModule, reflectionModule } from "./core/runtime-modules.js";
import { readOrCreateSecret } from "./core/secret-file.js";
import { StatisticsKeeper } from "./core/statistics.js";
import type { ModuleContext, Role, ServiceModule, StartedModule } from "./module-contract.js";
import { opsModule } from "./ops/module.js";
import { serviceModules } from "./service-modules.js";

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

/** Steps run in reverse order of their pushing; a step that fails is logged and the rest still run. */
class StopSteps {
  readonly #steps: (() => Promise<void>)[] = [];
  constructor(private readonly log: Logger) {}

  push(step: () => Promise<void>): void {
    this.#steps.push(step);
  }

  async run(): Promise<void> {
    for (let step = this.#steps.pop(); step !== undefined; step = this.#steps.pop()) {
      try {
        await step();
      } catch (error) {
        this.log.warn({ err: error }, "error while closing");
      }
    }
  }
}

/** Opens Postgres and ClickHouse and brings both schemas up to date. */
async function openStores(config: Config, log: Logger, metrics: Registry, stops: StopSteps): Promise<{ postgres: Postgres; clickhouse: ClickHouse }> {
  const postgres = await openPostgres(config, log, metrics);
  stops.push(() => postgres.close());
  const clickhouse = await openClickHouse(config);
  stops.push(() => clickhouse.close());
  const applied = await migrate(postgres.pool, clickhouse, await projectMigrations(), log);
  log.info({ ...applied, postgres: postgres.backend, clickhouse: clickhouse.backend }, "stores ready");
  return { postgres, clickhouse };
}

/** What runs under the modules: the job runner, the analytics appender and (worker role) the analytics stream. */
interface Background {
  readonly jobs: Jobs;
  readonly analytics: AnalyticsAppender;
  readonly streamer: AnalyticsStreamer | undefined;
}

/**
 * Starts the analytics stream to ClickHouse (worker role), the analytics
 * appender, the job runner over every module's queues and (worker role) the
 * statistics keeper of the jobs schema.
 */
async function startBackground(
  context: { config: Config; log: Logger; metrics: Registry; roles: readonly Role[]; postgres: Postgres; clickhouse: ClickHouse },
  queues: readonly QueueDefinition<never>[],
  stops: StopSteps,
): Promise<Background> {
  const { config, log, metrics, postgres } = context;
  const worker = context.roles.includes("worker");
  let streamer: AnalyticsStreamer | undefined;
  if (worker) {
    const started = new AnalyticsStreamer({ pool: postgres.pool, url: postgres.url, clickhouse: context.clickhouse, log, metrics });
    await started.start();
    stops.push(() => started.stop());
    streamer = started;
  }
  const analytics = new AnalyticsAppender({ pool: postgres.pool, metrics });
  stops.push(() => analytics.close());
  const jobs = new Jobs({
    url: postgres.url,
    schema: config.jobsSchema,
    pool: postgres.pool,
    log,
    metrics,
    queues,
    pollingIntervalSeconds: config.jobsPollSeconds,
    superviseIntervalSeconds: config.jobsSuperviseSeconds,
    maintenanceIntervalSeconds: config.jobsMaintenanceSeconds,
    heartbeatSeconds: config.jobsHeartbeatSeconds,
    staleSeconds: config.jobsHeartbeatStaleSeconds,
  });
  await jobs.start();
  stops.push(() => jobs.stop(config.shutdownTimeoutMs));
  if (worker) {
    const statistics = new StatisticsKeeper({
      pool: postgres.pool,
      log,
      metrics,
      schemas: [config.jobsSchema],
      intervalMs: config.postgresAnalyzeCheckSeconds * 1000,
    });
    statistics.start();
    stops.push(() => statistics.stop());
  }
  return { jobs, analytics, streamer };
}

/**
 * Starts the public HTTP server (Connect, gRPC, gRPC-Web and plain routes on
 * `PORT`) over what the started modules serve. A module serves only in an api
 * process unless it serves every role (health).
 */
function serve(context: ModuleContext, started: readonly (readonly [ServiceModule, StartedModule])[]): Promise<HttpServer> {
  const { config, log, metrics } = context;
  const api = context.roles.includes("api");
  const serving = started.filter(([module]) => api || module.everyRole === true).map(([, running]) => running);
  const all = started.map(([, running]) => running);
  return startHttpServer({
    port: config.port,
    host: config.host,
    log,
    // In module order: health and reflection describe the services registered before them.
    rpc: (router: ConnectRouter) => {
      for (const running of serving) running.rpc?.(router);
    },
    routes: new Map<string, HttpRoute>(serving.flatMap((running) => [...(running.routes ?? [])])),
    prefixRoutes: new Map<string, HttpRoute>(serving.flatMap((running) => [...(running.prefixRoutes ?? [])])),
    interceptors: [
      createErrorInterceptor(log, metrics),
      createAdminAuthInterceptor(context.adminToken, new Set(all.flatMap((running) => running.adminOnly ?? []))),
      createRequestCheckInterceptor(Object.fromEntries(all.flatMap((running) => Object.entries(running.handlerChecks ?? {})))),
    ],
    readMaxBytes: 4 * 1024 * 1024,
    cors: { origins: config.corsAllowedOrigins, paths: new Set(serving.flatMap((running) => running.corsPaths ?? [])) },
    metrics,
    accessLogTrackSample: config.accessLogTrackSample,
    headersTimeoutMs: config.httpHeadersTimeoutSeconds * 1000,
    requestTimeoutMs: config.httpRequestTimeoutSeconds * 1000,
    keepAliveTimeoutMs: config.httpKeepAliveTimeoutSeconds * 1000,
    maxConnections: config.httpMaxConnections,
  });
}

/**
 * Starts a Funnel process with the given roles: opens the stores, applies
 * migrations, starts jobs and the analytics appender, starts the modules in
 * order (Ops, the services, health, reflection, the console, the metrics
 * server), then serves them. It stops in reverse order: the server first, so
 * nothing new is accepted while the rest drains. On any start-up failure,
 * whatever was started is closed again.
 */
export async function startApp(options: AppOptions): Promise<App> {
  const { config, roles } = options;
  const services = options.modules ?? serviceModules;
  const modules = [opsModule, ...services, healthModule, reflectionModule, consoleModule, metricsModule];
  const log = options.log ?? createLogger(config.logLevel);
  const startedAt = Date.now();
  const stops = new StopSteps(log);
  try {
    const adminToken = await resolveAdminToken(config, log);
    const tokenSecret = await developmentSecret(config, log);
    const metrics = createMetricsRegistry({ maxLabelValues: config.metricsMaxPartnerSeries });
    const identity = createIdentityResolver({ ...identityOptionsFromConfig(config, tokenSecret), log, metrics });
    const { postgres, clickhouse } = await openStores(config, log, metrics, stops);
    const queues = [...modules.flatMap((module) => module.queues ?? []), ...(options.queues ?? [])];
    const { jobs, analytics, streamer } = await startBackground({ config, log, metrics, roles, postgres, clickhouse }, queues, stops);

    const context: ModuleContext = {
      config,
      log,
      roles,
      startedAt,
      pool: postgres.pool,
      postgresUrl: postgres.url,
      clickhouse,
      jobs,
      analytics,
      metrics,
      adminToken,
      identity,
      readiness: createReadiness({ pool: postgres.pool, postgresBackend: postgres.backend, clickhouse }),
    };
    const started: (readonly [ServiceModule, StartedModule])[] = [];
    for (const module of modules) {
      const running = await module.start({ ...context, log: log.child({ module: module.name }) });
      started.push([module, running]);
      if (running.stop !== undefined) stops.push(() => running.stop?.() ?? Promise.resolve());
    }

    const server = await serve(context, started);
    stops.push(async () => {
      for (const [, running] of started) running.closing?.();
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
      metricsUrl: started.find(([module]) => module === metricsModule)?.[1].url ?? "",
      stop: () => stops.run(),
    };
  } catch (error) {
    await stops.run();
    throw error;
  }
}
