/**
 * The module contract: what a module of the suite declares (`ServiceModule`),
 * what the runtime hands it when it starts (`ModuleContext`) and what it
 * serves once started (`StartedModule`). Each service implements it in its
 * own `services/<name>/module.ts` (`services/service-modules.ts` lists them),
 * the runtime's own parts in `services/core/runtime-modules.ts`.
 */
import type { ConnectRouter } from "@connectrpc/connect";
import type pg from "pg";
import type { AnalyticsAppender } from "./core/analytics/appender.js";
import type { ClickHouse } from "./core/clickhouse.js";
import type { Config } from "./core/config.js";
import type { Readiness } from "./core/health.js";
import type { HttpRoute } from "./core/http-server.js";
import type { IdentityResolver } from "./core/identity/index.js";
import type { Jobs } from "./core/jobs/jobs.js";
import type { QueueDefinition } from "./core/jobs/queue.js";
import type { Logger } from "./core/logger.js";
import type { Registry } from "./core/metrics.js";
import type { HandlerChecks } from "./core/request-check.js";

/** The process roles. `all` is both, for development and the embedded mode. */
export type Role = "api" | "worker";

/** What a module gets from the runtime when it starts. */
export interface ModuleContext {
  readonly config: Config;
  readonly log: Logger;
  readonly roles: readonly Role[];
  /** When the process began to start (`Date.now()`). */
  readonly startedAt: number;
  readonly pool: pg.Pool;
  /** Postgres URL, for modules that need a dedicated LISTEN connection. */
  readonly postgresUrl: string;
  readonly clickhouse: ClickHouse;
  /** Started; workers may be registered with `jobs.work` (worker role). */
  readonly jobs: Jobs;
  readonly analytics: AnalyticsAppender;
  readonly metrics: Registry;
  /** The admin token, for modules that accept it beside a token of their own. */
  readonly adminToken: string;
  /** The one resolver of user tokens (one cache), shared by every service that takes them. */
  readonly identity: IdentityResolver;
  /** The process's one readiness probe. */
  readonly readiness: Readiness;
}

/** What a started module serves. Every part is optional. */
export interface StartedModule {
  /** Registers the module's Connect services (api role). */
  rpc?(router: ConnectRouter): void;
  /** Plain HTTP routes by exact path (api role). */
  readonly routes?: ReadonlyMap<string, HttpRoute>;
  /** Plain HTTP routes for every path under a prefix (api role). */
  readonly prefixRoutes?: ReadonlyMap<string, HttpRoute>;
  /** Base URL of a server the module runs on a port of its own (the metrics server). */
  readonly url?: string;
  /**
   * RPCs that require the admin token: service type names
   * (`funnel.tracker.v1.TrackerService`) or single methods
   * (`funnel.tracker.v1.TrackerService/CreateTracker`).
   */
  readonly adminOnly?: readonly string[];
  /**
   * Request fields the module's handlers check themselves (`findViolation`),
   * item by item, so one bad item fails alone; every other field of every RPC
   * is checked before its handler runs (see `createRequestCheckInterceptor`).
   */
  readonly handlerChecks?: HandlerChecks;
  /**
   * Paths web pages on the origins of `CORS_ALLOWED_ORIGINS` may call from a
   * browser (e.g. `/funnel.ingest.v1.IngestService/Send`).
   */
  readonly corsPaths?: readonly string[];
  /**
   * Called when shutdown begins, before the server drains: ends long-lived
   * responses (server streams) so the drain does not wait for them.
   */
  closing?(): void;
  /** Stops what `start` started; called in reverse start order on shutdown. */
  stop?(): Promise<void>;
}

/**
 * One part of a Funnel process: a service of the suite (tracker, ingest, seen,
 * postback, ops) or a part of the runtime (health, reflection, console,
 * metrics). It declares its job queues and a start function run once the
 * stores, migrations, jobs and the analytics appender are ready. Migrations
 * live in `services/migrations/`.
 */
export interface ServiceModule {
  readonly name: string;
  /**
   * Served by a process of any role, not only the api role (health: a
   * worker-only process is probed like an API one). Such a module serves
   * what it returns, so it checks `roles` itself.
   */
  readonly everyRole?: boolean;
  /** Queues created before any module starts. */
  readonly queues?: readonly QueueDefinition<never>[];
  start(context: ModuleContext): Promise<StartedModule>;
}
