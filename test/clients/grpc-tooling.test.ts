import { execFile } from "node:child_process";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { startApp, type App } from "../../services/app.js";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "../../services/core/embedded-postgres.js";
import { createLogger } from "../../services/core/logger.js";
import { databaseUrl, ensureDatabase } from "../../services/core/postgres.js";
import { freePort } from "../support/ports.js";
import { ADMIN_TOKEN, startTestApp, testConfig } from "../support/stores.js";

const run = promisify(execFile);
const buf = new URL("../../node_modules/.bin/buf", import.meta.url).pathname;

/** `buf curl` over gRPC (HTTP/2 without TLS) with no schema: everything it knows comes from reflection. */
async function bufCurl(args: readonly string[]): Promise<string> {
  const { stdout } = await run(buf, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args], { timeout: 30_000 });
  return stdout;
}

describe("gRPC server reflection", () => {
  let app: App;
  beforeAll(async () => {
    app = await startTestApp({ roles: ["api"] });
  });
  afterAll(async () => {
    await app?.stop();
  });

  for (const protocol of ["grpc-v1", "grpc-v1alpha"]) {
    it(`lists every service to buf curl (${protocol})`, async () => {
      const services = (await bufCurl(["--reflect-protocol", protocol, "--list-services", app.url])).trim().split("\n");
      expect(services).toEqual(
        expect.arrayContaining([
          "funnel.ingest.v1.IngestService",
          "funnel.ops.v1.OpsService",
          "funnel.tracker.v1.TrackerService",
          "grpc.health.v1.Health",
          "grpc.reflection.v1.ServerReflection",
          "grpc.reflection.v1alpha.ServerReflection",
        ]),
      );
    });
  }

  it("lets buf curl describe and call a method it has no schema for", async () => {
    const methods = await bufCurl(["--list-methods", app.url]);
    expect(methods).toContain("funnel.ops.v1.OpsService/GetStatus");
    const answer = JSON.parse(
      await bufCurl(["-H", `Authorization: Bearer ${ADMIN_TOKEN}`, "--data", "{}", `${app.url}/funnel.ops.v1.OpsService/GetStatus`]),
    ) as { roles?: string[] };
    expect(answer.roles).toEqual(["api"]);
  });
});

describe("gRPC health", () => {
  const log = createLogger("silent", false);
  let dir: string;
  let server: EmbeddedPostgres;
  let app: App;
  let health: ReturnType<typeof createClient<typeof Health>>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "funnel-health-pg-"));
    // Run as root, Postgres runs as its own user, who must be able to enter the folder.
    await chmod(dir, 0o755);
    server = await startEmbeddedPostgres({ dir, port: await freePort(), log });
    await ensureDatabase(server.url, "funnel");
    app = await startApp({ config: await testConfig({ DATABASE_URL: databaseUrl(server.url, "funnel") }), roles: ["api"] });
    health = createClient(Health, createGrpcTransport({ baseUrl: app.url }));
  });
  afterAll(async () => {
    await app?.stop();
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("answers Check for the server and for each service, not_found for an unknown one, without a token", async () => {
    expect((await health.check({ service: "" })).status).toBe(ServingStatus.SERVING);
    expect((await health.check({ service: "funnel.ingest.v1.IngestService" })).status).toBe(ServingStatus.SERVING);
    const unknown = await health.check({ service: "funnel.nothing.v1.NothingService" }).catch((error: unknown) => error);
    expect(ConnectError.from(unknown).code).toBe(Code.NotFound);
  });

  it("Watch says SERVING, then NOT_SERVING once Postgres stops; buf curl reaches it through reflection", async () => {
    const check = JSON.parse(await bufCurl(["--data", '{"service":""}', `${app.url}/grpc.health.v1.Health/Check`])) as { status?: string };
    expect(check.status).toBe("SERVING");
    const watching = new AbortController();
    const statuses: ServingStatus[] = [];
    try {
      for await (const answer of health.watch({ service: "" }, { signal: watching.signal, timeoutMs: 60_000 })) {
        statuses.push(answer.status);
        if (answer.status === ServingStatus.SERVING) await server.stop();
        if (answer.status === ServingStatus.NOT_SERVING) break;
      }
    } finally {
      watching.abort();
    }
    expect(statuses).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    expect((await health.check({ service: "" })).status).toBe(ServingStatus.NOT_SERVING);
  }, 60_000);
});
