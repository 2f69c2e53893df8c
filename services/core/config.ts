import { isIP } from "node:net";
import { isAbsolute, resolve } from "node:path";

/** Log levels accepted by `LOG_LEVEL`, as pino names them. */
const logLevels = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof logLevels)[number];

/**
 * Every environment variable the server reads, in the order of the README's
 * configuration table. `parseConfig` can read no other (its reader takes only
 * these names), and the tests hold this list, the README table and
 * docker-compose.yml to each other.
 */
export const configVariables = [
  "PORT",
  "HOST",
  "DATABASE_URL",
  "DATABASE_POOL_MAX",
  "EMBEDDED_POSTGRES_PORT",
  "CLICKHOUSE_URL",
  "CLICKHOUSE_DATABASE",
  "FUNNEL_DATA_DIR",
  "FUNNEL_ADMIN_TOKEN",
  "LOG_LEVEL",
  "SHUTDOWN_TIMEOUT_MS",
  "JOBS_SCHEMA",
  "JOBS_POLL_SECONDS",
  "JOBS_SUPERVISE_SECONDS",
  "JOBS_MAINTENANCE_SECONDS",
  "TRUSTED_PROXIES",
  "TRACKER_CACHE_REFRESH_SECONDS",
] as const;
export type ConfigVariable = (typeof configVariables)[number];

/**
 * The whole runtime configuration, parsed once from the environment.
 * Every variable is documented in the README's configuration table.
 */
export interface Config {
  /** TCP port of the API server (HTTP/1.1 and HTTP/2 cleartext on the same port). */
  readonly port: number;
  /** Address the API server binds to. */
  readonly host: string;
  /** Postgres server URL; unset means an embedded Postgres in `dataDir/postgres`. */
  readonly databaseUrl: string | undefined;
  /** Size of the application's Postgres pool. */
  readonly databasePoolMax: number;
  /** Port of the embedded Postgres (only used when `databaseUrl` is unset). */
  readonly embeddedPostgresPort: number;
  /** ClickHouse server URL; unset means embedded chDB in `dataDir/clickhouse`. */
  readonly clickhouseUrl: string | undefined;
  /** ClickHouse database holding Funnel's tables. */
  readonly clickhouseDatabase: string;
  /** Folder for embedded stores and the generated dev admin token. */
  readonly dataDir: string;
  /** Token required by admin RPCs; unset in embedded mode means a generated one. */
  readonly adminToken: string | undefined;
  readonly logLevel: LogLevel;
  /** How long a graceful shutdown may take before it is forced, in milliseconds. */
  readonly shutdownTimeoutMs: number;
  /** Postgres schema used by pg-boss. */
  readonly jobsSchema: string;
  /** Fallback polling of job workers, in seconds; NOTIFY wakes them first. */
  readonly jobsPollSeconds: number;
  /** How often expired (lost) jobs are detected and queue stats refreshed, in seconds. */
  readonly jobsSuperviseSeconds: number;
  /** How often retention cleanup runs, in seconds. */
  readonly jobsMaintenanceSeconds: number;
  /**
   * Networks (CIDR, or single addresses) of the reverse proxies whose
   * `X-Forwarded-*` / `X-Real-IP` headers are believed. Empty: none.
   */
  readonly trustedProxies: readonly string[];
  /** Longest time a changed tracker value may be served stale, in seconds (full cache refresh). */
  readonly trackerCacheRefreshSeconds: number;
}

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

  const logLevel = (read("LOG_LEVEL") ?? "info").toLowerCase();
  if (!(logLevels as readonly string[]).includes(logLevel)) {
    problems.push(`LOG_LEVEL: must be one of ${logLevels.join(", ")}, got "${logLevel}"`);
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

  const config: Config = {
    port: integer("PORT", 8080, 0, 65535),
    host: read("HOST") ?? "0.0.0.0",
    databaseUrl: url("DATABASE_URL", ["postgres:", "postgresql:"]),
    databasePoolMax: integer("DATABASE_POOL_MAX", 20, 1, 1000),
    embeddedPostgresPort: integer("EMBEDDED_POSTGRES_PORT", 54329, 1, 65535),
    clickhouseUrl: url("CLICKHOUSE_URL", ["http:", "https:"]),
    clickhouseDatabase: identifier("CLICKHOUSE_DATABASE", "funnel"),
    dataDir: isAbsolute(dataDir) ? dataDir : resolve(cwd, dataDir),
    adminToken,
    logLevel: logLevel as LogLevel,
    shutdownTimeoutMs: integer("SHUTDOWN_TIMEOUT_MS", 10_000, 0, 600_000),
    jobsSchema: identifier("JOBS_SCHEMA", "pgboss"),
    jobsPollSeconds: integer("JOBS_POLL_SECONDS", 10, 1, 3_600),
    jobsSuperviseSeconds: integer("JOBS_SUPERVISE_SECONDS", 30, 1, 3_600),
    jobsMaintenanceSeconds: integer("JOBS_MAINTENANCE_SECONDS", 300, 1, 86_400),
    trustedProxies,
    trackerCacheRefreshSeconds: integer("TRACKER_CACHE_REFRESH_SECONDS", 30, 1, 86_400),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}
