import { randomUUID } from "node:crypto";
import http2 from "node:http2";
import { type MessageInitShape } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EventSchema, EventStatus, IngestService, RejectReason } from "../../gen/funnel/ingest/v1/ingest_pb.js";
import { TrackerService } from "../../gen/funnel/tracker/v1/tracker_pb.js";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import type { App } from "../../services/app.js";
import { eventTypes } from "../../services/ingest/registry.js";
import { callIngest, clickhouseRows, drained } from "../support/ingest.js";
import { type Answer, overHttp1, overHttp2 } from "../support/raw-http.js";
import { ADMIN_TOKEN, eventually, startTestApp } from "../support/stores.js";

type EventInit = MessageInitShape<typeof EventSchema>;

/** One sample of each type, in its typed form and its untyped (`event` + `data`) form. */
const samples = () =>
  [
    { typed: { case: "elementClick", value: { elementType: "movie", pageType: "category" } }, event: "element_click", data: { element_type: "movie", page_type: "category" } },
    { typed: { case: "pageViewStart", value: { pageViewId: "0b9f3c5e-6a1d-4e2f-8c7b-1a2b3c4d5e6f", pageType: "movie" } }, event: "page_view_start", data: { page_view_id: "0b9f3c5e-6a1d-4e2f-8c7b-1a2b3c4d5e6f", page_type: "movie" } },
    { typed: { case: "pageViewEnd", value: { pageViewId: randomUUID(), pageType: "movie" } }, event: "page_view_end", data: undefined },
    { typed: { case: "qualityChange", value: { videoId: "v-1", oldQuality: 720, newQuality: 1080 } }, event: "quality_change", data: { video_id: "v-1", old_quality: 720, new_quality: 1080 } },
    { typed: { case: "videoComplete", value: { videoId: "v-2", durationTotal: false } }, event: "video_complete", data: { video_id: "v-2", duration_total: false } },
    { typed: { case: "searchFilter", value: { searchQuery: "", filters: "genre=drama" } }, event: "search_filter", data: { search_query: "", filters: "genre=drama" } },
  ] as const;

