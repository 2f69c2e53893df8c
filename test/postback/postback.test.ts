import http from "node:http";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeliveryStatus } from "../../gen/funnel/postback/v1/delivery_pb.js";
import { HttpMethod } from "../../gen/funnel/postback/v1/partner_pb.js";
import { EventOutcome } from "../../gen/funnel/postback/v1/postback_pb.js";
import type { App } from "../../services/app.js";
import { startPartnerServer, type PartnerServer } from "../support/partner-server.js";
import { at, postbackClients, seedTemplate, testPartner, type PostbackClients } from "../support/postback-clients.js";
import { deliveriesSettled, eventually, startTestApp } from "../support/stores.js";
import { deliverQueue as postbackDeliverQueue } from "../../services/postback/queue.js";

const APK = "https://cdn.example.com/app.apk";

describe("postback funnel end to end", () => {
  let app: App;
  let partner: PartnerServer;
  let api: PostbackClients;

  beforeAll(async () => {
    partner = await startPartnerServer();
    app = await startTestApp({ env: { POSTBACK_ALLOW_PRIVATE: "true", DOWNLOAD_REDIRECT_URL: APK, JOBS_POLL_SECONDS: "1", JOBS_MAINTENANCE_SECONDS: "1", TRUSTED_PROXIES: "127.0.0.2" } });
    api = postbackClients(app.url);
    await api.partners.createPartner({ partner: testPartner("666321", seedTemplate(partner.url)) });
  });
  afterAll(async () => {
    await app?.stop();
    await partner?.close();
  });

  const count = async (sql: string, values: unknown[] = []) => (await app.pool.query<{ n: number }>(sql, values)).rows[0]?.n ?? -1;

  it("sends download, install and authorization with the seed's template filled in exactly", async () => {
    const stag = "666321_693fe967c1859daf6c30bfa2";
    const res = await fetch(`${app.url}/download?stag=${stag}&clickID=ext-42&sub=a%20b`, { redirect: "manual" });
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe(APK);

    const install = await api.events.recordInstall({ stag, deviceId: "dev-1", occurredAt: at(1_700_000_000) });
    expect(install).toMatchObject({ outcome: EventOutcome.QUEUED, attributed: true });
    const auth = await api.events.recordAuthorization({ stag, userId: "u-7", occurredAt: at(1_700_000_100) });
    expect(auth).toMatchObject({ outcome: EventOutcome.QUEUED, attributed: true });

    const received = await eventually(async () => (partner.received("/postback/666321/").length >= 3 ? partner.received("/postback/666321/") : undefined), 10_000, "three postbacks");
    const urls = received.map((req) => req.url);
    expect(urls).toContain("/postback/666321/?clickID=693fe967c1859daf6c30bfa2&externalClickID=ext-42&userID=&ts=1700000000");
    expect(urls).toContain("/postback/666321/?clickID=693fe967c1859daf6c30bfa2&externalClickID=ext-42&userID=u-7&ts=1700000100");
    expect(urls.filter((url) => url.includes("userID=&ts=") && !url.endsWith("ts=1700000000"))).toHaveLength(1);
    for (const req of received) {
      expect(req.method).toBe("GET");
      expect(req.headers["user-agent"]).toMatch(/^Funnel-Postback\//);
    }

    const delivered = await eventually(async () => {
      const { deliveries } = await api.deliveries.listDeliveries({ filter: { stag } });
      return deliveries.length === 3 && deliveries.every((d) => d.status === DeliveryStatus.DELIVERED) ? deliveries : undefined;
    }, 5_000, "three delivered postbacks");
    const { delivery } = await api.deliveries.getDelivery({ id: delivered[0]!.id });
    expect(delivery?.attemptLog).toHaveLength(1);
    expect(delivery?.attemptLog[0]).toMatchObject({ attempt: 1, httpStatus: 200, outcome: "delivered", error: "" });
    expect(new TextDecoder().decode(delivery?.attemptLog[0]?.responseBody)).toBe("ok");
  });

  it("URL-encodes values in URLs and JSON-escapes them in JSON bodies", async () => {
    await api.partners.createPartner({
      partner: testPartner("enc", `${partner.url}/enc?click={stag_clickID}&p={params.q}`, {
        download: { enabled: false },
        install: {
          enabled: true,
          method: HttpMethod.POST,
          urlTemplate: `${partner.url}/enc-post/{delivery_id}`,
          bodyTemplate: '{"click":"{stag_clickID}","q":"{params.q}","ts":{timestamp_ms},"event":"{event}"}',
          headers: { "X-Api-Key": "k1" },
        },
      }),
    });
    const stag = "enc_c-1";
    await api.events.recordDownload({ stag, params: { q: 'a "quoted" & more/?' } });
    const { deliveryId } = await api.events.recordInstall({ stag, occurredAt: at(1_700_000_000) });
    const [req] = await eventually(async () => (partner.received("/enc-post/").length === 1 ? partner.received("/enc-post/") : undefined));
    expect(req!.url).toBe(`/enc-post/${deliveryId}`);
    expect(req!.method).toBe("POST");
    expect(req!.headers["content-type"]).toBe("application/json");
    expect(req!.headers["x-api-key"]).toBe("k1");
    expect(JSON.parse(req!.body)).toEqual({ click: "c-1", q: 'a "quoted" & more/?', ts: 1_700_000_000_000, event: "install" });

    await api.events.recordAuthorization({ stag, userId: "u" });
    const [get] = await eventually(async () => (partner.received("/enc?").length === 1 ? partner.received("/enc?") : undefined));
    expect(get!.url).toBe("/enc?click=c-1&p=a%20%22quoted%22%20%26%20more%2F%3F");
  });

  it("sends install and authorization once per click, even under 50 concurrent duplicates", async () => {
    const stag = "666321_concurrent-1";
    const results = await Promise.all(Array.from({ length: 50 }, () => api.events.recordInstall({ stag })));
    expect(results.filter((r) => r.outcome === EventOutcome.QUEUED)).toHaveLength(1);
    expect(results.filter((r) => r.outcome === EventOutcome.DUPLICATE)).toHaveLength(49);
    const auths = await Promise.all(Array.from({ length: 50 }, (_, i) => api.events.recordAuthorization({ stag, userId: `u${i}` })));
    expect(auths.filter((r) => r.outcome === EventOutcome.QUEUED)).toHaveLength(1);
    await eventually(async () => (partner.received("/postback/666321/?clickID=concurrent-1").length === 2 ? true : undefined));
    // Unattributed (no download of this stag): sent with empty params, and said so.
    expect(results.find((r) => r.outcome === EventOutcome.QUEUED)?.attributed).toBe(false);
    const { rows } = await app.pool.query<{ id: string }>("SELECT id::text FROM postbacks WHERE stag = $1", [stag]);
    expect(rows).toHaveLength(2);
    await deliveriesSettled(app, postbackDeliverQueue, rows.map((row) => row.id));
    expect(partner.received("/postback/666321/?clickID=concurrent-1")).toHaveLength(2);
  });

  it("records events of an unknown partner without a postback, and counts them", async () => {
    const res = await api.events.recordInstall({ stag: "nobody_click-9" });
    expect(res).toMatchObject({ outcome: EventOutcome.UNKNOWN_PARTNER, deliveryId: "" });
    const download = await fetch(`${app.url}/download?stag=nobody_click-9&a=1`, { redirect: "manual" });
    expect(download.status).toBe(302);
    expect(await count("SELECT count(*)::int AS n FROM postbacks WHERE partner_id = 'nobody'")).toBe(0);
    const metrics = await (await fetch(`${app.metricsUrl}/metrics`)).text();
    expect(metrics).toMatch(/funnel_postback_events_total\{event="install",outcome="unknown_partner"\} 1/);
    expect(metrics).toMatch(/funnel_postback_events_total\{event="download",outcome="unknown_partner"\} 1/);
    await eventually(async () => {
      const result = await app.clickhouse.client.query({
        query: `SELECT event, outcome FROM ${app.clickhouse.database}.postback_events WHERE partner_id = 'nobody' ORDER BY event`,
        format: "JSONEachRow",
      });
      const rows = await result.json<{ event: string; outcome: string }>();
      return rows.length === 2 ? rows : undefined;
    }, 10_000, "the events in ClickHouse");
  });

  it("rejects bad stags with invalid_argument and stores nothing", async () => {
    const before = await count("SELECT count(*)::int AS n FROM postback_ledger");
    for (const [stag, reason] of [
      ["", "required"],
      ["nounderscore", 'has no "_"'],
      ["_click", "empty partner id"],
      ["partner_", "empty click id"],
      [`p_${"x".repeat(300)}`, "longer than 200"],
      ["p_cli\u0001ck", "printable ASCII"],
      ["p_with space", "printable ASCII"],
    ] as const) {
      const error = await api.events.recordInstall({ stag }).then(() => undefined, (e: unknown) => ConnectError.from(e));
      expect(error?.code, stag).toBe(Code.InvalidArgument);
      expect(error?.rawMessage).toContain("stag: ");
      expect(error?.rawMessage).toContain(reason);
    }
    const missingUser = await api.events.recordAuthorization({ stag: "666321_x" }).catch((e: unknown) => ConnectError.from(e));
    expect(missingUser).toMatchObject({ code: Code.InvalidArgument, rawMessage: "user_id: required" });
    const res = await fetch(`${app.url}/download?stag=bad`);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: 'stag: "bad" has no "_" between partner id and click id' });
    expect(await count("SELECT count(*)::int AS n FROM postback_ledger")).toBe(before);
    expect(await count("SELECT count(*)::int AS n FROM postback_downloads WHERE stag = 'bad'")).toBe(0);
  });

  it("requires a token for events and the admin token for partners", async () => {
    const anonymous = postbackClients(app.url, "");
    const events = await Promise.all(
      [
        anonymous.events.recordDownload({ stag: "666321_t" }),
        anonymous.events.recordInstall({ stag: "666321_t" }),
        anonymous.events.recordAuthorization({ stag: "666321_t", userId: "u-1" }),
      ].map((call) => call.catch((e: unknown) => ConnectError.from(e))),
    );
    for (const refused of events) expect(refused).toMatchObject({ code: Code.Unauthenticated });
    const partners = await anonymous.partners.listPartners({}).catch((e: unknown) => ConnectError.from(e));
    expect(partners).toMatchObject({ code: Code.Unauthenticated });
    // Event calls go through the same interceptors as every RPC: counted by method and code.
    const metrics = await (await fetch(`${app.metricsUrl}/metrics`)).text();
    expect(metrics).toMatch(/^funnel_rpc_requests_total\{method="funnel.postback.v1.PostbackService\/RecordInstall",code="unauthenticated"\} [1-9]/m);
  });

  it("takes params from a download only within the attribution window, and cleans expired ones up", async () => {
    const stag = "666321_old-click";
    const longAgo = Math.floor(Date.now() / 1000) - 31 * 86_400;
    await api.events.recordDownload({ stag, params: { clickID: "stale" }, occurredAt: at(longAgo) });
    const install = await api.events.recordInstall({ stag });
    expect(install).toMatchObject({ outcome: EventOutcome.QUEUED, attributed: false });
    const [req] = await eventually(async () => {
      const found = partner.received("/postback/666321/?clickID=old-click");
      return found.length === 2 ? found.filter((r) => !r.url.includes("stale")) : undefined;
    });
    expect(req?.url).toContain("externalClickID=&");
    const metrics = await (await fetch(`${app.metricsUrl}/metrics`)).text();
    expect(metrics).toMatch(/funnel_postback_unattributed_total\{event="install",partner="666321"\} [1-9]/);
    // The worker's clean-up deletes the expired download; a fresh one stays.
    await eventually(async () => ((await count("SELECT count(*)::int AS n FROM postback_downloads WHERE stag = $1", [stag])) === 0 ? true : undefined), 5_000, "the expired download to be deleted");
    expect(await count("SELECT count(*)::int AS n FROM postback_downloads WHERE stag = '666321_693fe967c1859daf6c30bfa2'")).toBe(1);
  });

  it("redirects to the partner's own download URL when it has one; HEAD records nothing", async () => {
    await api.partners.createPartner({ partner: testPartner("own", `${partner.url}/own`, { downloadRedirectUrl: "https://partner.example/apk", download: { enabled: false } }) });
    const own = await fetch(`${app.url}/download?stag=own_1`, { redirect: "manual" });
    expect(own.headers.get("location")).toBe("https://partner.example/apk");
    const head = await fetch(`${app.url}/download?stag=own_2`, { method: "HEAD", redirect: "manual" });
    expect(head.status).toBe(302);
    expect(head.headers.get("location")).toBe("https://partner.example/apk");
    expect(await count("SELECT count(*)::int AS n FROM postback_downloads WHERE stag = 'own_2'")).toBe(0);
  });

  it("takes the download's client address and URL from forwarding headers only when a trusted proxy sent them", async () => {
    const download = (path: string, from: string, headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => {
        const req = http.request(new URL(path, app.url), { localAddress: from, headers, agent: false }, (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        });
        req.on("error", reject);
        req.end();
      });
    const forged = { "x-forwarded-for": "198.51.100.9", "x-real-ip": "198.51.100.10", "x-forwarded-proto": "https", "x-forwarded-host": "evil.example" };
    expect(await download("/download?stag=666321_fwd-untrusted", "127.0.0.1", forged)).toBe(302);
    expect(await download("/download?stag=666321_fwd-trusted", "127.0.0.2", { ...forged, "x-forwarded-for": "203.0.113.7", "x-forwarded-host": "go.example.com" })).toBe(302);
    await app.streamer?.drain();
    const result = await app.clickhouse.client.query({
      query: `SELECT stag, ip, url FROM ${app.clickhouse.database}.postback_events WHERE stag IN ('666321_fwd-untrusted', '666321_fwd-trusted') ORDER BY stag`,
      format: "JSONEachRow",
    });
    const port = new URL(app.url).port;
    expect(await result.json()).toEqual([
      { stag: "666321_fwd-trusted", ip: "203.0.113.7", url: "https://go.example.com/download?stag=666321_fwd-trusted" },
      { stag: "666321_fwd-untrusted", ip: "127.0.0.1", url: `http://127.0.0.1:${port}/download?stag=666321_fwd-untrusted` },
    ]);
  });
});
