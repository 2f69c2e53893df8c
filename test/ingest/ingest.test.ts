import { runCliAsAdmin } from "../support/cli.js";
import { createHmac, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../services/app.js";
import { eventTypes } from "../../services/ingest/registry.js";
import { PageViewSweep } from "../../services/ingest/sweep.js";
import { eventColumns } from "../../services/ingest/tables.js";
import { IngestWriter } from "../../services/ingest/writer.js";
import { createMetricsRegistry } from "../../services/core/metrics.js";
import { callIngest, clickhouseRows, drained } from "../support/ingest.js";
import { ADMIN_TOKEN, startTestApp } from "../support/stores.js";

const SECRET = "ingest-test-secret-0123456789";

/** An HS256 token, expiring in an hour unless the claims set `exp`. */
function jwt(claims: Record<string, unknown>, secret = SECRET): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const unsigned = `${part({ alg: "HS256", typ: "JWT" })}.${part({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims })}`;
  return `${unsigned}.${createHmac("sha256", secret).update(unsigned).digest("base64url")}`;
}

const samples: Record<string, Record<string, unknown>> = {
  element_click: { element_type: "movie", page_type: "category" },
  page_view_start: { page_view_id: randomUUID(), page_type: "movie" },
  page_view_end: { page_view_id: randomUUID(), page_type: "movie" },
  quality_change: { video_id: "v-1", old_quality: 720, new_quality: 1080 },
  video_complete: { video_id: "v-2", duration_total: true },
  search_filter: { search_query: "space", filters: "genre=drama" },
};

