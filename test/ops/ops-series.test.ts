import { durationFromMs, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Metric, OpsService, type GetTimeSeriesRequestSchema } from "../../gen/funnel/ops/v1/ops_pb.js";
import { TrackerService } from "../../gen/funnel/tracker/v1/tracker_pb.js";
import type { App } from "../../services/app.js";
import { callIngest, drained } from "../support/ingest.js";
import { ADMIN_TOKEN, eventually, startTestApp } from "../support/stores.js";

type SeriesRequest = MessageInitShape<typeof GetTimeSeriesRequestSchema>;

const at = (iso: string) => timestampFromDate(new Date(iso));

async function failure(call: Promise<unknown>): Promise<ConnectError | undefined> {
  try {
    await call;
    return undefined;
  } catch (error) {
    return ConnectError.from(error);
  }
}

describe("OpsService.GetTimeSeries", () => {
  let app: App;
  let ops: Client<typeof OpsService>;
  const series = async (req: SeriesRequest) => {
    const res = await ops.getTimeSeries(req);
    return {
      buckets: res.buckets.map((bucket) => timestampDate(bucket).toISOString()),
      series: Object.fromEntries(res.series.map((one) => [one.key, one.values.map(Number)])),
      totals: Object.fromEntries(res.series.map((one) => [one.key, Number(one.total)])),
    };
  };

  beforeAll(async () => {
    app = await startTestApp();
    const transport = createConnectTransport({
      baseUrl: app.url,
      httpVersion: "1.1",
      interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${ADMIN_TOKEN}`), next(req))],
    });
    ops = createClient(OpsService, transport);
  });
  afterAll(async () => {
    await app.stop();
  });

  it("counts stored events per type and tracker hits from what reached ClickHouse", async () => {
    for (let i = 0; i < 3; i += 1) {
      expect((await callIngest(app, "Send", { event: "element_click", token: null, data: { element_type: "trailer", page_type: "promotion" } })).status).toBe(200);
    }
    expect((await callIngest(app, "Send", { event: "search_filter", token: null, data: { search_query: "q", filters: "{}" } })).status).toBe(200);
    const transport = createConnectTransport({ baseUrl: app.url, httpVersion: "1.1", interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${ADMIN_TOKEN}`), next(req))] });
    const tracker = (await createClient(TrackerService, transport).createTracker({ value: "series" })).tracker?.uuid ?? "";
    for (let i = 0; i < 2; i += 1) expect((await fetch(`${app.url}/track?id=${tracker}`)).status).toBe(204);
    await drained(app);

    const events = await series({ metric: Metric.INGEST_EVENTS });
    expect(events.totals).toEqual({ element_click: 3, search_filter: 1 });
    // The last hour by minutes: 60 buckets, or 61 when now is not on a minute.
    expect(events.buckets.length).toBeGreaterThanOrEqual(60);
    expect(events.buckets.length).toBeLessThanOrEqual(61);
    expect(events.series.element_click?.length).toBe(events.buckets.length);
    expect((await series({ metric: Metric.INGEST_EVENTS, eventType: "search_filter" })).totals).toEqual({ search_filter: 1 });

    expect((await series({ metric: Metric.TRACKER_HITS, trackerId: tracker })).totals).toEqual({ hits: 2 });
    expect((await series({ metric: Metric.TRACKER_HITS, trackerId: "00000000-0000-4000-8000-000000000000" })).totals).toEqual({});
  });

  it("puts postback and Seen attempts in toStartOfInterval buckets by outcome, zero-filled, filtered by partner or integration", async () => {
    const db = app.clickhouse.database;
    const attempt = (partner: string, outcome: string, time: string) => ({
      delivery_id: crypto.randomUUID(), attempt: 1, partner_id: partner, event: "install", stag: `${partner}_c`, click_id: "c",
      method: "GET", url: "http://127.0.0.1/", http_status: 200, response_body: "", duration_ms: 3, error: "", outcome, attempted_at: time,
    });
    await app.clickhouse.client.insert({
      table: `${db}.postback_deliveries`,
      values: [
        attempt("p-a", "delivered", "2026-01-01 10:00:30.000"),
        attempt("p-a", "retry", "2026-01-01 10:01:10.000"),
        attempt("p-a", "delivered", "2026-01-01 10:01:50.000"),
        attempt("p-b", "dead", "2026-01-01 10:02:59.999"),
        // Outside the range on both sides.
        attempt("p-a", "delivered", "2026-01-01 09:59:59.999"),
        attempt("p-a", "delivered", "2026-01-01 10:03:00.000"),
      ],
      format: "JSONEachRow",
    });
    const range = { from: at("2026-01-01T10:00:00Z"), to: at("2026-01-01T10:03:00Z"), step: durationFromMs(60_000) };
    const all = await series({ metric: Metric.POSTBACK_ATTEMPTS, ...range });
    expect(all.buckets).toEqual(["2026-01-01T10:00:00.000Z", "2026-01-01T10:01:00.000Z", "2026-01-01T10:02:00.000Z"]);
    expect(all.series).toEqual({ dead: [0, 0, 1], delivered: [1, 1, 0], retry: [0, 1, 0] });
    expect((await series({ metric: Metric.POSTBACK_ATTEMPTS, ...range, partnerId: "p-b" })).series).toEqual({ dead: [0, 0, 1] });
    // A range that starts inside a bucket gets the whole bucket's start.
    const coarse = await series({ metric: Metric.POSTBACK_ATTEMPTS, from: at("2026-01-01T10:00:30Z"), to: at("2026-01-01T10:03:00Z"), step: durationFromMs(3_600_000) });
    expect(coarse.buckets).toEqual(["2026-01-01T10:00:00.000Z"]);
    expect(coarse.series).toEqual({ dead: [1], delivered: [2], retry: [1] });

    await app.clickhouse.client.insert({
      table: `${db}.seen_delivery_attempts`,
      values: ["i-one", "i-one", "i-two"].map((integration, i) => ({
        delivery_id: crypto.randomUUID(), attempt: 1, integration, tag: "t", item_id: "x", url: "http://127.0.0.1/", http_status: 500,
        response_body: "", duration_ms: 1, error: "boom", outcome: i === 2 ? "dead" : "retry", attempted_at: `2026-01-01 10:0${i}:00.000`,
      })),
      format: "JSONEachRow",
    });
    expect((await series({ metric: Metric.SEEN_ATTEMPTS, ...range, integration: "i-one" })).series).toEqual({ retry: [1, 1, 0] });
  });

  it("reads unfiltered whole-minute series from the per-minute rollup that materialized views keep", async () => {
    const db = app.clickhouse.database;
    // The views counted the attempts inserted above.
    const rolled = await app.clickhouse.client.query({
      query: `SELECT key, sum(n) AS n FROM ${db}.series_per_minute WHERE metric = 'postback_attempts' AND minute >= '2026-01-01 10:00:00' AND minute < '2026-01-01 10:03:00' GROUP BY key ORDER BY key`,
      format: "JSONEachRow",
    });
    expect((await rolled.json<{ key: string; n: string | number }>()).map((row) => [row.key, Number(row.n)])).toEqual([["dead", 1], ["delivered", 2], ["retry", 1]]);

    // A batch the stream sends again (same deduplication token) is dropped by the table and not counted again.
    const retried = {
      table: `${db}.postback_deliveries`,
      values: [{ delivery_id: "00000000-0000-4000-8000-000000000001", attempt: 1, partner_id: "p-r", event: "install", stag: "p-r_c", click_id: "c", method: "GET", url: "", http_status: 200, response_body: "", duration_ms: 1, error: "", outcome: "delivered", attempted_at: "2026-03-01 10:00:00.000" }],
      format: "JSONEachRow" as const,
      // As the analytics stream inserts.
      clickhouse_settings: { insert_deduplication_token: "console-series-test", deduplicate_blocks_in_dependent_materialized_views: 1 as const },
    };
    await app.clickhouse.client.insert(retried);
    await app.clickhouse.client.insert(retried);
    const raw = await series({ metric: Metric.POSTBACK_ATTEMPTS, from: at("2026-03-01T10:00:00Z"), to: at("2026-03-01T10:01:00Z"), step: durationFromMs(30_000) });
    expect(raw.series).toEqual({ delivered: [1, 0] });
    const once = await series({ metric: Metric.POSTBACK_ATTEMPTS, from: at("2026-03-01T10:00:00Z"), to: at("2026-03-01T10:01:00Z") });
    expect(once.series).toEqual({ delivered: [1] });

    // A count only the rollup holds shows where the answer comes from.
    await app.clickhouse.client.insert({ table: `${db}.series_per_minute`, values: [{ metric: "postback_attempts", minute: "2026-02-01 10:00:00", key: "delivered", n: 5 }], format: "JSONEachRow" });
    const range = { from: at("2026-02-01T10:00:00Z"), to: at("2026-02-01T10:02:00Z") };
    expect((await series({ metric: Metric.POSTBACK_ATTEMPTS, ...range, step: durationFromMs(60_000) })).series).toEqual({ delivered: [5, 0] });
    expect((await series({ metric: Metric.POSTBACK_ATTEMPTS, ...range, step: durationFromMs(120_000) })).series).toEqual({ delivered: [5] });
    // A filter, or a step that is not whole minutes, reads the table itself.
    expect((await series({ metric: Metric.POSTBACK_ATTEMPTS, ...range, step: durationFromMs(60_000), partnerId: "p-a" })).series).toEqual({});
    expect((await series({ metric: Metric.POSTBACK_ATTEMPTS, ...range, step: durationFromMs(30_000) })).series).toEqual({});
  });

  it("counts rejected events per reason and UTC day from the quality counters", async () => {
    const bad = await callIngest(app, "Send", { event: "element_click", token: null, data: { element_type: 7 } });
    expect(bad.status).toBe(400);
    const today = new Date(Math.floor(Date.now() / 86_400_000) * 86_400_000);
    const ask = () => series({ metric: Metric.INGEST_REJECTED, from: timestampFromDate(new Date(today.getTime() - 86_400_000)), to: timestampFromDate(new Date(today.getTime() + 86_400_000)), step: durationFromMs(86_400_000) });
    // Rejections are counted by a group commit shortly after the answer.
    const res = await eventually(async () => {
      const answer = await ask();
      return Object.keys(answer.series).length > 0 ? answer : undefined;
    }, 10_000, "the rejection to be counted");
    expect(res.buckets).toEqual([new Date(today.getTime() - 86_400_000).toISOString(), today.toISOString()]);
    const reasons = Object.entries(res.series);
    expect(reasons.length).toBeGreaterThan(0);
    for (const [, values] of reasons) expect(values[0]).toBe(0);
    expect(reasons.reduce((sum, [, values]) => sum + (values[1] ?? 0), 0)).toBeGreaterThanOrEqual(1);
  });

  it("refuses a bad request naming the field, and callers without the admin token", async () => {
    const cases: [SeriesRequest, RegExp][] = [
      [{}, /^metric: required/],
      [{ metric: 99 as Metric }, /^metric: unknown value 99/],
      [{ metric: Metric.TRACKER_HITS, from: at("2026-01-02T00:00:00Z"), to: at("2026-01-01T00:00:00Z") }, /^from: must be before to/],
      [{ metric: Metric.TRACKER_HITS, from: at("1960-01-01T00:00:00Z") }, /^from: must lie between 1970 and 2299/],
      [{ metric: Metric.TRACKER_HITS, step: durationFromMs(1_500) }, /^step: must be whole seconds/],
      [{ metric: Metric.TRACKER_HITS, step: durationFromMs(0) }, /^step: must be whole seconds/],
      [{ metric: Metric.TRACKER_HITS, from: at("2026-01-01T00:00:00Z"), to: at("2026-02-01T00:00:00Z"), step: durationFromMs(60_000) }, /^step: the range holds 44640 buckets/],
      [{ metric: Metric.INGEST_REJECTED }, /^step: METRIC_INGEST_REJECTED is counted per UTC day/],
      [{ metric: Metric.INGEST_EVENTS, partnerId: "p-a" }, /^partner_id: filters METRIC_POSTBACK_ATTEMPTS and METRIC_POSTBACK_EVENTS only/],
      [{ metric: Metric.TRACKER_HITS, trackerId: "nope" }, /^tracker_id: must be a UUID/],
      [{ metric: Metric.INGEST_EVENTS, eventType: "page_view" }, /^event_type: one of element_click/],
      [{ metric: Metric.POSTBACK_ATTEMPTS, partnerId: "x".repeat(1_000_000) }, /^partner_id: at most 64 characters/],
    ];
    for (const [req, message] of cases) {
      const error = await failure(ops.getTimeSeries(req));
      expect(error?.code, JSON.stringify(req, (_, v: unknown) => (typeof v === "bigint" ? String(v) : v)).slice(0, 100)).toBe(Code.InvalidArgument);
      expect(error?.rawMessage).toMatch(message);
    }
    const anonymous = createClient(OpsService, createConnectTransport({ baseUrl: app.url, httpVersion: "1.1" }));
    expect((await failure(anonymous.getTimeSeries({ metric: Metric.TRACKER_HITS })))?.code).toBe(Code.Unauthenticated);
  });
});
