import { createPublicKey, type KeyObject } from "node:crypto";
import { isIP } from "node:net";
import { isAbsolute, resolve } from "node:path";
import { parseDuration } from "./duration.js";
import { publicKeyAlgorithms } from "./identity/jwt.js";

/** Log levels accepted by `LOG_LEVEL`, as pino names them. */
const logLevels = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof logLevels)[number];

/**
 * Every environment variable the server reads, in the order of the table in
 * docs/configuration.md. `parseConfig` can read no other (its reader takes only
 * these names), and the tests hold this list, that table and
 * docker-compose.yml to each other.
 */
export const configVariables = [
  "PORT",
  "HOST",
  "METRICS_PORT",
  "METRICS_HOST",
  "DATABASE_URL",
  "DATABASE_POOL_MAX",
  "EMBEDDED_POSTGRES_PORT",
  "EMBEDDED_POSTGRES_RESTART_ATTEMPTS",
  "CLICKHOUSE_URL",
  "CLICKHOUSE_DATABASE",
  "CLICKHOUSE_CLUSTER",
  "FUNNEL_DATA_DIR",
  "FUNNEL_ADMIN_TOKEN",
  "LOG_LEVEL",
  "ACCESS_LOG_TRACK_SAMPLE",
  "METRICS_MAX_PARTNER_SERIES",
  "SHUTDOWN_TIMEOUT_MS",
  "HTTP_HEADERS_TIMEOUT_SECONDS",
  "HTTP_REQUEST_TIMEOUT_SECONDS",
  "HTTP_KEEP_ALIVE_TIMEOUT_SECONDS",
  "HTTP_MAX_CONNECTIONS",
  "JOBS_SCHEMA",
  "JOBS_POLL_SECONDS",
  "JOBS_SUPERVISE_SECONDS",
  "JOBS_MAINTENANCE_SECONDS",
  "JOBS_HEARTBEAT_SECONDS",
  "JOBS_HEARTBEAT_STALE_SECONDS",
  "POSTGRES_ANALYZE_CHECK_SECONDS",
  "TRUSTED_PROXIES",
  "TRACKER_CACHE_REFRESH_SECONDS",
  "TRACKER_COOKIE_DOMAIN",
  "TRACKER_COOKIE_SAMESITE",
  "DOWNLOAD_REDIRECT_URL",
  "ATTRIBUTION_WINDOW",
  "POSTBACK_SERVICE_TOKEN",
  "POSTBACK_ALLOW_PRIVATE",
  "POSTBACK_CONCURRENCY",
  "POSTBACK_RETENTION",
  "CORS_ALLOWED_ORIGINS",
  "AUTH_ANONYMOUS_ONLY",
  "AUTH_URL",
  "AUTH_TIMEOUT_MS",
  "AUTH_USER_ID_FIELD",
  "AUTH_JWT_USER_ID_CLAIM",
  "AUTH_JWT_SECRET",
  "AUTH_JWT_PUBLIC_KEY",
  "AUTH_JWT_CLOCK_TOLERANCE_SECONDS",
  "AUTH_JWT_REQUIRE_EXP",
  "AUTH_JWT_ISSUER",
  "AUTH_JWT_AUDIENCE",
  "AUTH_CACHE_TTL_SECONDS",
  "AUTH_NEGATIVE_CACHE_SECONDS",
  "AUTH_CACHE_MAX_ENTRIES",
  "AUTH_RECHECK_MS",
  "INGEST_MAX_EVENT_BYTES",
  "INGEST_MAX_BATCH_BYTES",
  "INGEST_MAX_BATCH_EVENTS",
  "INGEST_DEDUP_DAYS",
  "PAGE_VIEW_TIMEOUT",
  "INGEST_SWEEP_SECONDS",
  "SEEN_DEFAULT_RETENTION",
  "SEEN_IDENTITY_CLAIMS",
  "SEEN_SERVICE_TOKEN",
  "SEEN_DELIVERY_CONCURRENCY",
  "SEEN_DELIVERY_HISTORY",
  "SEEN_ALLOW_PRIVATE",
] as const;
export type ConfigVariable = (typeof configVariables)[number];

