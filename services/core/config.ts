/*
 * The configuration: every environment variable the server reads, declared
 * once. To add one, declare a `setting` (variable, kind, default, doc) in the
 * group of the module that reads it: the core's groups below, or a module's
 * own `settings.ts` (services/seen/settings.ts…) listed in `settingGroups`.
 * Its field in `Config`, its parsing and its error messages, its row in
 * docs/configuration.md (`npm run docs`) and the compose check all follow
 * from that declaration. Durations take seconds (`_SECONDS` names) or a unit
 * (`250ms`, `90s`, `12h`, `30d`); a renamed variable keeps its old name in
 * `deprecatedNames`. The machinery is in settings.ts.
 */
import { isIP } from "node:net";
import { identitySettings } from "./identity/settings.js";
import { ingestSettings } from "../ingest/settings.js";
import { postbackSettings } from "../postback/settings.js";
import { seenSettings } from "../seen/settings.js";
import { trackerSettings } from "../tracker/settings.js";
import {
  checkDeclarations,
  decimal,
  defineSettings,
  deprecatedVariablesOf,
  deprecationNotices,
  duration,
  identifier,
  integer,
  list,
  oneOf,
  path,
  readSettings,
  secret,
  setting,
  text,
  url,
  variablesOf,
  type Env,
  type GroupValues,
} from "./settings.js";

export { ConfigError } from "./settings.js";

/** Log levels accepted by `LOG_LEVEL`, as pino names them. */
const logLevels = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof logLevels)[number];

/** Why an address or network of TRUSTED_PROXIES is refused; undefined when it is fine. */
function networkProblem(entry: string): string | undefined {
  const [address = "", bits, extra] = entry.split("/");
  const family = isIP(address);
  const prefix = bits === undefined ? (family === 6 ? 128 : 32) : /^\d+$/.test(bits) ? Number(bits) : -1;
  if (family === 0 || extra !== undefined || prefix < 0 || prefix > (family === 6 ? 128 : 32)) {
    return `"${entry}" is not an address or CIDR network (e.g. 10.0.0.0/8, ::1)`;
  }
  return undefined;
}

/** Why an entry of CORS_ALLOWED_ORIGINS is refused; undefined when it is `*` or an origin. */
function originProblem(entry: string): string | undefined {
  if (entry === "*") return undefined;
  let parsed: URL | undefined;
  try {
    parsed = new URL(entry);
  } catch {
    parsed = undefined;
  }
  if (parsed === undefined || !["http:", "https:"].includes(parsed.protocol) || parsed.origin !== entry) {
    return `"${entry}" is not an origin like https://www.example.com (scheme, host, optional port, no path)`;
  }
  return undefined;
}

const serverSettings = defineSettings({
  owner: "services/core",
  title: "Server",
  settings: {
    port: setting({
      variable: "PORT",
      kind: integer(0, 65535),
      default: "8080",
      doc: "API port: HTTP/1.1 (Connect, gRPC-Web, plain routes) and HTTP/2 cleartext (gRPC, Connect) on the same port",
    }),
    host: setting({ variable: "HOST", kind: text, default: "0.0.0.0", doc: "address to bind" }),
    metricsPort: setting({
      variable: "METRICS_PORT",
      kind: integer(0, 65535),
      default: "9464",
      doc: "port of `GET /metrics` (Prometheus text), served there alone and never on `PORT`: the series name partners and integrations; must differ from `PORT`; `0` picks a free port",
    }),
    metricsHost: setting({
      variable: "METRICS_HOST",
      kind: text,
      default: "127.0.0.1",
      doc: "address the metrics port binds to: loopback, so only a scraper on the same host reaches it; `0.0.0.0` when the scraper is another container or host (compose sets it, and publishes no metrics port)",
    }),
    shutdownTimeoutMs: setting({
      variable: "SHUTDOWN_TIMEOUT_SECONDS",
      kind: duration({ unit: "ms", min: "0s", max: "10m" }),
      default: "10",
      doc: "how long a graceful shutdown may drain before it closes what is left (see [Operations](operations.md#stopping))",
      deprecatedNames: [{ variable: "SHUTDOWN_TIMEOUT_MS", kind: duration({ unit: "ms", min: "0s", max: "10m", bare: "ms" }), note: "a bare number counts milliseconds" }],
    }),
  },
  check: (values) => (values.metricsPort !== 0 && values.metricsPort === values.port ? [`METRICS_PORT: must differ from PORT (${values.port})`] : []),
});