/** Every way a client reaches Send: which of them the fast JSON path serves is noted. */
const transports: Record<string, (url: string) => Transport> = {
  "Connect JSON, HTTP/1.1 (fast path)": (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1" }),
  "Connect binary, HTTP/1.1": (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true }),
  "Connect JSON, HTTP/2": (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2" }),
  "Connect binary, HTTP/2": (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true }),
  gRPC: (baseUrl) => createGrpcTransport({ baseUrl }),
  "gRPC-Web": (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
};

/** The error `call` failed with: code, message, and the BadRequest field violations. */
async function failure(call: Promise<unknown>): Promise<{ code: Code; message: string; fields: string[] }> {
  const error = ConnectError.from(await call.then(() => new Error("the call succeeded"), (caught: unknown) => caught));
  const fields = error.findDetails(BadRequestSchema).flatMap((detail) => detail.fieldViolations.map((violation) => violation.field));
  return { code: error.code, message: error.rawMessage, fields };
}

/** Row columns that differ between two events by nature (ids, times). */
const comparable = (row: Record<string, unknown> | undefined) => Object.fromEntries(Object.entries(row ?? {}).filter(([key]) => key !== "event_id" && key !== "timestamp"));

describe("typed events", () => {
  let app: App;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(async () => {
    await app.stop();
  });

  /** Today's counters of one event type, as GetQuality reports them. */
  async function quality(type: string): Promise<Record<string, unknown>> {
    const today = new Date().toISOString().slice(0, 10);
    const { body } = await callIngest(app, "GetQuality", { from: today, to: today }, { authorization: `Bearer ${ADMIN_TOKEN}` });
    return ((body.rows ?? []) as Record<string, unknown>[]).find((row) => row.eventType === type) ?? {};
  }

  it("has one typed member per event type, named after it, holding the type's message", async () => {
    const { EventSchema } = await import("../../gen/funnel/ingest/v1/ingest_pb.js");
    const typed = EventSchema.oneofs.find((oneof) => oneof.name === "typed");
    expect(typed?.fields.map((field) => [field.name, field.message?.typeName])).toEqual([...eventTypes.values()].map((type) => [type.name, type.data.typeName]));
  });

  it("takes the typed form as raw JSON on the fast path, landing the same row as the untyped form", async () => {
    const session = `typed-${randomUUID()}`;
    const typed = await callIngest(app, "Send", { element_click: { element_type: "trailer", page_type: "promotion" }, session_id: session, seq: 1 });
    const named = await callIngest(app, "Send", { event: "element_click", elementClick: { elementType: "trailer", pageType: "promotion" }, session_id: session, seq: 2 });
    const untyped = await callIngest(app, "Send", { event: "element_click", data: { element_type: "trailer", page_type: "promotion" }, session_id: session, seq: 3 });
    expect([typed.status, named.status, untyped.status]).toEqual([200, 200, 200]);
    await drained(app);
    const rows = await clickhouseRows(app, "element_click", `session_id = '${session}'`);
    expect(rows.map((row) => row.event_id).sort()).toEqual([typed.body.eventId, named.body.eventId, untyped.body.eventId].sort());
    expect(rows.map((row) => ({ ...comparable(row), seq: null }))).toEqual(Array(3).fill({ ...comparable(rows[0]), seq: null }));
    expect(rows[0]).toMatchObject({ element_type: "trailer", page_type: "promotion", user_id: "anonymous" });
  });

  for (const [name, transport] of Object.entries(transports)) {
    describe(name, () => {
      let ingest: Client<typeof IngestService>;
      beforeAll(() => {
        ingest = createClient(IngestService, transport(app.url));
      });

      it("stores every type sent typed exactly as its untyped twin", async () => {
        for (const sample of samples()) {
          const data = sample.data ?? { page_view_id: (sample.typed.value as { pageViewId: string }).pageViewId, page_type: "movie" };
          const typed = await ingest.send({ typed: sample.typed as EventInit["typed"], sessionId: `t-${name}` });
          const untyped = await ingest.send({ event: sample.event, data, sessionId: `t-${name}` });
          expect([typed.status, untyped.status]).toEqual([EventStatus.ACCEPTED, EventStatus.ACCEPTED]);
          await drained(app);
          const [typedRow] = await clickhouseRows(app, sample.event, `event_id = '${typed.eventId}'`);
          const [untypedRow] = await clickhouseRows(app, sample.event, `event_id = '${untyped.eventId}'`);
          expect(typedRow, sample.event).toMatchObject(data);
          expect(comparable(typedRow), sample.event).toEqual(comparable(untypedRow));
        }
      });

      it("refuses a typed event by the same rules, naming the field as sent, and counts it alike", async () => {
        const before = await quality("element_click");
        const typed = await failure(ingest.send({ typed: { case: "elementClick", value: { elementType: "", pageType: "x" } } }));
        const untyped = await failure(ingest.send({ event: "element_click", data: { element_type: "", page_type: "x" } }));
        expect(typed).toEqual({ code: Code.InvalidArgument, message: "element_click.element_type: must not be empty", fields: ["element_click.element_type"] });
        expect(untyped).toEqual({ code: Code.InvalidArgument, message: "data.element_type: must not be empty", fields: ["data.element_type"] });
        const bad = await failure(ingest.send({ typed: { case: "pageViewStart", value: { pageViewId: "nope", pageType: "movie" } } }));
        expect(bad.message).toBe('page_view_start.page_view_id: must be a UUID, got "nope"');
        const nul = await failure(ingest.send({ typed: { case: "elementClick", value: { elementType: "a\0b", pageType: "x" } } }));
        expect(nul.fields).toEqual(["element_click.element_type"]);
        // Rejections are counted by the next group commit, after the answer.
        const invalid = (row: Record<string, unknown>) => Number((row.rejected as Record<string, string> | undefined)?.invalid_data ?? 0);
        await eventually(async () => (invalid(await quality("element_click")) - invalid(before) === 3 ? true : undefined), 5_000, "three more invalid_data rejections");
      });

      it("refuses a typed event that also has data, or whose event names another type", async () => {
        const both = await failure(ingest.send({ event: "element_click", data: { element_type: "m", page_type: "x" }, typed: { case: "elementClick", value: { elementType: "m", pageType: "x" } } }));
        expect(both).toEqual({ code: Code.InvalidArgument, message: "data: must be absent when element_click is set", fields: ["data"] });
        const other = await failure(ingest.send({ event: "video_complete", typed: { case: "elementClick", value: { elementType: "m", pageType: "x" } } }));
        expect(other).toEqual({ code: Code.InvalidArgument, message: 'event: names "video_complete" but element_click is set', fields: ["event"] });
        const same = await ingest.send({ event: "element_click", typed: { case: "elementClick", value: { elementType: "m", pageType: "x" } } });
        expect(same.status).toBe(EventStatus.ACCEPTED);
      });

      it("de-duplicates across the two forms", async () => {
        const id = randomUUID();
        const first = await ingest.send({ eventId: id, typed: { case: "videoComplete", value: { videoId: "d", durationTotal: true } } });
        const again = await ingest.send({ eventId: id, event: "video_complete", data: { video_id: "d", duration_total: true } });
        expect([first.status, again.status]).toEqual([EventStatus.ACCEPTED, EventStatus.DUPLICATE]);
        await drained(app);
        expect(await clickhouseRows(app, "video_complete", `event_id = '${id}'`)).toHaveLength(1);
      });

      it("judges typed and untyped events of one batch alike", async () => {
        const answer = await ingest.sendBatch({
          events: [
            { typed: { case: "searchFilter", value: { searchQuery: "q", filters: "" } } },
            { typed: { case: "qualityChange", value: { videoId: "v", oldQuality: 0, newQuality: 1080 } } },
            { event: "quality_change", data: { video_id: "v", old_quality: 0, new_quality: 1080 } },
            { event: "search_filter", data: { search_query: "q", filters: "" }, typed: { case: "searchFilter", value: { searchQuery: "q" } } },
          ],
        });
        expect(answer.results.map((result) => [result.status, result.reason, result.message])).toEqual([
          [EventStatus.ACCEPTED, RejectReason.UNSPECIFIED, ""],
          [EventStatus.REJECTED, RejectReason.INVALID_DATA, "quality_change.old_quality: must be at least 1, got 0"],
          [EventStatus.REJECTED, RejectReason.INVALID_DATA, "data.old_quality: must be at least 1, got 0"],
          [EventStatus.REJECTED, RejectReason.INVALID_ENVELOPE, "data: must be absent when search_filter is set"],
        ]);
      });
    });
  }
});

describe("unknown keys", () => {
  let app: App;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(async () => {
    await app.stop();
  });

  const headers = { "content-type": "application/json", "x-request-id": "unknown-keys" };
  const click = { element_type: "movie", page_type: "category" };

  /** The answer of both JSON paths, checked to be the same, as status and parsed body. */
  async function bothPaths(path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
    const text = JSON.stringify(body);
    const fast = await overHttp1(app.url, path, headers, text);
    const general = await overHttp2(app.url, path, headers, text);
    // An accepted event's answer holds its own generated id.
    const shape = (answer: Answer) => ({ ...answer, body: answer.status === 200 ? "" : answer.body });
    expect(shape(fast)).toEqual(shape(general));
    return { status: fast.status, body: JSON.parse(fast.body) as Record<string, unknown> };
  }

  const violation = (field: string, description: string) => ({
    type: "google.rpc.BadRequest",
    debug: { fieldViolations: [{ field, description }] },
  });

  it.each([
    ["a misspelled event_id", "/funnel.ingest.v1.IngestService/Send", { event: "element_click", evnt_id: "typo", data: click }, "evnt_id"],
    ["a key in a typed event's message", "/funnel.ingest.v1.IngestService/Send", { element_click: { ...click, colour: "red" } }, "element_click.colour"],
    ["a key of one event of a batch", "/funnel.ingest.v1.IngestService/SendBatch", { events: [{ event: "element_click", data: click }, { event: "element_click", data: click, sesion_id: "s" }] }, "events[1].sesion_id"],
    ["a key of another service's request", "/funnel.seen.v1.SeenService/MarkSeen", { tag: "t", id: "1", tagg: "x" }, "tagg"],
  ])("refuses %s on both JSON paths, naming it, storing nothing", async (_name, path, body, field) => {
    const before = await app.pool.query<{ n: string }>("SELECT last_value::text AS n FROM analytics_outbox_id_seq");
    const answer = await bothPaths(path, body);
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ code: "invalid_argument", message: `${field}: unknown field` });
    expect((answer.body.details as { type: string; debug: unknown }[]).map(({ type, debug }) => ({ type, debug }))).toEqual([violation(field, "unknown field")]);
    expect((await app.pool.query<{ n: string }>("SELECT last_value::text AS n FROM analytics_outbox_id_seq")).rows).toEqual(before.rows);
  });

  it("still takes JSON names, proto names, and keys inside data's object checked by its type", async () => {
    expect((await bothPaths("/funnel.ingest.v1.IngestService/Send", { event: "element_click", sessionId: "s", client_time: "2026-01-01T00:00:00Z", data: click })).status).toBe(200);
    const inData = await bothPaths("/funnel.ingest.v1.IngestService/Send", { event: "element_click", data: { ...click, colour: "red" } });
    expect(inData.body).toMatchObject({ code: "invalid_argument", message: "data.colour: unknown field" });
  });

  it("refuses an unknown key over gRPC-Web and gRPC JSON too, naming it", async () => {
    const frame = (json: unknown) => {
      const payload = Buffer.from(JSON.stringify(json));
      const head = Buffer.alloc(5);
      head.writeUInt32BE(payload.byteLength, 1);
      return Buffer.concat([head, payload]);
    };
    const res = await fetch(`${app.url}/funnel.ingest.v1.IngestService/Send`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+json" },
      body: frame({ event: "element_click", evnt_id: "typo", data: click }),
    });
    const trailer = Buffer.from(await res.arrayBuffer()).subarray(5).toString("utf8");
    expect(trailer).toMatch(/grpc-status: ?3\r\n/);
    expect(decodeURIComponent(/grpc-message: ?(.*)\r\n/.exec(trailer)?.[1] ?? "")).toBe("evnt_id: unknown field");

    const session = http2.connect(app.url);
    try {
      const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        const stream = session.request({ ":method": "POST", ":path": "/funnel.ingest.v1.IngestService/SendBatch", "content-type": "application/grpc+json", te: "trailers" });
        stream.on("trailers", resolve).on("error", reject);
        stream.resume();
        stream.end(frame({ events: [{ event: "element_click", data: click, sesion_id: "s" }] }));
      });
      expect(trailers["grpc-status"]).toBe("3");
      expect(decodeURIComponent(String(trailers["grpc-message"]))).toBe("events[0].sesion_id: unknown field");
    } finally {
      session.close();
    }
  });

  it("refuses an unknown key of POST /v1/seen, naming it", async () => {
    const res = await fetch(`${app.url}/v1/seen`, { method: "POST", headers: { "content-type": "application/json", "x-funnel-device-id": "d-1" }, body: JSON.stringify({ tag: "t", id: "1", idd: "2" }) });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: "idd: unknown field" });
    const ok = await fetch(`${app.url}/v1/seen`, { method: "POST", headers: { "content-type": "application/json", "x-funnel-device-id": "d-1" }, body: JSON.stringify({ tag: "t", id: "1" }) });
    expect(ok.status).toBe(200);
  });
});

