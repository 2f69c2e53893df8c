import { randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventSchema } from "../../gen/funnel/ingest/v1/ingest_pb.js";
import type { App } from "../../services/app.js";
import { createMetricsRegistry } from "../../services/core/metrics.js";
import { eventTypes } from "../../services/ingest/registry.js";
import { acceptEvent, checkEvent } from "../../services/ingest/validation.js";
import { IngestWriter } from "../../services/ingest/writer.js";
import { callIngest, clickhouseRows, drained } from "../support/ingest.js";
import { postSeen } from "../support/seen.js";
import { startTestApp } from "../support/stores.js";

/**
 * Callers that share group commits with hostile ones: 16 honest callers and 2
 * poisoning ones run at once, each sending {@link ROUNDS} requests one after
 * the other, so their requests keep landing in the same groups.
 */
const HONEST = 16;
const POISONERS = 2;
const ROUNDS = 12;

const click = { element_type: "movie", page_type: "category" };

/** Runs `honest` and `poison` callers together, `rounds` calls each; returns what each side got. */
async function crowd<H, P>(
  honest: (caller: number, round: number) => Promise<H>,
  poison: (caller: number, round: number) => Promise<P>,
  rounds = ROUNDS,
): Promise<{ honest: H[]; poison: P[] }> {
  const run = async <T>(count: number, call: (caller: number, round: number) => Promise<T>): Promise<T[]> => {
    const results = await Promise.all(
      Array.from({ length: count }, async (_, caller) => {
        const mine: T[] = [];
        for (let round = 0; round < rounds; round += 1) mine.push(await call(caller, round));
        return mine;
      }),
    );
    return results.flat();
  };
  const [h, p] = await Promise.all([run(HONEST, honest), run(POISONERS, poison)]);
  return { honest: h, poison: p };
}

