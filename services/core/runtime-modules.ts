/**
 * The parts of a Funnel process that are not services of the suite, as
 * modules: health and readiness, gRPC reflection, the console and the
 * metrics server. `startApp` runs them beside the services.
 */
import { consoleRoutes } from "./console.js";
import { registerHealth } from "./health-service.js";
import type { Readiness } from "./health.js";
import { sendJson, type HttpRoute } from "./http-server.js";
import { Gauge, type Registry } from "./metrics.js";
import { startMetricsServer } from "./metrics-server.js";
import { registerReflection } from "./reflection.js";
import type { ServiceModule } from "../module-contract.js";

/** How often a gRPC health Watch probes readiness. */
const HEALTH_WATCH_INTERVAL_MS = 2_000;

/**
 * Registers `funnel_postgres_up`: the readiness probe, taken at each scrape.
 * A process whose Postgres does not answer is alive but unready, which
 * Prometheus's own `up` cannot tell.
 */
function registerReadinessGauge(registry: Registry, readiness: Readiness): void {
  new Gauge({
    name: "funnel_postgres_up",
    help: "1 when Postgres answers the readiness probe (/readyz answers 200), 0 when it does not (/readyz answers 503).",
    registers: [registry],
    async collect(this: Gauge) {
      this.set((await readiness.ready()) ? 1 : 0);
    },
  });
}

/**
 * Liveness and readiness: `GET /healthz`, `GET /readyz`, the gRPC health
 * service (api role) and the `funnel_postgres_up` gauge, all over the one
 * readiness probe. Every role serves the HTTP routes, so a worker-only
 * process is probed like an API process.
 */
export const healthModule: ServiceModule = {
  name: "health",
  everyRole: true,
  async start({ roles, metrics, readiness }) {
    registerReadinessGauge(metrics, readiness);
    const readyz: HttpRoute = async (_req, res) => {
      const report = await readiness.check();
      sendJson(res, report.ready ? 200 : 503, {
        status: report.status,
        migrations: "applied",
        postgres: report.postgres,
        clickhouse: report.clickhouse,
      });
    };
    return {
      routes: new Map<string, HttpRoute>([
        ["/healthz", (_req, res) => sendJson(res, 200, { status: "ok" })],
        ["/readyz", readyz],
      ]),
      ...(roles.includes("api")
        ? { rpc: (router) => registerHealth(router, { ready: () => readiness.ready(), intervalMs: HEALTH_WATCH_INTERVAL_MS }) }
        : {}),
    };
  },
};

/** gRPC server reflection. It describes the services registered before it, so it comes after them. */
export const reflectionModule: ServiceModule = {
  name: "reflection",
  async start() {
    return { rpc: (router) => registerReflection(router) };
  },
};

/** The console: `GET /`, `/console/` and its files (served by api processes, as every module without `everyRole`). */
export const consoleModule: ServiceModule = {
  name: "console",
  async start({ log }) {
    const { exact, prefix } = consoleRoutes(log);
    return { routes: exact, prefixRoutes: prefix };
  },
};

/**
 * The metrics server: `/metrics` on `METRICS_HOST`:`METRICS_PORT`, for every
 * role. Its series name partners and integrations, so it is never on the
 * public port.
 */
export const metricsModule: ServiceModule = {
  name: "metrics",
  everyRole: true,
  async start({ config, metrics, log }) {
    const server = await startMetricsServer({ port: config.metricsPort, host: config.metricsHost, metrics, log });
    return { url: server.url, stop: () => server.close() };
  },
};
