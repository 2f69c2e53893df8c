import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OpsService } from "../../gen/funnel/ops/v1/ops_pb.js";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { startApp, type App } from "../../services/app.js";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "../../services/core/embedded-postgres.js";
import { createLogger } from "../../services/core/logger.js";
import { databaseUrl, ensureDatabase } from "../../services/core/postgres.js";
import { freePort } from "../support/ports.js";
import { ADMIN_TOKEN, eventually, testConfig } from "../support/stores.js";

/** What each of the process's readiness answers says, Postgres-wise. */
interface Answers {
  readonly readyz: { status: number; ready: string; postgres: boolean };
  readonly health: ServingStatus;
  readonly getStatus: { postgres: boolean; backend: string };
  readonly gauge: string | undefined;
}

describe("readiness: /readyz, gRPC health, GetStatus and funnel_postgres_up ask one probe", () => {
  const log = createLogger("silent", false);
  let dir: string;
  let server: EmbeddedPostgres | undefined;
  let app: App;

  const answers = async (): Promise<Answers> => {
    const transport = createConnectTransport({
      baseUrl: app.url,
      httpVersion: "1.1",
      interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${ADMIN_TOKEN}`), next(req))],
    });
    const readyz = await fetch(`${app.url}/readyz`);
    const body = (await readyz.json()) as { status: string; postgres: { healthy: boolean } };
    const status = await createClient(OpsService, transport).getStatus({});
    const metrics = await (await fetch(`${app.metricsUrl}/metrics`)).text();
    return {
      readyz: { status: readyz.status, ready: body.status, postgres: body.postgres.healthy },
      health: (await createClient(Health, transport).check({})).status,
      getStatus: { postgres: status.postgres?.healthy ?? false, backend: status.postgres?.backend ?? "" },
      gauge: /^funnel_postgres_up (\d+)$/m.exec(metrics)?.[1],
    };
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "funnel-readiness-pg-"));
    // Postgres runs as its own user, who must be able to enter the folder.
    await chmod(dir, 0o755);
    server = await startEmbeddedPostgres({ dir, port: await freePort(), log });
    await ensureDatabase(server.url, "funnel");
    app = await startApp({ config: await testConfig({ DATABASE_URL: databaseUrl(server.url, "funnel") }), roles: ["api"], log });
  });
  afterAll(async () => {
    await app?.stop();
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("all say ready while Postgres answers, and all say not ready once it is gone", async () => {
    expect(await answers()).toEqual({
      readyz: { status: 200, ready: "ready", postgres: true },
      health: ServingStatus.SERVING,
      getStatus: { postgres: true, backend: "server" },
      gauge: "1",
    });

    await server?.stop();
    server = undefined;

    // The gRPC health service reuses one probe's answer for its watch interval, so it may lag by that much.
    const down = await eventually(async () => {
      const current = await answers();
      return current.health === ServingStatus.NOT_SERVING ? current : undefined;
    }, 10_000, "the gRPC health service to say NOT_SERVING");
    expect(down).toEqual({
      readyz: { status: 503, ready: "unavailable", postgres: false },
      health: ServingStatus.NOT_SERVING,
      getStatus: { postgres: false, backend: "server" },
      gauge: "0",
    });
  });
});
