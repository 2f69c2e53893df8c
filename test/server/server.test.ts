import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OpsService } from "../../gen/funnel/ops/v1/ops_pb.js";
import type { App } from "../../services/app.js";
import { ADMIN_TOKEN, startTestApp } from "../support/stores.js";

const withToken = (token: string): Interceptor[] => [
  (next) => (req) => {
    if (token !== "") req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  },
];

describe("API server", () => {
  let app: App;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(async () => {
    await app.stop();
  });

  it("answers /healthz and /readyz with both stores", async () => {
    expect((await fetch(`${app.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${app.url}/readyz`);
    expect(ready.status).toBe(200);
    const body = (await ready.json()) as { status: string; postgres: { healthy: boolean }; clickhouse: { healthy: boolean } };
    expect(body.status).toBe("ready");
    expect(body.postgres.healthy).toBe(true);
    expect(body.clickhouse.healthy).toBe(true);
  });

  it("serves Prometheus metrics on their own port, RPC counters included, and not on the API port", async () => {
    const client = createClient(OpsService, createConnectTransport({ baseUrl: app.url, httpVersion: "1.1", interceptors: withToken(ADMIN_TOKEN) }));
    await client.getStatus({});
    expect(new URL(app.metricsUrl).port).not.toBe(new URL(app.url).port);
    const res = await fetch(`${app.metricsUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/text\/plain/);
    const text = await res.text();
    expect(text).toMatch(/funnel_rpc_requests_total\{method="funnel.ops.v1.OpsService\/GetStatus",code="ok"\} \d+/);
    expect(text).toMatch(/funnel_process_resident_memory_bytes/);
    // Series name partners and integrations: the public port does not list them.
    const api = await fetch(`${app.url}/metrics`);
    expect(api.status).toBe(404);
    expect(await api.text()).not.toContain("funnel_");
    // The metrics port serves the registry and nothing else.
    expect((await fetch(`${app.metricsUrl}/healthz`)).status).toBe(404);
    expect((await fetch(`${app.metricsUrl}/funnel.ops.v1.OpsService/GetStatus`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })).status).toBe(404);
  });

  it("answers 404 with JSON for an unknown path", async () => {
    const res = await fetch(`${app.url}/nope`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: "no route for /nope" });
  });

  const transports: [string, (token: string) => Transport][] = [
    ["Connect over HTTP/1.1", (token) => createConnectTransport({ baseUrl: app.url, httpVersion: "1.1", interceptors: withToken(token) })],
    ["Connect over HTTP/2", (token) => createConnectTransport({ baseUrl: app.url, httpVersion: "2", interceptors: withToken(token) })],
    ["gRPC over HTTP/2 cleartext", (token) => createGrpcTransport({ baseUrl: app.url, interceptors: withToken(token) })],
    ["gRPC-Web over HTTP/1.1", (token) => createGrpcWebTransport({ baseUrl: app.url, httpVersion: "1.1", interceptors: withToken(token) })],
  ];

  for (const [name, transport] of transports) {
    it(`GetStatus over ${name} on the one port`, async () => {
      const status = await createClient(OpsService, transport(ADMIN_TOKEN)).getStatus({});
      expect(status.postgres?.healthy).toBe(true);
      expect(status.postgres?.version).toMatch(/^\d+/);
      expect(status.clickhouse?.healthy).toBe(true);
      expect(status.clickhouse?.backend).toBe(app.clickhouse.backend);
      expect(status.roles).toEqual(["api", "worker"]);
    });

    it(`rejects a missing or wrong admin token over ${name}`, async () => {
      const wrong = createClient(OpsService, transport("not-the-admin-token-at-all"));
      await expect(wrong.getStatus({})).rejects.toMatchObject({ code: Code.Unauthenticated });
      const none = createClient(OpsService, transport(""));
      const error = await none.getStatus({}).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConnectError);
      expect((error as ConnectError).code).toBe(Code.Unauthenticated);
    });
  }
});

describe("worker-only process", () => {
  let app: App;
  beforeAll(async () => {
    app = await startTestApp({ roles: ["worker"] });
  });
  afterAll(async () => {
    await app.stop();
  });

  it("serves health and readiness, metrics on their own port, and nothing of the API", async () => {
    expect((await fetch(`${app.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${app.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as { status: string }).status).toBe("ready");
    const metrics = await (await fetch(`${app.metricsUrl}/metrics`)).text();
    expect(metrics).toMatch(/^funnel_analytics_backlog_rows \d+$/m);
    expect((await fetch(`${app.url}/metrics`)).status).toBe(404);
    expect((await fetch(`${app.url}/track?id=00000000-0000-4000-8000-000000000000`)).status).toBe(404);
    for (const path of ["/", "/console/"]) expect((await fetch(`${app.url}${path}`, { redirect: "manual" })).status, path).toBe(404);
    const ops = createClient(OpsService, createConnectTransport({ baseUrl: app.url, httpVersion: "1.1", interceptors: withToken(ADMIN_TOKEN) }));
    await expect(ops.getStatus({})).rejects.toThrow(/unimplemented/);
  });
});