describe("pixel and events joined by the tracker's user_id cookie", () => {
  const shop = "https://shop.example";
  let app: App;
  beforeAll(async () => {
    app = await startTestApp({ env: { CORS_ALLOWED_ORIGINS: `${shop},*` } });
  });
  afterAll(async () => {
    await app.stop();
  });

  /** Sends one click with these request headers; returns the anonymous_id its row got. */
  async function anonymousIdOf(headers: Record<string, string>, method: "Send" | "SendBatch" = "Send"): Promise<unknown> {
    const event = { element_click: { element_type: "movie", page_type: "category" } };
    const { status, body } = await callIngest(app, method, method === "Send" ? event : { events: [event] }, headers);
    expect(status).toBe(200);
    const eventId = (method === "Send" ? body.eventId : (body.results as { eventId: string }[])[0]?.eventId) as string;
    await drained(app);
    const rows = await clickhouseRows(app, "element_click", `event_id = '${eventId}'`);
    expect(rows).toHaveLength(1);
    return rows[0]?.anonymous_id;
  }

  it("records the pixel's user_id with events a listed origin sends with credentials, so the two join", async () => {
    const trackers = createClient(TrackerService, createConnectTransport({ baseUrl: app.url, httpVersion: "1.1", interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${ADMIN_TOKEN}`), next(req))] }));
    const trackerId = (await trackers.createTracker({ value: "join" })).tracker?.uuid ?? "";
    const visitor = randomUUID();
    const pixel = await fetch(`${app.url}/track?id=${trackerId}`, { headers: { cookie: `user_id=${visitor}` } });
    expect(pixel.status).toBeLessThan(300);
    expect(await anonymousIdOf({ origin: shop, cookie: `theme=dark; user_id=${visitor.toUpperCase()}` })).toBe(visitor);
    expect(await anonymousIdOf({ origin: shop, cookie: `user_id=${visitor}` }, "SendBatch")).toBe(visitor);
    const joined = await app.clickhouse.client.query({
      query: `SELECT count() AS n FROM ${app.clickhouse.database}.tracker_events AS t
              INNER JOIN ${app.clickhouse.database}.element_click AS e ON e.anonymous_id = t.user_id
              WHERE t.tracker_id = {tracker:UUID}`,
      query_params: { tracker: trackerId },
      format: "JSONEachRow",
    });
    expect((await joined.json<{ n: number | string }>()).map(({ n }) => Number(n))).toEqual([2]);
  });

  it("records nothing without the cookie, from an origin not listed, or with no origin at all", async () => {
    const visitor = randomUUID();
    expect(await anonymousIdOf({ origin: shop })).toBeNull();
    expect(await anonymousIdOf({ origin: "https://elsewhere.example", cookie: `user_id=${visitor}` })).toBeNull();
    expect(await anonymousIdOf({ cookie: `user_id=${visitor}` })).toBeNull();
  });

  it.each([
    ["not a UUID", "user_id=not-a-uuid"],
    ["an escaped NUL", "user_id=%00"],
    ["a UUID with trailing junk", `user_id=${randomUUID()}x`],
    ["an empty value", "user_id="],
    ["kilobytes of cookies", `junk=${"x".repeat(12_000)}; user_id=${"y".repeat(2_000)}`],
  ])("ignores a hostile cookie (%s): the event is taken, without an id", async (_name, cookie) => {
    expect(await anonymousIdOf({ origin: shop, cookie })).toBeNull();
  });
});