/**
 * The whole runtime configuration, parsed once from the environment.
 * Every variable is documented in docs/configuration.md.
 */
export interface Config {
  /** TCP port of the API server (HTTP/1.1 and HTTP/2 cleartext on the same port). */
  readonly port: number;
  /** Address the API server binds to. */
  readonly host: string;
  /** TCP port of the Prometheus `/metrics` endpoint, apart from the API (series name partners and integrations). */
  readonly metricsPort: number;
  /** Address the metrics server binds to: loopback unless the scraper runs elsewhere. */
  readonly metricsHost: string;
  /** Postgres server URL; unset means an embedded Postgres in `dataDir/postgres`. */
  readonly databaseUrl: string | undefined;
  /** Size of the application's Postgres pool. */
  readonly databasePoolMax: number;
  /** Port of the embedded Postgres (only used when `databaseUrl` is unset). */
  readonly embeddedPostgresPort: number;
  /** Restarts of an embedded Postgres that died, tried with backoff before giving up; 0: none. */
  readonly embeddedPostgresRestartAttempts: number;
  /** ClickHouse server URL; unset means embedded chDB in `dataDir/clickhouse`. */
  readonly clickhouseUrl: string | undefined;
  /** ClickHouse database holding Funnel's tables. */
  readonly clickhouseDatabase: string;
  /** ClickHouse cluster to create the schema on (replicated tables); unset: one server. */
  readonly clickhouseCluster: string | undefined;
  /** Folder for embedded stores and the generated dev admin token. */
  readonly dataDir: string;
  /** Token required by admin RPCs; unset in embedded mode means a generated one. */
  readonly adminToken: string | undefined;
  readonly logLevel: LogLevel;
  /** The share of `/track` requests that get an access log line (0..1); every other request gets one. */
  readonly accessLogTrackSample: number;
  /** How many partners (and Seen integrations) get series of their own; the rest are counted as `other`. */
  readonly metricsMaxPartnerSeries: number;
  /** How long a graceful shutdown may take before it is forced, in milliseconds. */
  readonly shutdownTimeoutMs: number;
  /** Longest wait for a request's headers (and for a new connection's first byte), in seconds. */
  readonly httpHeadersTimeoutSeconds: number;
  /** Longest wait for a whole request, body included, in seconds. */
  readonly httpRequestTimeoutSeconds: number;
  /** How long an idle keep-alive connection is kept open, in seconds. */
  readonly httpKeepAliveTimeoutSeconds: number;
  /** Open connections one process accepts; more are closed on arrival. */
  readonly httpMaxConnections: number;
  /** Postgres schema used by pg-boss. */
  readonly jobsSchema: string;
  /** Fallback polling of job workers, in seconds; NOTIFY wakes them first. */
  readonly jobsPollSeconds: number;
  /** How often expired (lost) jobs are detected and queue stats refreshed, in seconds. */
  readonly jobsSuperviseSeconds: number;
  /** How often retention cleanup runs, in seconds. */
  readonly jobsMaintenanceSeconds: number;
  /** How often a process refreshes the heartbeat of the jobs it runs, and looks for jobs whose heartbeat stopped, in seconds. */
  readonly jobsHeartbeatSeconds: number;
  /** A running job whose heartbeat is older than this many seconds is failed, and so retried: its process died. */
  readonly jobsHeartbeatStaleSeconds: number;
  /** How often fast-changing tables are checked for stale planner statistics, in seconds; 0: never. */
  readonly postgresAnalyzeCheckSeconds: number;
  /**
   * Networks (CIDR, or single addresses) of the reverse proxies whose
   * `X-Forwarded-*` / `X-Real-IP` headers are believed. Empty: none.
   */
  readonly trustedProxies: readonly string[];
  /** Longest time a changed tracker value may be served stale, in seconds (full cache refresh). */
  readonly trackerCacheRefreshSeconds: number;
  /** `Domain` of the pixel's `user_id` cookie (e.g. `example.com` shares it with every subdomain); unset: the host only. */
  readonly trackerCookieDomain: string | undefined;
  /** `SameSite` of the pixel's cookie; unset: `none` (with `Secure`) over HTTPS, `lax` over plain HTTP. */
  readonly trackerCookieSameSite: CookieSameSite | undefined;
  /** Where `GET /download` redirects when the partner sets no URL of its own. */
  readonly downloadRedirectUrl: string | undefined;
  /** How long a stored download attributes installs and authorizations, in milliseconds. */
  readonly attributionWindowMs: number;
  /** Lets postbacks reach loopback, private and link-local addresses (tests, closed networks). */
  readonly postbackAllowPrivate: boolean;
  /** Token of the services that record funnel events; the admin token works too. */
  readonly postbackServiceToken: string | undefined;
  /** How long finished postbacks and their attempts stay in Postgres (ClickHouse keeps the attempts for good). */
  readonly postbackRetentionMs: number;
  /** Postbacks one worker process sends at once. */
  readonly postbackConcurrency: number;
  /** Origins whose web pages may call browser-facing APIs (`*` for any). */
  readonly corsAllowedOrigins: readonly string[];
  /** No user tokens at all: a request carrying one is `unauthenticated`. Lets a server with `DATABASE_URL` start without a way to verify tokens. */
  readonly authAnonymousOnly: boolean;
  /** Auth service endpoint that answers a bearer token with the user; unset means local JWT checks only. */
  readonly authUrl: string | undefined;
  /** How long an auth service call may take before the token is checked locally. */
  readonly authTimeoutMs: number;
  /** Dot path of the user id in the auth service's JSON answer. */
  readonly authUserIdField: string;
  /** JWT claim holding the user id when a token is verified locally. */
  readonly authJwtUserIdClaim: string;
  /** Shared secret of HS256/384/512 tokens, for local verification. */
  readonly authJwtSecret: string | undefined;
  /** PEM public key of RS/PS/ES/EdDSA tokens, for local verification. */
  readonly authJwtPublicKey: string | undefined;
  /** Clock difference forgiven on a locally verified token's `exp`, `nbf` and `iat`, in seconds. */
  readonly authJwtClockToleranceSeconds: number;
  /** Whether a locally verified token without `exp` is refused. */
  readonly authJwtRequireExp: boolean;
  /** The `iss` locally verified tokens must name; unset: not checked. */
  readonly authJwtIssuer: string | undefined;
  /** A value the `aud` of locally verified tokens must hold; unset: not checked. */
  readonly authJwtAudience: string | undefined;
  /** Longest a positive answer is cached (shortened to the token's expiry). */
  readonly authCacheTtlSeconds: number;
  /** How long a rejected token is remembered as invalid. */
  readonly authNegativeCacheSeconds: number;
  /** Most tokens kept in the identity cache. */
  readonly authCacheMaxEntries: number;
  /** After the auth service failed, how long tokens are checked locally before it is asked again. */
  readonly authRecheckMs: number;
  /** Largest ingest event (Send body, or one event of a batch), in bytes. */
  readonly ingestMaxEventBytes: number;
  /** Largest SendBatch body, in bytes. */
  readonly ingestMaxBatchBytes: number;
  /** Most events in one SendBatch. */
  readonly ingestMaxBatchEvents: number;
  /** How long an event id is remembered for de-duplication, in days. */
  readonly ingestDedupDays: number;
  /** A page-view start with no end after this many seconds is emitted unpaired. */
  readonly pageViewTimeoutSeconds: number;
  /** How often the page-view timeout sweep runs, in seconds. */
  readonly ingestSweepSeconds: number;
  /** How long marks of a tag without a retention of its own are remembered, in seconds. */
  readonly seenDefaultRetentionSeconds: number;
  /** Where each Seen identity field is read from a verified token (dot paths into its claims). */
  readonly seenIdentityClaims: Readonly<Record<SeenIdentityField, string>>;
  /** Token of the services that call LookupSeen and read topic feeds; the admin token works too. */
  readonly seenServiceToken: string | undefined;
  /** Seen api deliveries one worker process sends at once. */
  readonly seenDeliveryConcurrency: number;
  /** How long finished api deliveries and their attempts stay in Postgres, in seconds. */
  readonly seenHistorySeconds: number;
  /** Lets api deliveries reach loopback, private and link-local addresses (tests, closed networks). */
  readonly seenAllowPrivate: boolean;
}

