import { startApp, type Role } from "./app.js";
import { ConfigError, configDeprecations, parseConfig } from "./core/config.js";
import { loadConsole } from "./core/console.js";
import { DEVELOPMENT_SECRET_FILE, tokenVerificationConfigured } from "./core/identity/index.js";
import { createLogger } from "./core/logger.js";
import { onShutdownSignal } from "./core/signals.js";

const usage = `usage: funnel-server [all|api|worker|build-console]

  all            every API and worker in one process (default; the embedded mode)
  api            the API server only (Connect, gRPC, gRPC-Web and plain HTTP on PORT)
  worker         job and analytics workers only
  build-console  build the console into node_modules/.cache/funnel-console and exit
                 (the API otherwise builds it on the first request to /console/)`;

const roleSets: Record<string, readonly Role[]> = {
  all: ["api", "worker"],
  api: ["api"],
  worker: ["worker"],
};

async function main(): Promise<void> {
  const arg = process.argv[2] ?? "all";
  if (arg === "build-console") {
    const files = await loadConsole(createLogger("info"));
    console.error(`console built: ${[...files.keys()].join(", ")}`);
    return;
  }
  const roles = roleSets[arg];
  if (arg === "--help" || arg === "-h" || roles === undefined) {
    console.error(usage);
    process.exit(arg === "--help" || arg === "-h" ? 0 : 2);
  }
  let config;
  try {
    config = parseConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`funnel-server: ${error.message}`);
      process.exit(2);
    }
    throw error;
  }
  const log = createLogger(config.logLevel);
  for (const notice of configDeprecations()) log.warn(notice);
  const app = await startApp({ config, roles, log });
  onShutdownSignal(log, config.shutdownTimeoutMs + 5_000, () => app.stop());
  const lines = [`Funnel is running (${roles.join(" + ")}): Postgres ${app.postgres.backend}, ClickHouse ${app.clickhouse.backend}`];
  if (roles.includes("api")) {
    lines.push(
      `  console: ${app.url}/console/`,
      `  API (Connect, gRPC, gRPC-Web): ${app.url}`,
      `  pixel:   ${app.url}/track?id=<tracker uuid>   stats: ${app.url}/stats?tracker_id=<uuid>&from=<day>&to=<day>`,
    );
  }
  lines.push(`  health:  ${app.url}/healthz   readiness: ${app.url}/readyz   metrics: ${app.metricsUrl}/metrics`);
  if (config.adminToken === undefined) lines.push(`  admin token: ${config.dataDir}/admin-token (used by \`npx funnel\`)`);
  if (config.databaseUrl === undefined && !tokenVerificationConfigured(config)) {
    lines.push(`  user tokens: ${config.dataDir}/${DEVELOPMENT_SECRET_FILE} (\`npx funnel tokens mint --user-id U\`)`);
  }
  log.info({ url: app.url, metricsUrl: app.metricsUrl, roles }, lines.join("\n"));
  if (!process.stdout.isTTY) process.stderr.write(`${lines.join("\n")}\n`);
}

main().catch((error: unknown) => {
  console.error(`funnel-server: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
