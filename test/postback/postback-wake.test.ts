import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventOutcome } from "../../gen/funnel/postback/v1/postback_pb.js";
import type { App } from "../../services/app.js";
import { AnalyticsStreamer } from "../../services/core/analytics/streamer.js";
import { startPartnerServer, type PartnerServer } from "../support/partner-server.js";
import { postbackClients, seedTemplate, testPartner, type PostbackClients } from "../support/postback-clients.js";
import { eventually, startTestApp } from "../support/stores.js";

describe("postback analytics wake the streamers", () => {
  let app: App;
  let streamer: AnalyticsStreamer;
  let partner: PartnerServer;
  let api: PostbackClients;

  beforeAll(async () => {
    partner = await startPartnerServer();
    app = await startTestApp({ env: { POSTBACK_ALLOW_PRIVATE: "true", JOBS_POLL_SECONDS: "1" } });
    // A streamer whose fallback poll is a minute away: within these tests, only a NOTIFY brings rows in.
    await app.streamer?.stop();
    streamer = new AnalyticsStreamer({ pool: app.pool, url: app.postgres.url, clickhouse: app.clickhouse, log: app.log, metrics: app.metrics, pollIntervalMs: 60_000 });
    await streamer.start();
    api = postbackClients(app.url);
    await api.partners.createPartner({ partner: testPartner("77", seedTemplate(partner.url)) });
  });
  afterAll(async () => {
    await streamer?.stop();
    await app?.stop();
    await partner?.close();
  });

  const rows = async (table: string, column: string, value: string): Promise<number> => {
    const result = await app.clickhouse.client.query({
      query: `SELECT count() AS n FROM ${app.clickhouse.database}.${table} WHERE toString(${column}) = {value:String}`,
      query_params: { value },
      format: "JSONEachRow",
    });
    return Number((await result.json<{ n: number | string }>())[0]?.n ?? 0);
  };
  const arrives = (table: string, column: string, value: string, timeoutMs = 2_000) =>
    eventually(async () => ((await rows(table, column, value)) > 0 ? true : undefined), timeoutMs, `a ${table} row in ClickHouse`);

  it("streams a recorded event at once", async () => {
    const res = await api.events.recordInstall({ stag: "nobody_wake-1" });
    expect(res.outcome).toBe(EventOutcome.UNKNOWN_PARTNER);
    await arrives("postback_events", "stag", "nobody_wake-1");
  });

  it("streams a delivery attempt at once", async () => {
    // The partner answers late, so the attempt commits after the streamer has gone idle again.
    partner.answer(() => ({ status: 200, body: "ok", delayMs: 1_000 }));
    const { deliveryId } = await api.events.recordInstall({ stag: "77_wake-2" });
    await arrives("postback_events", "delivery_id", deliveryId);
    expect(await rows("postback_deliveries", "delivery_id", deliveryId)).toBe(0);
    await eventually(async () => (partner.received("/postback/77/").length === 1 ? true : undefined), 5_000, "the postback");
    await arrives("postback_deliveries", "delivery_id", deliveryId, 3_000);
  });
});
