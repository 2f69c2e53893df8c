import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { createClient, type ClickHouseClient } from "@clickhouse/client";
import type { Config } from "./config.js";

export type { ClickHouseClient } from "@clickhouse/client";

/** The application's ClickHouse, wherever it runs. */
export interface ClickHouse {
  readonly client: ClickHouseClient;
  /**
   * Database holding Funnel's tables. SQL names tables as `${database}.name`
   * because the embedded engine has no per-connection default database.
   */
  readonly database: string;
  readonly backend: "embedded" | "server";
  /** Cluster the schema is created on (replicated tables), or undefined for one server. */
  readonly cluster: string | undefined;
  close(): Promise<void>;
}

export interface ClickHouseTarget {
  readonly url: string | undefined;
  readonly database: string;
  /** Folder of the embedded engine when `url` is unset. */
  readonly embeddedPath: string;
  /** Cluster (`<remote_servers>` name) to create the schema on; server only. */
  readonly cluster?: string | undefined;
}

/** A time as ClickHouse's DateTime64(3) reads it in JSONEachRow and query parameters: `YYYY-MM-DD hh:mm:ss.sss`, UTC. */
export const clickhouseTime = (at: Date): string => at.toISOString().replace("T", " ").replace("Z", "");

/** Connects to a ClickHouse server by URL, or opens the embedded chDB engine. */
export async function openClickHouseTarget(target: ClickHouseTarget): Promise<ClickHouse> {
  let client: ClickHouseClient;
  let backend: ClickHouse["backend"];
  const cluster = target.url === undefined ? undefined : target.cluster;
  if (target.url !== undefined) {
    client = createClient({
      url: target.url,
      request_timeout: 30_000,
      clickhouse_settings: { async_insert: 0, wait_end_of_query: 1 },
    });
    backend = "server";
  } else {
    await mkdir(target.embeddedPath, { recursive: true });
    // The package is optional: production installs reach ClickHouse by URL.
    const { createChdbConnection } = await import("chdb/connection").catch((error: unknown) => {
      throw new Error("embedded ClickHouse is not installed (the optional chdb package); set CLICKHOUSE_URL", { cause: error });
    });
    // chdb is built against its own copy of @clickhouse/client-common: same shapes, distinct types.
    const connection = createChdbConnection({ path: target.embeddedPath }) as unknown as NonNullable<
      Parameters<typeof createClient>[0]
    >["connection"];
    client = createClient({ connection });
    backend = "embedded";
  }
  try {
    await client.command({ query: forCluster(`CREATE DATABASE IF NOT EXISTS ${target.database}`, cluster) });
  } catch (error) {
    await client.close();
    throw error;
  }
  return { client, database: target.database, backend, cluster, close: () => client.close() };
}

/** Opens the ClickHouse described by the configuration. */
export function openClickHouse(config: Config): Promise<ClickHouse> {
  return openClickHouseTarget({
    url: config.clickhouseUrl,
    database: config.clickhouseDatabase,
    embeddedPath: join(config.dataDir, "clickhouse"),
    cluster: config.clickhouseCluster,
  });
}

/**
 * Rewrites a schema statement for a cluster of replicas: DDL runs
 * `ON CLUSTER` on every node, and every `…MergeTree` engine becomes its
 * `Replicated…MergeTree` (default replication path and replica macros of
 * the servers), so each replica holds all rows and deduplicates a retried
 * insert (`insert_deduplication_token`) across replicas. Without a cluster
 * the statement is left as it is. Migrations are written for one server and
 * pass through this on the way to a cluster.
 */
export function forCluster(statement: string, cluster: string | undefined): string {
  if (cluster === undefined) return statement;
  return statement
    .replace(
      /^(\s*(?:CREATE|ALTER|DROP|RENAME|TRUNCATE)\s+(?:TABLE|DATABASE|VIEW|MATERIALIZED\s+VIEW)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?[\w.`"]+)/i,
      `$1 ON CLUSTER ${cluster}`,
    )
    .replace(/\bENGINE\s*=\s*(Replacing|Summing|Aggregating|Collapsing|VersionedCollapsing)?MergeTree\b(\s*\(\s*\))?/gi, (_match, kind: string | undefined) => `ENGINE = Replicated${kind ?? ""}MergeTree`);
}
