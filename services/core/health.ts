import type pg from "pg";
import type { ClickHouse } from "./clickhouse.js";

export interface StoreProbe {
  readonly backend: string;
  readonly healthy: boolean;
  readonly version: string;
  readonly latencyMs: number;
  readonly error: string;
}

async function probe(backend: string, timeoutMs: number, query: () => Promise<string>): Promise<StoreProbe> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    const version = await Promise.race([
      query(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return { backend, healthy: true, version, latencyMs: performance.now() - started, error: "" };
  } catch (error) {
    return { backend, healthy: false, version: "", latencyMs: performance.now() - started, error: (error as Error).message };
  } finally {
    clearTimeout(timer);
  }
}

/** Asks Postgres for its version. */
export function probePostgres(pool: pg.Pool, backend: string, timeoutMs = 2_000): Promise<StoreProbe> {
  return probe(backend, timeoutMs, async () => {
    const { rows } = await pool.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    return rows[0]?.v ?? "";
  });
}

/** Asks ClickHouse for its version. */
export function probeClickHouse(clickhouse: ClickHouse, timeoutMs = 2_000): Promise<StoreProbe> {
  return probe(clickhouse.backend, timeoutMs, async () => {
    const result = await clickhouse.client.query({ query: "SELECT version() AS v", format: "JSONEachRow" });
    const rows = await result.json<{ v: string }>();
    return rows[0]?.v ?? "";
  });
}

/** What `/readyz` answers with: each store's probe and the verdict. */
export interface ReadinessReport {
  /** Postgres answers: the process can take traffic. */
  readonly ready: boolean;
  /** `ready`, `degraded` (ready, but ClickHouse does not answer) or `unavailable`. */
  readonly status: "ready" | "degraded" | "unavailable";
  readonly postgres: StoreProbe;
  readonly clickhouse: StoreProbe;
}

/**
 * The one readiness probe of a process. `/readyz`, the gRPC health service,
 * `OpsService.GetStatus` and the `funnel_postgres_up` gauge all ask it, so
 * they cannot disagree on what ready means: Postgres answers. ClickHouse is
 * reported but not required, since analytics rows wait in Postgres until it
 * is back.
 */
export interface Readiness {
  /** Probes Postgres alone: whether the process is ready. */
  ready(): Promise<boolean>;
  /** Probes both stores. */
  check(): Promise<ReadinessReport>;
}

/** The readiness probe over the process's stores. */
export function createReadiness(stores: { readonly pool: pg.Pool; readonly postgresBackend: string; readonly clickhouse: ClickHouse }): Readiness {
  const postgres = (): Promise<StoreProbe> => probePostgres(stores.pool, stores.postgresBackend);
  return {
    async ready() {
      return (await postgres()).healthy;
    },
    async check() {
      const [pg, ch] = await Promise.all([postgres(), probeClickHouse(stores.clickhouse)]);
      return { ready: pg.healthy, status: pg.healthy ? (ch.healthy ? "ready" : "degraded") : "unavailable", postgres: pg, clickhouse: ch };
    },
  };
}
