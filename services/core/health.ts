import type pg from "pg";
import type { ClickHouse } from "./clickhouse.js";
import { Gauge, type Registry } from "./metrics.js";

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

/**
 * Registers `funnel_postgres_up`: the probe behind `/readyz`, taken at each
 * scrape. A process whose Postgres does not answer is alive but unready, which
 * Prometheus's own `up` cannot tell.
 */
export function registerReadinessGauge(registry: Registry, pool: pg.Pool, backend: string): void {
  if (registry.getSingleMetric("funnel_postgres_up") !== undefined) return;
  new Gauge({
    name: "funnel_postgres_up",
    help: "1 when Postgres answers the readiness probe (/readyz answers 200), 0 when it does not (/readyz answers 503).",
    registers: [registry],
    async collect(this: Gauge) {
      this.set((await probePostgres(pool, backend)).healthy ? 1 : 0);
    },
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