const storeSettings = defineSettings({
  owner: "services/core",
  title: "Stores",
  settings: {
    databaseUrl: setting({
      variable: "DATABASE_URL",
      kind: url(["postgres:", "postgresql:"]),
      doc: "Postgres server (`postgres://…`); unset starts an embedded Postgres in `$FUNNEL_DATA_DIR/postgres`",
    }),
    databasePoolMax: setting({
      variable: "DATABASE_POOL_MAX",
      kind: integer(1, 1000),
      default: "20",
      doc: "connections in the application pool (pg-boss has its own 10)",
    }),
    embeddedPostgresPort: setting({
      variable: "EMBEDDED_POSTGRES_PORT",
      kind: integer(1, 65535),
      default: "54329",
      doc: "port of the embedded Postgres (127.0.0.1 only)",
    }),
    embeddedPostgresRestartAttempts: setting({
      variable: "EMBEDDED_POSTGRES_RESTART_ATTEMPTS",
      kind: integer(0, 1_000),
      default: "10",
      doc: "when the embedded Postgres dies under a running process, how many times it is started again (pauses from 0.1 s doubling to 5 s, about 25 s in all) before the process gives up and stays unready; `0` never restarts it",
    }),
    postgresAnalyzeCheckSeconds: setting({
      variable: "POSTGRES_ANALYZE_CHECK_SECONDS",
      kind: duration({ unit: "s", min: "0s", max: "1h" }),
      default: "5",
      doc: "how often a worker process looks for tables (Funnel's own and pg-boss's) that changed by at least half since Postgres last analyzed them, and analyzes them; `0` leaves it all to autovacuum (see [Planner statistics](jobs.md#planner-statistics))",
    }),
    clickhouseUrl: setting({
      variable: "CLICKHOUSE_URL",
      kind: url(["http:", "https:"]),
      doc: "ClickHouse server (`http://…:8123`); unset uses embedded chDB in `$FUNNEL_DATA_DIR/clickhouse`",
    }),
    clickhouseDatabase: setting({
      variable: "CLICKHOUSE_DATABASE",
      kind: identifier,
      default: "funnel",
      doc: "ClickHouse database holding Funnel's tables",
    }),
    clickhouseCluster: setting({
      variable: "CLICKHOUSE_CLUSTER",
      kind: identifier,
      doc: "with `CLICKHOUSE_URL`: the cluster to create the schema on; tables become replicated and DDL runs `ON CLUSTER` (see [Scaling](scaling.md#a-clickhouse-cluster))",
    }),
    dataDir: setting({
      variable: "FUNNEL_DATA_DIR",
      kind: path,
      default: "./data",
      doc: "folder for the embedded stores and the dev admin token",
    }),
    adminToken: setting({
      variable: "FUNNEL_ADMIN_TOKEN",
      kind: secret,
      doc: "bearer token for admin RPCs. Required with `DATABASE_URL`; in embedded mode one is generated into `$FUNNEL_DATA_DIR/admin-token`",
    }),
  },
});

const observabilitySettings = defineSettings({
  owner: "services/core",
  title: "Logs and metrics",
  settings: {
    logLevel: setting({
      variable: "LOG_LEVEL",
      kind: oneOf(logLevels),
      default: "info",
      doc: "the least severe level logged",
    }),
    accessLogTrackSample: setting({
      variable: "ACCESS_LOG_TRACK_SAMPLE",
      kind: decimal(0, 1),
      default: "0.01",
      doc: "the share of `/track` requests that get an access log line; every other request gets one (see [Operations](operations.md#logs))",
    }),
    metricsMaxPartnerSeries: setting({
      variable: "METRICS_MAX_PARTNER_SERIES",
      kind: integer(1, 100_000),
      default: "100",
      doc: 'how many partners, and how many Seen integrations, get metric series of their own; later ones are counted under `partner="other"` (`integration="other"`) until the process restarts',
    }),
  },
});

const httpSettings = defineSettings({
  owner: "services/core",
  title: "HTTP",
  settings: {
    httpHeadersTimeoutSeconds: setting({
      variable: "HTTP_HEADERS_TIMEOUT_SECONDS",
      kind: duration({ unit: "s", min: "1s", max: "10m" }),
      default: "10",
      doc: "longest wait for a request's headers, and for a new connection's first byte; an HTTP/2 session that opens no stream in this time is closed",
    }),
    httpRequestTimeoutSeconds: setting({
      variable: "HTTP_REQUEST_TIMEOUT_SECONDS",
      kind: duration({ unit: "s", min: "1s", max: "1h" }),
      default: "60",
      doc: "longest wait for a whole request, body included (at least `HTTP_HEADERS_TIMEOUT_SECONDS`); answers already being sent are never cut",
    }),
    httpKeepAliveTimeoutSeconds: setting({
      variable: "HTTP_KEEP_ALIVE_TIMEOUT_SECONDS",
      kind: duration({ unit: "s", min: "1s", max: "1h" }),
      default: "65",
      doc: "how long an idle keep-alive connection (an HTTP/2 session without a stream) stays open; keep it above the proxy's upstream keep-alive (nginx here: 60 s)",
    }),
    httpMaxConnections: setting({
      variable: "HTTP_MAX_CONNECTIONS",
      kind: integer(1, 1_000_000),
      default: "10000",
      doc: "open connections one process accepts; more are closed on arrival and counted in `funnel_http_connections_dropped_total`. Keep it under the process's file-descriptor limit (`ulimit -n`)",
    }),
    trustedProxies: setting({
      variable: "TRUSTED_PROXIES",
      kind: list("addresses, CIDR networks; comma-separated", networkProblem),
      default: "",
      doc: "the reverse proxies (`10.0.0.0/8, ::1`) whose `X-Forwarded-For`, `X-Real-IP`, `X-Forwarded-Proto` and `X-Forwarded-Host` are believed; from any other peer these headers are ignored",
    }),
    corsAllowedOrigins: setting({
      variable: "CORS_ALLOWED_ORIGINS",
      kind: list("origins, or `*`; comma-separated", originProblem),
      default: "*",
      doc: "origins (`https://www.example.com`) whose pages may call the browser-facing APIs ([Browsers and CORS](cors.md)), with credentials (cookies); `*` lets any other origin call them without credentials",
    }),
  },
  check: (values) =>
    values.httpRequestTimeoutSeconds < values.httpHeadersTimeoutSeconds
      ? ["HTTP_REQUEST_TIMEOUT_SECONDS: must be at least HTTP_HEADERS_TIMEOUT_SECONDS (the headers are part of the request)"]
      : [],
});

