import http from "node:http";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TrackerService } from "../../gen/funnel/tracker/v1/tracker_pb.js";
import type { App } from "../../services/app.js";
import { findNginx, startNginx, type RunningNginx } from "../support/nginx.js";
import { ADMIN_TOKEN, eventually, startTestApp } from "../support/stores.js";

const nginx = findNginx();
if (nginx === undefined) {
  console.warn("test/deploy/nginx.test.ts skipped: nginx is not installed (`.ci/run` installs it with apt-get; apt-get install nginx-light)");
}

/** The client's own address: another loopback address than nginx's, so the two can be told apart. */
const CLIENT = "127.0.0.5";
const withToken: Interceptor = (next) => (req) => {
  req.header.set("authorization", `Bearer ${ADMIN_TOKEN}`);
  return next(req);
};

interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

/** A real HTTP/1.1 request from {@link CLIENT}. */
function request(url: string, options: { method?: string; headers?: Record<string, string>; body?: Buffer } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? "GET", headers: options.headers, localAddress: CLIENT, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

describe.skipIf(nginx === undefined)("behind nginx (deploy/nginx)", () => {
  let app: App;
  let proxy: RunningNginx;

  beforeAll(async () => {
    // nginx reaches the API from 127.0.0.1: that address, and only it, is trusted.
    app = await startTestApp({ env: { TRUSTED_PROXIES: "127.0.0.1/32" } });
    proxy = await startNginx(nginx ?? "", new URL(app.url).host);
  });
  afterAll(async () => {
    await proxy?.stop();
    await app?.stop();
  });

  const hits = (trackerId: string, count: number) =>
    eventually(async () => {
      const result = await app.clickhouse.client.query({
        query: `SELECT replaceRegexpOne(toString(ip), '^::ffff:', '') AS ip, url, user_agent
                  FROM ${app.clickhouse.database}.tracker_events WHERE tracker_id = {id:UUID} ORDER BY url`,
        query_params: { id: trackerId },
        format: "JSONEachRow",
      });
      const rows = await result.json<{ ip: string; url: string; user_agent: string }>();
      return rows.length >= count ? rows : undefined;
    }, 10_000, `${count} hits in ClickHouse`);

  it("serves Connect over HTTP/1.1, gRPC over HTTP/2 and gRPC-Web, errors included", async () => {
    const connect = createClient(TrackerService, createConnectTransport({ baseUrl: proxy.httpUrl, httpVersion: "1.1", interceptors: [withToken] }));
    const grpc = createClient(TrackerService, createGrpcTransport({ baseUrl: proxy.grpcUrl, interceptors: [withToken] }));
    const grpcWeb = createClient(TrackerService, createGrpcWebTransport({ baseUrl: proxy.httpUrl, httpVersion: "1.1", interceptors: [withToken] }));

    const created = await grpc.createTracker({ value: "via grpc" });
    const id = created.tracker?.uuid ?? "";
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect((await connect.getTracker({ uuid: id })).tracker?.value).toBe("via grpc");
    expect((await grpcWeb.getTracker({ uuid: id })).tracker?.value).toBe("via grpc");
    // The status travels in gRPC trailers: nginx must pass them through.
    const failure = await grpc.getTracker({ uuid: "not-a-uuid" }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ConnectError);
    expect((failure as ConnectError).code).toBe(Code.InvalidArgument);
    expect((failure as ConnectError).rawMessage).toMatch(/uuid: "not-a-uuid" is not a UUID/);
    // The admin check sees the token nginx forwarded, and its absence.
    const anonymous = createClient(TrackerService, createGrpcTransport({ baseUrl: proxy.grpcUrl }));
    await expect(anonymous.createTracker({ value: "x" })).rejects.toMatchObject({ code: Code.Unauthenticated });
  });

  it("records the client's address and the URL it asked for, whatever forwarding headers the client forged", async () => {
    const admin = createClient(TrackerService, createConnectTransport({ baseUrl: proxy.httpUrl, httpVersion: "1.1", interceptors: [withToken] }));
    const id = (await admin.createTracker({ value: "proxied" })).tracker?.uuid ?? "";

    const plain = await request(`${proxy.httpUrl}/track?id=${id}&n=1`, { headers: { "user-agent": "ProxyTest/1.0" } });
    expect(plain.status).toBe(204);
    expect(plain.headers["set-cookie"]?.[0]).toMatch(/^user_id=[0-9a-f-]{36};/);
    const forged = await request(`${proxy.httpUrl}/track?id=${id}&n=2`, {
      headers: {
        "user-agent": "ProxyTest/1.0",
        "x-forwarded-for": "203.0.113.66",
        "x-real-ip": "203.0.113.67",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "evil.example",
      },
    });
    expect(forged.status).toBe(204);
    // The scheme is the one nginx saw (http): no Secure cookie for a forged https.
    expect(forged.headers["set-cookie"]?.[0]).not.toMatch(/Secure/);
    const named = await request(`${proxy.httpUrl}/track?id=${id}&n=3`, { headers: { host: "pixel.example.test:8443" } });
    expect(named.status).toBe(204);

    const rows = await hits(id, 3);
    const base = `http://127.0.0.1:${proxy.httpPort}/track?id=${id}`;
    expect(rows).toEqual([
      { ip: CLIENT, url: `${base}&n=1`, user_agent: "ProxyTest/1.0" },
      { ip: CLIENT, url: `${base}&n=2`, user_agent: "ProxyTest/1.0" },
      { ip: CLIENT, url: `http://pixel.example.test:8443/track?id=${id}&n=3`, user_agent: "" },
    ]);
  });

  it("redirects / to the console and serves it with its policy and cache headers through the proxy", async () => {
    const root = await request(`${proxy.httpUrl}/`);
    expect(root.status).toBe(302);
    expect(root.headers.location).toBe("/console/");
    const page = await request(`${proxy.httpUrl}/console/`);
    expect(page.status).toBe(200);
    expect(page.headers["content-security-policy"]).toContain("connect-src 'self'");
    expect(page.headers["cache-control"]).toBe("no-cache");
    const script = /src="\.\/(main-[A-Z0-9]{8}\.js)"/.exec(page.body)?.[1] ?? "";
    const bundle = await request(`${proxy.httpUrl}/console/${script}`);
    expect(bundle.status).toBe(200);
    expect(bundle.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(bundle.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    expect((await request(`${proxy.httpUrl}/console/../package.json`)).status).toBe(404);
  });

  it("answers /stats through the proxy", async () => {
    const admin = createClient(TrackerService, createGrpcTransport({ baseUrl: proxy.grpcUrl, interceptors: [withToken] }));
    const id = (await admin.createTracker({ value: "counted" })).tracker?.uuid ?? "";
    for (let i = 0; i < 3; i += 1) expect((await request(`${proxy.httpUrl}/track?id=${id}&i=${i}`)).status).toBe(204);
    await hits(id, 3);
    const today = new Date().toISOString().slice(0, 10);
    const stats = await request(`${proxy.httpUrl}/stats?tracker_id=${id}&from=${today}&to=${today}`);
    expect(stats.status).toBe(200);
    expect(JSON.parse(stats.body)).toEqual({ tracker_id: id, from: today, to: today, count: 3 });
    const bad = await request(`${proxy.httpUrl}/stats?tracker_id=${id}&from=yesterday&to=${today}`);
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body)).toEqual({ error: 'from: "yesterday" is not a day (YYYY-MM-DD) or an RFC 3339 timestamp' });
  });

  it("refuses bodies over 4 MiB at the proxy and keeps per-process metrics off it", async () => {
    const tooBig = await request(`${proxy.httpUrl}/funnel.tracker.v1.TrackerService/CreateTracker`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${ADMIN_TOKEN}` },
      body: Buffer.alloc(4 * 1024 * 1024 + 1, 0x20),
    });
    expect(tooBig.status).toBe(413);
    expect((await request(`${proxy.httpUrl}/metrics`)).status).toBe(404);
    expect((await request(`${app.url}/metrics`)).status).toBe(404);
    expect((await request(`${app.metricsUrl}/metrics`)).status).toBe(200);
  });
});