/** The identity fields Seen reads from a token's claims (see SEEN_IDENTITY_CLAIMS). */
export const seenIdentityFields = ["user_id", "uid", "bound_uids", "phone_id", "db_id", "uuid", "device_id"] as const;
export type SeenIdentityField = (typeof seenIdentityFields)[number];

/** The `SameSite` values of the pixel's cookie (see TRACKER_COOKIE_SAMESITE). */
export const cookieSameSites = ["lax", "strict", "none"] as const;
export type CookieSameSite = (typeof cookieSameSites)[number];

/** Thrown when the environment does not describe a valid configuration. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
  }
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Parses the environment into a frozen {@link Config}. Collects every problem
 * before failing so one run shows all of them.
 */
export function parseConfig(env: Env = process.env, cwd: string = process.cwd()): Config {
  const problems: string[] = [];
  const read = (name: ConfigVariable): string | undefined => {
    const value = env[name]?.trim();
    return value === undefined || value === "" ? undefined : value;
  };
  const integer = (name: ConfigVariable, fallback: number, min: number, max: number): number => {
    const raw = read(name);
    if (raw === undefined) return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      problems.push(`${name}: must be an integer from ${min} to ${max}, got "${raw}"`);
      return fallback;
    }
    return Number(raw);
  };
  const url = (name: ConfigVariable, protocols: readonly string[]): string | undefined => {
    const raw = read(name);
    if (raw === undefined) return undefined;
    let parsed: URL;
    try {
      parsed = new URL(raw);
    } catch {
      problems.push(`${name}: not a valid URL`);
      return undefined;
    }
    if (!protocols.includes(parsed.protocol)) {
      problems.push(`${name}: scheme must be ${protocols.join(" or ")}, got "${parsed.protocol}"`);
      return undefined;
    }
    return raw;
  };
  const identifier = (name: ConfigVariable, fallback: string): string => {
    const raw = read(name) ?? fallback;
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(raw)) {
      problems.push(`${name}: must be a plain identifier (letters, digits, _), got "${raw}"`);
      return fallback;
    }
    return raw;
  };

  const origins = (name: ConfigVariable, fallback: string): string[] => {
    const list = (read(name) ?? fallback).split(",").map((origin) => origin.trim()).filter((origin) => origin !== "");
    for (const origin of list) {
      if (origin === "*") continue;
      let parsed: URL | undefined;
      try {
        parsed = new URL(origin);
      } catch {
        parsed = undefined;
      }
      if (parsed === undefined || !["http:", "https:"].includes(parsed.protocol) || parsed.origin !== origin) {
        problems.push(`${name}: "${origin}" is not an origin like https://www.example.com (scheme, host, optional port, no path)`);
      }
    }
    return list;
  };
  const claimMapping = (name: ConfigVariable): Record<SeenIdentityField, string> => {
    // Every field is read from the claim of the same name unless mapped otherwise.
    const mapping = Object.fromEntries(seenIdentityFields.map((field) => [field, field])) as Record<SeenIdentityField, string>;
    for (const entry of (read(name) ?? "").split(",").map((part) => part.trim()).filter((part) => part !== "")) {
      const [field = "", path = "", extra] = entry.split("=").map((part) => part.trim());
      if (!(seenIdentityFields as readonly string[]).includes(field)) {
        problems.push(`${name}: "${field}" is not an identity field (${seenIdentityFields.join(", ")})`);
      } else if (extra !== undefined || !/^[A-Za-z0-9_:-]+(\.[A-Za-z0-9_:-]+)*$/.test(path)) {
        problems.push(`${name}: "${entry}" must be FIELD=CLAIM, the claim a dot path such as user.id`);
      } else {
        mapping[field as SeenIdentityField] = path;
      }
    }
    return mapping;
  };
  const publicKey = (name: ConfigVariable): string | undefined => {
    // Environment files cannot hold line breaks easily, so "\n" stands for one.
    const raw = read(name)?.replaceAll("\\n", "\n");
    if (raw === undefined) return undefined;
    let key: KeyObject;
    try {
      key = createPublicKey(raw);
    } catch {
      problems.push(`${name}: not a PEM public key (-----BEGIN PUBLIC KEY----- …)`);
      return undefined;
    }
    if (publicKeyAlgorithms(key).length === 0) {
      problems.push(`${name}: verifies no JWT algorithm: use RSA (2048 bits or more), EC P-256/P-384/P-521 or Ed25519`);
      return undefined;
    }
    return raw;
  };

  const logLevel = (read("LOG_LEVEL") ?? "info").toLowerCase();
  if (!(logLevels as readonly string[]).includes(logLevel)) {
    problems.push(`LOG_LEVEL: must be one of ${logLevels.join(", ")}, got "${logLevel}"`);
  }
  const accessLogTrackSample = Number(read("ACCESS_LOG_TRACK_SAMPLE") ?? "0.01");
  if (!(accessLogTrackSample >= 0 && accessLogTrackSample <= 1)) {
    problems.push(`ACCESS_LOG_TRACK_SAMPLE: must be a number from 0 to 1, got "${read("ACCESS_LOG_TRACK_SAMPLE")}"`);
  }
  const adminToken = read("FUNNEL_ADMIN_TOKEN");
  if (adminToken !== undefined && adminToken.length < 16) {
    problems.push("FUNNEL_ADMIN_TOKEN: must be at least 16 characters");
  }
  const dataDir = read("FUNNEL_DATA_DIR") ?? "./data";
  const trustedProxies = (read("TRUSTED_PROXIES") ?? "")
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "");
  for (const entry of trustedProxies) {
    const [address = "", bits, extra] = entry.split("/");
    const family = isIP(address);
    const prefix = bits === undefined ? (family === 6 ? 128 : 32) : /^\d+$/.test(bits) ? Number(bits) : -1;
    if (family === 0 || extra !== undefined || prefix < 0 || prefix > (family === 6 ? 128 : 32)) {
      problems.push(`TRUSTED_PROXIES: "${entry}" is not an address or CIDR network (e.g. 10.0.0.0/8, ::1)`);
    }
  }
  const duration = (name: ConfigVariable, fallback: string, minMs: number, maxMs: number): number => {
    const raw = read(name) ?? fallback;
    const ms = parseDuration(raw);
    if (ms === undefined || ms < minMs || ms > maxMs) {
      problems.push(`${name}: must be a duration such as 30d, 12h or 90s, from ${minMs / 1000} s to ${maxMs / 86_400_000} days, got "${raw}"`);
      return parseDuration(fallback) ?? minMs;
    }
    return ms;
  };
  const boolean = (name: ConfigVariable, fallback = false): boolean => {
    const raw = read(name)?.toLowerCase();
    if (raw === undefined) return fallback;
    if (raw === "true" || raw === "1") return true;
    if (raw === "false" || raw === "0") return false;
    problems.push(`${name}: must be true or false, got "${raw}"`);
    return fallback;
  };
  const cookieDomain = read("TRACKER_COOKIE_DOMAIN")?.replace(/^\./, "").toLowerCase();
  // A registrable name of letters, digits, hyphens and dots: anything else would break the Set-Cookie header.
  if (cookieDomain !== undefined && !/^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/.test(cookieDomain)) {
    problems.push(`TRACKER_COOKIE_DOMAIN: "${read("TRACKER_COOKIE_DOMAIN")}" is not a domain name such as example.com`);
  }
  const sameSite = read("TRACKER_COOKIE_SAMESITE")?.toLowerCase();
  if (sameSite !== undefined && !(cookieSameSites as readonly string[]).includes(sameSite)) {
    problems.push(`TRACKER_COOKIE_SAMESITE: must be one of ${cookieSameSites.join(", ")}, got "${sameSite}"`);
  }
  const serviceToken = read("POSTBACK_SERVICE_TOKEN");
  if (serviceToken !== undefined && serviceToken.length < 16) {
    problems.push("POSTBACK_SERVICE_TOKEN: must be at least 16 characters");
  }

  const config: Config = {
    port: integer("PORT", 8080, 0, 65535),
    host: read("HOST") ?? "0.0.0.0",
    metricsPort: integer("METRICS_PORT", 9464, 0, 65535),
    metricsHost: read("METRICS_HOST") ?? "127.0.0.1",
    databaseUrl: url("DATABASE_URL", ["postgres:", "postgresql:"]),
    databasePoolMax: integer("DATABASE_POOL_MAX", 20, 1, 1000),
    embeddedPostgresPort: integer("EMBEDDED_POSTGRES_PORT", 54329, 1, 65535),
    embeddedPostgresRestartAttempts: integer("EMBEDDED_POSTGRES_RESTART_ATTEMPTS", 10, 0, 1_000),
    clickhouseUrl: url("CLICKHOUSE_URL", ["http:", "https:"]),
    clickhouseDatabase: identifier("CLICKHOUSE_DATABASE", "funnel"),
    clickhouseCluster: read("CLICKHOUSE_CLUSTER") === undefined ? undefined : identifier("CLICKHOUSE_CLUSTER", "funnel"),
    dataDir: isAbsolute(dataDir) ? dataDir : resolve(cwd, dataDir),
    adminToken,
    logLevel: logLevel as LogLevel,
    accessLogTrackSample,
    metricsMaxPartnerSeries: integer("METRICS_MAX_PARTNER_SERIES", 100, 1, 100_000),
    shutdownTimeoutMs: integer("SHUTDOWN_TIMEOUT_MS", 10_000, 0, 600_000),
    httpHeadersTimeoutSeconds: integer("HTTP_HEADERS_TIMEOUT_SECONDS", 10, 1, 600),
    httpRequestTimeoutSeconds: integer("HTTP_REQUEST_TIMEOUT_SECONDS", 60, 1, 3_600),
    httpKeepAliveTimeoutSeconds: integer("HTTP_KEEP_ALIVE_TIMEOUT_SECONDS", 65, 1, 3_600),
    httpMaxConnections: integer("HTTP_MAX_CONNECTIONS", 10_000, 1, 1_000_000),
    jobsSchema: identifier("JOBS_SCHEMA", "pgboss"),
    jobsPollSeconds: integer("JOBS_POLL_SECONDS", 10, 1, 3_600),
    jobsSuperviseSeconds: integer("JOBS_SUPERVISE_SECONDS", 30, 1, 3_600),
    jobsMaintenanceSeconds: integer("JOBS_MAINTENANCE_SECONDS", 300, 1, 86_400),
    jobsHeartbeatSeconds: integer("JOBS_HEARTBEAT_SECONDS", 5, 1, 600),
    jobsHeartbeatStaleSeconds: integer("JOBS_HEARTBEAT_STALE_SECONDS", 20, 2, 3_600),
    postgresAnalyzeCheckSeconds: integer("POSTGRES_ANALYZE_CHECK_SECONDS", 5, 0, 3_600),
    trustedProxies,
    trackerCacheRefreshSeconds: integer("TRACKER_CACHE_REFRESH_SECONDS", 30, 1, 86_400),
    trackerCookieDomain: cookieDomain,
    trackerCookieSameSite: sameSite !== undefined && (cookieSameSites as readonly string[]).includes(sameSite) ? (sameSite as CookieSameSite) : undefined,
    downloadRedirectUrl: url("DOWNLOAD_REDIRECT_URL", ["http:", "https:"]),
    attributionWindowMs: duration("ATTRIBUTION_WINDOW", "30d", 60_000, 400 * 86_400_000),
    postbackAllowPrivate: boolean("POSTBACK_ALLOW_PRIVATE"),
    postbackServiceToken: serviceToken,
    postbackRetentionMs: duration("POSTBACK_RETENTION", "90d", 60_000, 3_650 * 86_400_000),
    postbackConcurrency: integer("POSTBACK_CONCURRENCY", 128, 1, 1_000),
    corsAllowedOrigins: origins("CORS_ALLOWED_ORIGINS", "*"),
    authAnonymousOnly: boolean("AUTH_ANONYMOUS_ONLY"),
    authUrl: url("AUTH_URL", ["http:", "https:"]),
    authTimeoutMs: integer("AUTH_TIMEOUT_MS", 500, 10, 60_000),
    authUserIdField: read("AUTH_USER_ID_FIELD") ?? "user_id",
    authJwtUserIdClaim: read("AUTH_JWT_USER_ID_CLAIM") ?? "sub",
    authJwtSecret: read("AUTH_JWT_SECRET"),
    authJwtPublicKey: publicKey("AUTH_JWT_PUBLIC_KEY"),
    authJwtClockToleranceSeconds: integer("AUTH_JWT_CLOCK_TOLERANCE_SECONDS", 30, 0, 600),
    authJwtRequireExp: boolean("AUTH_JWT_REQUIRE_EXP", true),
    authJwtIssuer: read("AUTH_JWT_ISSUER"),
    authJwtAudience: read("AUTH_JWT_AUDIENCE"),
    authCacheTtlSeconds: integer("AUTH_CACHE_TTL_SECONDS", 300, 0, 86_400),
    authNegativeCacheSeconds: integer("AUTH_NEGATIVE_CACHE_SECONDS", 10, 0, 3_600),
    authCacheMaxEntries: integer("AUTH_CACHE_MAX_ENTRIES", 100_000, 0, 10_000_000),
    authRecheckMs: integer("AUTH_RECHECK_MS", 5_000, 0, 600_000),
    ingestMaxEventBytes: integer("INGEST_MAX_EVENT_BYTES", 64 * 1024, 256, 4 * 1024 * 1024),
    ingestMaxBatchBytes: integer("INGEST_MAX_BATCH_BYTES", 1024 * 1024, 1024, 4 * 1024 * 1024),
    ingestMaxBatchEvents: integer("INGEST_MAX_BATCH_EVENTS", 1_000, 1, 100_000),
    ingestDedupDays: integer("INGEST_DEDUP_DAYS", 7, 1, 365),
    pageViewTimeoutSeconds: Math.round(duration("PAGE_VIEW_TIMEOUT", "12h", 1_000, 30 * 86_400_000) / 1_000),
    ingestSweepSeconds: integer("INGEST_SWEEP_SECONDS", 60, 1, 3_600),
    seenDefaultRetentionSeconds: Math.round(duration("SEEN_DEFAULT_RETENTION", "30d", 1_000, 3_650 * 86_400_000) / 1_000),
    seenIdentityClaims: claimMapping("SEEN_IDENTITY_CLAIMS"),
    seenServiceToken: read("SEEN_SERVICE_TOKEN"),
    seenDeliveryConcurrency: integer("SEEN_DELIVERY_CONCURRENCY", 32, 1, 1_000),
    seenHistorySeconds: Math.round(duration("SEEN_DELIVERY_HISTORY", "30d", 1_000, 3_650 * 86_400_000) / 1_000),
    seenAllowPrivate: boolean("SEEN_ALLOW_PRIVATE"),
  };
  if (config.jobsHeartbeatStaleSeconds < 2 * config.jobsHeartbeatSeconds) {
    problems.push("JOBS_HEARTBEAT_STALE_SECONDS: must be at least twice JOBS_HEARTBEAT_SECONDS, so that one late heartbeat does not retry a running job");
  }
  if (config.httpRequestTimeoutSeconds < config.httpHeadersTimeoutSeconds) {
    problems.push("HTTP_REQUEST_TIMEOUT_SECONDS: must be at least HTTP_HEADERS_TIMEOUT_SECONDS (the headers are part of the request)");
  }
  if (config.seenServiceToken !== undefined && config.seenServiceToken.length < 16) {
    problems.push("SEEN_SERVICE_TOKEN: must be at least 16 characters");
  }
  if (config.authJwtSecret !== undefined && config.authJwtSecret.length < 16) {
    problems.push("AUTH_JWT_SECRET: must be at least 16 characters");
  }
  if (config.authAnonymousOnly && (config.authUrl !== undefined || config.authJwtSecret !== undefined || config.authJwtPublicKey !== undefined)) {
    problems.push("AUTH_ANONYMOUS_ONLY: true refuses every token, yet AUTH_URL, AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY is set to verify them; unset one or the other");
  }
  if (config.metricsPort !== 0 && config.metricsPort === config.port) {
    problems.push(`METRICS_PORT: must differ from PORT (${config.port})`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}