describe("one caller's bad text never fails another caller's request", () => {
  let app: App;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(async () => {
    await app.stop();
  });

  it("ingest Send: every honest event is stored while others send a NUL in session_id or a lone surrogate in data", async () => {
    const { honest, poison } = await crowd(
      async (caller, round) => {
        const eventId = randomUUID();
        const answer = await callIngest(app, "Send", { event: "element_click", event_id: eventId, session_id: `honest-${caller}`, seq: round + 1, data: click });
        return { eventId, ...answer };
      },
      (caller) =>
        callIngest(
          app,
          "Send",
          caller === 0
            ? { event: "element_click", session_id: "poison\u0000session", data: click }
            : { event: "element_click", data: { element_type: "movie", page_type: "bad \ud800 text" } },
        ),
    );
    expect(honest.map((answer) => [answer.status, answer.body.status])).toEqual(honest.map(() => [200, "EVENT_STATUS_ACCEPTED"]));
    expect(new Set(poison.map((answer) => `${answer.status} ${answer.body.code as string} ${answer.body.message as string}`))).toEqual(
      new Set(["400 invalid_argument session_id: contains a NUL character", "400 invalid_argument data.page_type: contains a lone surrogate (not valid Unicode)"]),
    );
    await drained(app);
    const ids = honest.map((answer) => `'${answer.eventId}'`).join(",");
    expect(await clickhouseRows(app, "element_click", `event_id IN (${ids})`)).toHaveLength(HONEST * ROUNDS);
    expect(await clickhouseRows(app, "element_click", "page_type LIKE 'bad %' OR session_id LIKE 'poison%'")).toEqual([]);
  });

  it("ingest SendBatch: the bad event alone is rejected and its 99 neighbours are stored", async () => {
    // Every event of this test carries the run's session, so ClickHouse can count them.
    const session = `batch-${randomUUID()}`;
    const batch = (poisoned: boolean, caller: number) => {
      const events: Record<string, unknown>[] = Array.from({ length: 100 }, () => ({ event: "element_click", session_id: session, data: click }));
      if (poisoned) {
        events[37] = caller === 0
          ? { event: "element_click", session_id: "poison\u0000batch", data: click }
          : { event: "element_click", session_id: session, data: { element_type: "movie\ud800", page_type: "category" } };
      }
      return events;
    };
    const send = (poisoned: boolean, caller: number) => callIngest(app, "SendBatch", { events: batch(poisoned, caller) });
    const rounds = 4;
    const { honest, poison } = await crowd(
      (caller) => send(false, caller),
      (caller) => send(true, caller),
      rounds,
    );
    for (const answer of honest) {
      expect(answer.status).toBe(200);
      // Proto3 JSON leaves zero counts out.
      expect([answer.body.accepted, answer.body.rejected]).toEqual([100, undefined]);
    }
    for (const answer of poison) {
      expect(answer.status).toBe(200);
      expect(answer.body).toMatchObject({ accepted: 99, rejected: 1 });
      const results = answer.body.results as Record<string, unknown>[];
      expect(results.filter((result) => result.status === "EVENT_STATUS_ACCEPTED")).toHaveLength(99);
      expect([
        { reason: "REJECT_REASON_INVALID_ENVELOPE", message: "session_id: contains a NUL character" },
        { reason: "REJECT_REASON_INVALID_DATA", message: "data.element_type: contains a lone surrogate (not valid Unicode)" },
      ]).toContainEqual({ reason: results[37]?.reason, message: results[37]?.message });
    }
    await drained(app);
    const rows = await app.clickhouse.client.query({
      query: `SELECT count() AS n, uniqExact(event_id) AS ids FROM ${app.clickhouse.database}.element_click WHERE session_id = {session:String}`,
      query_params: { session },
      format: "JSONEachRow",
    });
    const stored = (HONEST * 100 + POISONERS * 99) * rounds;
    // UInt64 is a string or a number depending on the ClickHouse client's engine.
    expect((await rows.json<{ n: string | number; ids: string | number }>()).map(({ n, ids }) => [Number(n), Number(ids)])).toEqual([[stored, stored]]);
    expect(await clickhouseRows(app, "element_click", "session_id LIKE 'poison%' OR element_type LIKE 'movie_%'")).toEqual([]);
  });

  it("ingest over binary Connect: a NUL in session_id fails that call alone, naming the field", async () => {
    const body = toBinary(EventSchema, create(EventSchema, { event: "element_click", sessionId: "bin\u0000ary", data: click }));
    const res = await fetch(`${app.url}/funnel.ingest.v1.IngestService/Send`, { method: "POST", headers: { "content-type": "application/proto" }, body });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      code: "invalid_argument",
      message: "session_id: contains a NUL character",
      details: [{ type: "google.rpc.BadRequest", debug: { fieldViolations: [{ field: "session_id", description: "contains a NUL character" }] } }],
    });
  });

  it("the ingest writer fails only the request Postgres refuses, even one that slipped past validation", async () => {
    const metrics = createMetricsRegistry();
    const writer = new IngestWriter({ pool: app.pool, analytics: app.analytics, metrics, log: app.log, maxInFlight: 1 });
    const session = `writer-${randomUUID()}`;
    const accepted = () => acceptEvent(checkEvent(create(EventSchema, { event: "element_click", sessionId: session, data: click }), eventTypes, 0, 10_000), "anonymous", new Date());
    // The first request commits alone; the others gather behind it into one group.
    const requests = Array.from({ length: 20 }, (_, i) => (i === 7 ? [accepted(), { ...accepted(), sessionId: "slipped\u0000past" }] : [accepted()]));
    const settled = await Promise.allSettled(requests.map((events) => writer.write(events)));
    expect(settled.map((result) => result.status)).toEqual(requests.map((_, i) => (i === 7 ? "rejected" : "fulfilled")));
    expect(((settled[7] as PromiseRejectedResult).reason as { code?: string }).code).toBe("22021");
    const splits = (await metrics.getSingleMetric("funnel_group_commit_splits_total")?.get())?.values.find((value) => value.labels.group === "ingest_events");
    expect(splits?.value).toBeGreaterThan(0);
    await drained(app);
    // A request is stored whole or not at all: the refused one's valid event is not stored either.
    expect(await clickhouseRows(app, "element_click", `session_id = '${session}'`)).toHaveLength(19);
  });

  it("Seen MarkSeen: every honest mark is stored while others mark an id with a lone surrogate", async () => {
    const markSeen = async (device: string, id: string) => {
      const res = await fetch(`${app.url}/funnel.seen.v1.SeenService/MarkSeen`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-funnel-device-id": device },
        body: JSON.stringify({ tag: "poison", id }),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const run = randomUUID().slice(0, 8);
    const { honest, poison } = await crowd(
      async (caller, round) => {
        const id = `${run}-${caller}-${round}`;
        return { id, answer: await markSeen(`device-${run}-${caller}`, id) };
      },
      // JSON.stringify writes the lone surrogate as `\ud800`, as a hostile client would.
      (caller, round) => postSeen(app, JSON.stringify({ tag: "poison", id: `${run}-\ud800-${caller}-${round}` }), { headers: { "x-funnel-device-id": `poisoner-${run}` } }),
    );
    for (const { answer } of honest) expect(answer).toMatchObject({ status: 200, body: { created: true } });
    for (const answer of poison) expect(answer).toMatchObject({ status: 400, body: { error: "id: contains a lone surrogate (not valid Unicode)" } });
    const { rows } = await app.pool.query<{ item_id: string }>("SELECT item_id FROM seen_marks WHERE tag = 'poison' AND item_id LIKE $1", [`${run}-%`]);
    expect(rows.map((row) => row.item_id).sort()).toEqual(honest.map(({ id }) => id).sort());
  });

  it("Seen over plain HTTP: a lone surrogate or a NUL in the id is a 400 naming the field", async () => {
    expect(await postSeen(app, '{"tag": "poison", "id": "plain-\\ud800"}')).toMatchObject({ status: 400, body: { error: "id: contains a lone surrogate (not valid Unicode)" } });
    expect(await postSeen(app, '{"tag": "poison", "id": "plain-\\u0000"}')).toMatchObject({ status: 400, body: { error: "id: contains a NUL character" } });
    expect((await app.pool.query("SELECT 1 FROM seen_marks WHERE item_id LIKE 'plain-%'")).rows).toEqual([]);
  });
});