describe("ingest", () => {
  let app: App;
  beforeAll(async () => {
    app = await startTestApp({ env: { AUTH_JWT_SECRET: SECRET, INGEST_MAX_EVENT_BYTES: "2048", CORS_ALLOWED_ORIGINS: "https://www.example.com" } });
  });
  afterAll(async () => {
    await app.stop();
  });

  /** Rows ever appended to the analytics stream (its id sequence: streaming does not move it). */
  const outbox = async () => (await app.pool.query<{ n: string }>("SELECT last_value::text AS n FROM analytics_outbox_id_seq")).rows[0]?.n;

  it("takes the seed's JSON shape and lands the row in its table, enriched", async () => {
    const before = Date.now();
    const { status, body } = await callIngest(app, "Send", { event: "element_click", token: null, data: { element_type: "trailer", page_type: "promotion" } });
    expect(status).toBe(200);
    expect(body).toMatchObject({ status: "EVENT_STATUS_ACCEPTED" });
    const eventId = body.eventId as string;
    await drained(app);
    const rows = await clickhouseRows(app, "element_click", `event_id = '${eventId}'`);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ event_id: eventId, user_id: "anonymous", element_type: "trailer", page_type: "promotion", session_id: "", seq: null, client_time: null });
    const at = Date.parse(`${String(rows[0]?.timestamp).replace(" ", "T")}Z`);
    expect(at).toBeGreaterThanOrEqual(before - 5);
    expect(at).toBeLessThanOrEqual(Date.now());
  });

  it("lands each event type in its own table with the columns derived from its message", async () => {
    const ids: Record<string, string> = {};
    for (const [event, data] of Object.entries(samples)) {
      const { body } = await callIngest(app, "Send", { event, data, client_time: "2026-01-02T03:04:05.678Z", session_id: "types", seq: Object.keys(ids).length + 1 });
      ids[event] = body.eventId as string;
    }
    await drained(app);
    for (const [event, data] of Object.entries(samples)) {
      const type = eventTypes.get(event);
      const described = await app.clickhouse.client.query({ query: `DESCRIBE TABLE ${app.clickhouse.database}.${event}`, format: "JSONEachRow" });
      const columns = (await described.json<{ name: string; type: string }>()).map(({ name, type }) => ({ name, type }));
      expect(columns).toEqual(eventColumns(type!).map(({ name, type }) => ({ name, type })));
      const rows = await clickhouseRows(app, event, `event_id = '${ids[event]}'`);
      expect(rows, event).toHaveLength(1);
      expect(rows[0]).toMatchObject({ ...data, user_id: "anonymous", session_id: "types", client_time: "2026-01-02 03:04:05.678" });
    }
  });

  it.each([
    ["an unknown type", { event: "page_scroll", data: {} }, /^event: unknown event type "page_scroll"; known types: element_click, /],
    ["an unknown field", { event: "element_click", data: { element_type: "movie", page_type: "x", color: "red" } }, /^data\.color: unknown field$/],
    ["a missing field", { event: "element_click", data: { element_type: "movie" } }, /^data\.page_type: is required$/],
    ["an ill-typed field", { event: "quality_change", data: { video_id: "v", old_quality: "720p", new_quality: 1080 } }, /^data\.old_quality: must be an integer/],
    ["an out-of-range field", { event: "quality_change", data: { video_id: "v", old_quality: 0, new_quality: 1080 } }, /^data\.old_quality: must be at least 1/],
    ["a bad UUID in data", { event: "page_view_start", data: { page_view_id: "not-a-uuid", page_type: "movie" } }, /^data\.page_view_id: must be a UUID/],
    ["a bad event_id", { event: "element_click", event_id: "123", data: { element_type: "movie", page_type: "x" } }, /^event_id: must be a UUID$/],
    ["seq without session", { event: "element_click", seq: 3, data: { element_type: "movie", page_type: "x" } }, /^seq: requires session_id$/],
    ["data that is not an object", { event: "element_click", data: null }, /^data: must be an object/],
    ["an oversized event", { event: "search_filter", data: { search_query: "x".repeat(3000), filters: "" } }, /^event: \d+ bytes is over the limit of 2048 bytes per event$/],
  ])("rejects %s with invalid_argument naming the field, storing nothing", async (_name, body, message) => {
    const before = await outbox();
    const { status, body: error } = await callIngest(app, "Send", body);
    expect(status).toBe(400);
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toMatch(message);
    expect(await outbox()).toBe(before);
  });

  it("resolves a token to its user id and refuses an invalid or expired one", async () => {
    const ok = await callIngest(app, "Send", { event: "video_complete", token: jwt({ sub: "user-42" }), data: samples.video_complete });
    expect(ok.status).toBe(200);
    const bad = await callIngest(app, "Send", { event: "video_complete", token: jwt({ sub: "user-42" }, "another-secret-0123456789"), data: samples.video_complete });
    expect(bad.status).toBe(401);
    expect(bad.body).toMatchObject({ code: "unauthenticated", message: "token: signature does not verify" });
    // Verified locally (no AUTH_URL), the token's lifetime counts.
    const expired = await callIngest(app, "Send", { event: "video_complete", token: jwt({ sub: "user-42", exp: 1 }), data: samples.video_complete });
    expect(expired.status).toBe(401);
    expect(expired.body).toMatchObject({ code: "unauthenticated", message: "token: expired at 1970-01-01T00:00:01.000Z" });
    await drained(app);
    expect(await clickhouseRows(app, "video_complete", `event_id = '${ok.body.eventId as string}'`)).toMatchObject([{ user_id: "user-42" }]);
  });

  it("judges each event of a batch on its own", async () => {
    const repeated = randomUUID();
    await callIngest(app, "Send", { event: "element_click", event_id: repeated, data: samples.element_click });
    const { status, body } = await callIngest(app, "SendBatch", {
      events: [
        { event: "element_click", data: samples.element_click },
        { event: "element_click", data: { element_type: 5, page_type: "x" } },
        { event: "element_click", event_id: repeated, data: samples.element_click },
        { event: "element_click", token: "garbage", data: samples.element_click },
        { event: "nope", data: {} },
        { event: "search_filter", token: jwt({ sub: "u-7" }), data: samples.search_filter },
      ],
    });
    expect(status).toBe(200);
    expect(body).toMatchObject({ accepted: 2, duplicates: 1, rejected: 3 });
    const results = body.results as Record<string, unknown>[];
    expect(results.map((result) => result.status)).toEqual([
      "EVENT_STATUS_ACCEPTED",
      "EVENT_STATUS_REJECTED",
      "EVENT_STATUS_DUPLICATE",
      "EVENT_STATUS_REJECTED",
      "EVENT_STATUS_REJECTED",
      "EVENT_STATUS_ACCEPTED",
    ]);
    expect(results[1]).toMatchObject({ reason: "REJECT_REASON_INVALID_DATA", message: "data.element_type: must be a string, got number 5" });
    expect(results[2]).toMatchObject({ eventId: repeated });
    expect(results[3]).toMatchObject({ reason: "REJECT_REASON_UNAUTHENTICATED" });
    expect(results[4]).toMatchObject({ reason: "REJECT_REASON_UNKNOWN_TYPE" });
    await drained(app);
    expect(await clickhouseRows(app, "element_click", `event_id = '${repeated}'`)).toHaveLength(1);
    expect(await clickhouseRows(app, "search_filter", `event_id = '${results[5]?.eventId as string}'`)).toMatchObject([{ user_id: "u-7" }]);
  });

  it("refuses a batch over the size or count limit as a whole", async () => {
    const events = Array.from({ length: 1001 }, () => ({ event: "element_click", data: samples.element_click }));
    const { status, body } = await callIngest(app, "SendBatch", { events });
    expect(status).toBe(400);
    expect(body.message).toMatch(/^events: 1001 events is over the limit of 1000 per batch$|^request: \d+ bytes is over the limit/);
  });

  it("drops duplicates by event_id, even sent concurrently, and counts them", async () => {
    const id = randomUUID();
    const answers = await Promise.all(Array.from({ length: 5 }, () => callIngest(app, "Send", { event: "quality_change", event_id: id.toUpperCase(), data: samples.quality_change })));
    expect(answers.map((answer) => answer.body.status).sort()).toEqual([
      "EVENT_STATUS_ACCEPTED",
      ...Array<string>(4).fill("EVENT_STATUS_DUPLICATE"),
    ]);
    await drained(app);
    expect(await clickhouseRows(app, "quality_change", `event_id = '${id}'`)).toHaveLength(1);
  });

  it("counts sequence gaps and late arrivals per session", async () => {
    const session = `s-${randomUUID()}`;
    for (const seq of [1, 2, 5, 4, 6, 9]) {
      await callIngest(app, "Send", { event: "element_click", session_id: session, seq, data: samples.element_click });
    }
    const other = `s-${randomUUID()}`;
    await callIngest(app, "Send", { event: "video_complete", session_id: other, seq: 3, data: samples.video_complete });
    const today = new Date().toISOString().slice(0, 10);
    const { rows } = await app.pool.query<{ counter: string; event_type: string; value: string }>(
      "SELECT event_type, counter, value FROM ingest_quality WHERE day = $1 AND counter IN ('gaps', 'out_of_order')",
      [today],
    );
    const value = (type: string, counter: string) => Number(rows.find((row) => row.event_type === type && row.counter === counter)?.value ?? 0);
    // 1 2 _ _ 5 4 6 _ _ 9: four missing numbers (3 and 4 before 4 arrived late, 7, 8), one late arrival.
    expect(value("element_click", "gaps")).toBe(4);
    expect(value("element_click", "out_of_order")).toBe(1);
    // A session first seen at 3 misses 1 and 2.
    expect(value("video_complete", "gaps")).toBe(2);

    // The same sequence in one batch (one group), and a repeated event id in it: counted alike.
    const batched = `s-${randomUUID()}`;
    const repeatedId = randomUUID();
    const events = [1, 2, 5, 4, 6, 9].map((seq) => ({ event: "quality_change", session_id: batched, seq, data: samples.quality_change }));
    const answer = await callIngest(app, "SendBatch", { events: [...events, { event: "video_complete", event_id: repeatedId, data: samples.video_complete }, { event: "video_complete", event_id: repeatedId, data: samples.video_complete }] });
    expect(answer.status).toBe(200);
    expect((answer.body as { results: { status: string }[] }).results.map((result) => result.status).slice(-2)).toEqual(["EVENT_STATUS_ACCEPTED", "EVENT_STATUS_DUPLICATE"]);
    const after = await app.pool.query<{ counter: string; value: string }>(
      "SELECT counter, value FROM ingest_quality WHERE day = $1 AND event_type = 'quality_change' AND counter IN ('gaps', 'out_of_order')",
      [today],
    );
    const now = (counter: string) => Number(after.rows.find((row) => row.counter === counter)?.value ?? 0);
    expect(now("gaps") - value("quality_change", "gaps")).toBe(4);
    expect(now("out_of_order") - value("quality_change", "out_of_order")).toBe(1);
  });

  /** Today's counters of one event type, as GetQuality (and so `funnel ingest quality`) reports them. */
  async function quality(type: string): Promise<{ accepted: number; duplicates: number; gaps: number; outOfOrder: number }> {
    const today = new Date().toISOString().slice(0, 10);
    const { status, body } = await callIngest(app, "GetQuality", { from: today, to: today }, { authorization: `Bearer ${ADMIN_TOKEN}` });
    expect(status).toBe(200);
    const row = ((body.rows ?? []) as Record<string, string>[]).find((r) => r.eventType === type) ?? {};
    return { accepted: Number(row.accepted ?? 0), duplicates: Number(row.duplicates ?? 0), gaps: Number(row.gaps ?? 0), outOfOrder: Number(row.outOfOrder ?? 0) };
  }

  /** The value of one series on /metrics, 0 when absent. */
  async function metric(series: string): Promise<number> {
    const line = (await (await fetch(`${app.metricsUrl}/metrics`)).text()).split("\n").find((l) => l.startsWith(`${series} `));
    return Number(line?.slice(series.length + 1) ?? 0);
  }

  it("drops an id repeated inside one batch or from an earlier batch, counting each drop once", async () => {
    const session = `s-${randomUUID()}`;
    const [earlier, twice, once] = [randomUUID(), randomUUID(), randomUUID()];
    const event = (seq: number, eventId: string) => ({ event: "search_filter", event_id: eventId, session_id: session, seq, data: samples.search_filter });
    const duplicates = 'funnel_ingest_events_total{type="search_filter",status="duplicate"}';
    const before = await quality("search_filter");
    const metricBefore = await metric(duplicates);

    expect((await callIngest(app, "SendBatch", { events: [event(1, earlier)] })).body).toEqual({ accepted: 1, results: [{ eventId: earlier, status: "EVENT_STATUS_ACCEPTED" }] });
    const { status, body } = await callIngest(app, "SendBatch", {
      events: [event(2, twice), event(1, earlier), event(2, twice.toUpperCase()), event(1, earlier), event(3, once)],
    });
    expect(status).toBe(200);
    expect(body).toEqual({
      accepted: 2,
      duplicates: 3,
      results: [
        { eventId: twice, status: "EVENT_STATUS_ACCEPTED" },
        { eventId: earlier, status: "EVENT_STATUS_DUPLICATE" },
        { eventId: twice, status: "EVENT_STATUS_DUPLICATE" },
        { eventId: earlier, status: "EVENT_STATUS_DUPLICATE" },
        { eventId: once, status: "EVENT_STATUS_ACCEPTED" },
      ],
    });
    // Dropped events are not late arrivals of their session either.
    expect(await quality("search_filter")).toEqual({ ...before, accepted: before.accepted + 3, duplicates: before.duplicates + 3 });
    expect((await metric(duplicates)) - metricBefore).toBe(3);
    await drained(app);
    const rows = await clickhouseRows(app, "search_filter", `session_id = '${session}'`);
    expect(rows.map((row) => `${String(row.seq)} ${String(row.event_id)}`).sort()).toEqual([`1 ${earlier}`, `2 ${twice}`, `3 ${once}`]);
  });

  it("counts gaps and late arrivals exactly when calls of one session race", async () => {
    // Within a call events keep their order; the calls may be handled in any order, some in one group.
    const calls = [[1], [2, 3], [7, 5], [9], [4], [12, 11]];
    const counts = (order: number[][]) => {
      let [highest, gaps, late] = [0, 0, 0];
      for (const seq of order.flat()) {
        if (seq > highest + 1) gaps += seq - highest - 1;
        if (seq <= highest) late += 1;
        highest = Math.max(highest, seq);
      }
      return { gaps, late };
    };
    const orders = (items: number[][]): number[][][] =>
      items.length <= 1 ? [items] : items.flatMap((item, i) => orders(items.filter((_, j) => j !== i)).map((rest) => [item, ...rest]));
    const possible = new Set(orders(calls).map((order) => JSON.stringify(counts(order))));
    let before = await quality("video_complete");
    for (let round = 0; round < 4; round += 1) {
      const session = `s-${randomUUID()}`;
      const event = (seq: number) => ({ event: "video_complete", session_id: session, seq, data: samples.video_complete });
      const answers = await Promise.all(
        calls.map((seqs) => (seqs.length === 1 ? callIngest(app, "Send", event(seqs[0] as number)) : callIngest(app, "SendBatch", { events: seqs.map(event) }))),
      );
      expect(answers.map((answer) => answer.status)).toEqual(calls.map(() => 200));
      const after = await quality("video_complete");
      const seen = { gaps: after.gaps - before.gaps, late: after.outOfOrder - before.outOfOrder };
      // Whatever the order, 6, 8 and 10 stay missing: every late arrival was once counted as a gap.
      expect(seen.gaps - seen.late).toBe(3);
      expect(possible).toContain(JSON.stringify(seen));
      expect(after.accepted - before.accepted).toBe(9);
      before = after;
    }
  });

  describe("page views", () => {
    const send = (event: "page_view_start" | "page_view_end", id: string, extra: Record<string, unknown> = {}) =>
      callIngest(app, "Send", { event, token: jwt({ sub: "viewer" }), data: { page_view_id: id, page_type: event === "page_view_start" ? "movie" : "other" }, ...extra });
    const pageViews = (id: string) => clickhouseRows(app, "page_view", `page_view_id = '${id}'`);

    it("pairs a start with its end into one row, with the client-clock duration", async () => {
      const id = randomUUID();
      await send("page_view_start", id, { client_time: "2026-03-01T10:00:00.000Z" });
      await send("page_view_end", id, { client_time: "2026-03-01T10:00:42.500Z" });
      await drained(app);
      const rows = await pageViews(id);
      expect(rows).toMatchObject([{ user_id: "viewer", page_view_id: id, page_type: "movie", duration_seconds: 42.5, paired: true }]);
    });

    it("pairs an end that arrives before its start, on the server clock without client times", async () => {
      const id = randomUUID();
      await send("page_view_end", id);
      await drained(app);
      expect(await pageViews(id)).toEqual([]);
      await send("page_view_start", id);
      await drained(app);
      const rows = await pageViews(id);
      expect(rows).toMatchObject([{ page_view_id: id, page_type: "movie", paired: true }]);
      // The start came later by the server's clock: clamped, never negative.
      expect(rows[0]?.duration_seconds).toBe(0);
    });

    it("never makes two rows for one view: repeats, a batch with both halves, a fresh writer after a restart", async () => {
      const id = randomUUID();
      await send("page_view_start", id);
      await send("page_view_start", id);
      // A new writer over the same database: the state it pairs against lives in Postgres.
      const writer = new IngestWriter({ pool: app.pool, analytics: app.analytics, metrics: createMetricsRegistry(), log: app.log });
      await writer.flush();
      await callIngest(app, "SendBatch", {
        events: [
          { event: "page_view_end", data: { page_view_id: id, page_type: "movie" }, token: jwt({ sub: "viewer" }) },
          { event: "page_view_end", data: { page_view_id: id, page_type: "movie" }, token: jwt({ sub: "viewer" }) },
        ],
      });
      await send("page_view_end", id);
      await drained(app);
      expect(await pageViews(id)).toHaveLength(1);
      // Another user's view with the same id is a different view.
      await callIngest(app, "Send", { event: "page_view_start", data: { page_view_id: id, page_type: "movie" } });
      await callIngest(app, "Send", { event: "page_view_end", data: { page_view_id: id, page_type: "movie" } });
      await drained(app);
      expect((await pageViews(id)).map((row) => row.user_id).sort()).toEqual(["anonymous", "viewer"]);
    });

    it("emits a start whose end did not come in time as unpaired, counts unmatched and late ends", async () => {
      const lonelyStart = randomUUID();
      const lonelyEnd = randomUUID();
      await send("page_view_start", lonelyStart);
      await send("page_view_end", lonelyEnd);
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      const sweep = new PageViewSweep({ pool: app.pool, analytics: app.analytics, log: app.log, metrics: app.metrics, timeoutSeconds: 1, retentionDays: 7, intervalSeconds: 60 });
      expect(await sweep.sweep()).toBeGreaterThanOrEqual(1);
      expect(await sweep.sweep()).toBe(0);
      await send("page_view_end", lonelyStart);
      await drained(app);
      expect(await pageViews(lonelyStart)).toMatchObject([{ paired: false, duration_seconds: null, page_type: "movie" }]);
      expect(await pageViews(lonelyEnd)).toEqual([]);
      const today = new Date().toISOString().slice(0, 10);
      const { rows } = await app.pool.query<{ counter: string; value: string }>("SELECT counter, value FROM ingest_quality WHERE day = $1 AND event_type = 'page_view'", [today]);
      const value = (counter: string) => Number(rows.find((row) => row.counter === counter)?.value ?? 0);
      expect(value("page_views_unpaired")).toBeGreaterThanOrEqual(1);
      expect(value("unmatched_ends")).toBeGreaterThanOrEqual(1);
      expect(value("late_ends")).toBe(1);
    });
  });

  it("reports quality per day and type through the CLI and /metrics", async () => {
    const today = new Date().toISOString().slice(0, 10);
    const cli = await runCliAsAdmin(app, ["ingest", "quality", "--from", today, "--to", today, "--json"]);
    expect(cli.code).toBe(0);
    const rows = JSON.parse(cli.stdout) as { eventType: string; accepted: number; duplicates: number; rejected: Record<string, number> }[];
    const click = rows.find((row) => row.eventType === "element_click");
    expect(click?.accepted).toBeGreaterThan(5);
    expect(click?.duplicates).toBe(1);
    expect(click?.rejected).toMatchObject({ invalid_data: 4, invalid_envelope: 2, unauthenticated: 1 });
    expect(rows.find((row) => row.eventType === "unknown")?.rejected).toMatchObject({ unknown_type: 2 });
    const table = await runCliAsAdmin(app, ["ingest", "quality"]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`^${today}\\s+element_click\\s+\\d+\\s+invalid_data=4 invalid_envelope=2 unauthenticated=1\\s+1\\s+4\\s+1`, "m"));
    expect(table.stdout).toMatch(/page_view .*paired=\d+ unpaired=\d+ unmatched_ends=\d+ late_ends=1/);
    const unauthorized = await callIngest(app, "GetQuality", {});
    expect(unauthorized.status).toBe(401);

    const metrics = await (await fetch(`${app.metricsUrl}/metrics`)).text();
    expect(metrics).toMatch(/funnel_ingest_events_total\{type="element_click",status="duplicate"\} 1/);
    expect(metrics).toMatch(/funnel_ingest_rejected_total\{type="element_click",reason="invalid_data"\} 4/);
    expect(metrics).toMatch(/funnel_ingest_seq_gaps_total\{type="element_click"\} 4/);
  });

  it("counts every event of concurrent transactions once", async () => {
    const today = new Date().toISOString().slice(0, 10);
    const accepted = async (): Promise<number> => {
      const cli = await runCliAsAdmin(app, ["ingest", "quality", "--from", today, "--to", today, "--json"]);
      const rows = JSON.parse(cli.stdout) as { eventType: string; accepted: string }[];
      return Number(rows.find((row) => row.eventType === "search_filter")?.accepted ?? 0);
    };
    const before = await accepted();
    const answers = await Promise.all(Array.from({ length: 60 }, () => callIngest(app, "Send", { event: "search_filter", data: samples.search_filter })));
    expect(answers.every((answer) => answer.status === 200)).toBe(true);
    expect((await accepted()) - before).toBe(60);
  });

  it("lets allowed browser origins call Send, answering preflights", async () => {
    const url = `${app.url}/funnel.ingest.v1.IngestService/Send`;
    const preflight = await fetch(url, { method: "OPTIONS", headers: { origin: "https://www.example.com", "access-control-request-method": "POST", "access-control-request-headers": "content-type" } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("https://www.example.com");
    expect(preflight.headers.get("access-control-allow-headers")).toContain("content-type");
    const refused = await fetch(url, { method: "OPTIONS", headers: { origin: "https://evil.example", "access-control-request-method": "POST" } });
    expect(refused.status).toBe(403);
    expect(refused.headers.get("access-control-allow-origin")).toBeNull();
    const sent = await callIngest(app, "Send", { event: "element_click", data: samples.element_click }, { origin: "https://www.example.com" });
    expect(sent.status).toBe(200);
    expect(sent.headers.get("access-control-allow-origin")).toBe("https://www.example.com");
  });
});