const jobSettings = defineSettings({
  owner: "services/core",
  title: "Jobs",
  settings: {
    jobsSchema: setting({ variable: "JOBS_SCHEMA", kind: identifier, default: "pgboss", doc: "Postgres schema of pg-boss" }),
    jobsPollSeconds: setting({
      variable: "JOBS_POLL_SECONDS",
      kind: duration({ unit: "s", min: "1s", max: "1h" }),
      default: "10",
      doc: "fallback polling of job workers; NOTIFY wakes them within milliseconds",
    }),
    jobsSuperviseSeconds: setting({
      variable: "JOBS_SUPERVISE_SECONDS",
      kind: duration({ unit: "s", min: "1s", max: "1h" }),
      default: "30",
      doc: "how often jobs running past their queue's `expireInSeconds` (a hung handler) are detected and retried",
    }),
    jobsMaintenanceSeconds: setting({
      variable: "JOBS_MAINTENANCE_SECONDS",
      kind: duration({ unit: "s", min: "1s", max: "1d" }),
      default: "300",
      doc: "how often retention clean-up runs (jobs, expired downloads, old postbacks)",
    }),
    jobsHeartbeatSeconds: setting({
      variable: "JOBS_HEARTBEAT_SECONDS",
      kind: duration({ unit: "s", min: "1s", max: "10m" }),
      default: "5",
      doc: "how often a process refreshes the heartbeat of the jobs it runs, and looks for running jobs whose heartbeat stopped (see [Jobs](jobs.md))",
    }),
    jobsHeartbeatStaleSeconds: setting({
      variable: "JOBS_HEARTBEAT_STALE_SECONDS",
      kind: duration({ unit: "s", min: "2s", max: "1h" }),
      default: "20",
      doc: "a running job whose heartbeat is older than this is held by a dead process and is failed, so it retries; at least twice `JOBS_HEARTBEAT_SECONDS`. Every process should have the same value",
    }),
  },
  check: (values) =>
    values.jobsHeartbeatStaleSeconds < 2 * values.jobsHeartbeatSeconds
      ? ["JOBS_HEARTBEAT_STALE_SECONDS: must be at least twice JOBS_HEARTBEAT_SECONDS, so that one late heartbeat does not retry a running job"]
      : [],
});

/** Every group of settings, in the order of docs/configuration.md. */
export const settingGroups = [
  serverSettings,
  storeSettings,
  observabilitySettings,
  httpSettings,
  jobSettings,
  identitySettings,
  trackerSettings,
  ingestSettings,
  seenSettings,
  postbackSettings,
] as const;
checkDeclarations(settingGroups);

/** The whole runtime configuration, parsed once from the environment (see the groups above). */
export type Config = GroupValues<typeof settingGroups>;

/**
 * Every environment variable the server reads, in the order of
 * docs/configuration.md; `parseConfig` reads these and the deprecated names
 * alone.
 */
export const configVariables: readonly string[] = variablesOf(settingGroups);

/** Older names still read in place of a current variable (documented as deprecated). */
export const deprecatedVariables: readonly string[] = deprecatedVariablesOf(settingGroups);

/**
 * Parses the environment into a frozen {@link Config}; throws a
 * {@link ConfigError} listing every problem, each naming its variable.
 */
export function parseConfig(env: Env = process.env, cwd: string = process.cwd()): Config {
  return readSettings(settingGroups, env, cwd);
}

/** One line per deprecated variable set in `env`, naming what replaces it (logged at start-up). */
export function configDeprecations(env: Env = process.env): string[] {
  return deprecationNotices(settingGroups, env);
}
