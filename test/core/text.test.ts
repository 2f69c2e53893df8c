import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../services/app.js";
import { adminClients, JWT_SECRET, postSeen, token } from "../support/seen.js";
import { ADMIN_TOKEN, startTestApp } from "../support/stores.js";

describe("every RPC and route refuses text Postgres would not store, naming the field", () => {
  let app: App;
  beforeAll(async () => {
    app = await startTestApp({ env: { AUTH_JWT_SECRET: JWT_SECRET } });
  });
  afterAll(async () => {
    await app.stop();
  });

  /** A Connect JSON call as a hostile client makes it (JSON.stringify writes a lone surrogate as `\ud800`). */
  const call = async (path: string, body: unknown, token = ADMIN_TOKEN) => {
    const res = await fetch(`${app.url}/${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify(body),
    });
    const answer = (await res.json()) as { details?: { type: string; debug?: unknown }[]; [key: string]: unknown };
    // The detail's bytes (`value`) say what its `debug` JSON says.
    if (answer.details !== undefined) answer.details = answer.details.map(({ type, debug }) => ({ type, debug }));
    return { status: res.status, body: answer };
  };
  /** The answer naming one field: the message, and the same field and reason in the BadRequest detail. */
  const refused = (message: string) => {
    const colon = message.indexOf(": ");
    const violation = { field: message.slice(0, colon), description: message.slice(colon + 2) };
    return { status: 400, body: { code: "invalid_argument", message, details: [{ type: "google.rpc.BadRequest", debug: { fieldViolations: [violation] } }] } };
  };

  it("answers invalid_argument with the field path on Postback, Seen, Tracker and Ingest RPCs, storing nothing", async () => {
    expect(await call("funnel.postback.v1.DeliveryService/ListDeliveries", { filter: { stag: "p_\u0000" } })).toEqual(refused("filter.stag: contains a NUL character"));
    expect(await call("funnel.postback.v1.PartnerService/CreatePartner", { partner: { id: "nul", name: "Bad\u0000Name", enabled: true } })).toEqual(
      refused("partner.name: contains a NUL character"),
    );
    expect(await call("funnel.postback.v1.PostbackService/RecordDownload", { stag: "nul_1", params: { utm: "a\u0000" } })).toEqual(refused("params.utm: contains a NUL character"));
    expect(await call("funnel.seen.v1.SeenService/LookupSeen", { tag: "t", ids: ["ok", "b\u0000"], identity: { unauthorized: { deviceId: "d" } } })).toEqual(
      refused("ids[1]: contains a NUL character"),
    );
    expect(await call("funnel.tracker.v1.TrackerService/CreateTracker", { value: "x\u0000" })).toEqual(refused("value: contains a NUL character"));
    expect(await call("funnel.ingest.v1.IngestService/GetQuality", { from: "\u0000" })).toEqual(refused("from: contains a NUL character"));
    expect((await app.pool.query("SELECT 1 FROM postback_partners WHERE id = 'nul'")).rows).toEqual([]);
    expect((await app.pool.query("SELECT 1 FROM postback_downloads WHERE stag = 'nul_1'")).rows).toEqual([]);
  });

  it("checks a server-streaming request as its handler reads it", async () => {
    const stream = adminClients(app).feed.subscribe({ topic: "goals\u0000", consumer: "reader" });
    const error = await (async () => {
      for await (const message of stream) return message;
    })().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConnectError);
    expect([(error as ConnectError).code, (error as ConnectError).rawMessage]).toEqual([Code.InvalidArgument, "topic: contains a NUL character"]);
  });

  it("refuses a Seen identity whose token claim holds a lone surrogate, naming the claim", async () => {
    const claims = { sub: "user-\ud800", exp: Math.floor(Date.now() / 1000) + 600 };
    const { status, body } = await call("funnel.seen.v1.SeenService/MarkSeen", { tag: "t", id: "claimed" }, token(claims));
    expect(status).toBe(400);
    expect(body).toMatchObject({ code: "invalid_argument", message: expect.stringMatching(/user id.*: contains a lone surrogate \(not valid Unicode\)$/) as unknown });
    expect((await app.pool.query("SELECT 1 FROM seen_marks WHERE item_id = 'claimed'")).rows).toEqual([]);
  });

  it("counts an ingest event with bad text as rejected for its reason", async () => {
    const { status, body } = await call("funnel.ingest.v1.IngestService/SendBatch", {
      events: [
        { event: "element_click", token: "\u0000", data: { element_type: "a", page_type: "b" } },
        { event: "element_click", data: { element_type: "a", page_type: "b\u0000" } },
      ],
    });
    expect(status).toBe(200);
    expect(body.results).toEqual([
      { status: "EVENT_STATUS_REJECTED", reason: "REJECT_REASON_INVALID_ENVELOPE", message: "token: contains a NUL character" },
      { status: "EVENT_STATUS_REJECTED", reason: "REJECT_REASON_INVALID_DATA", message: "data.page_type: contains a NUL character" },
    ]);
  });

  it("answers 400 naming the parameter on the plain routes, and records nothing", async () => {
    const download = await fetch(`${app.url}/download?stag=nul_2&utm=a%00b`, { redirect: "manual" });
    expect([download.status, download.headers.get("retry-after"), await download.json()]).toEqual([400, null, { error: "utm: contains a NUL character" }]);
    const named = await fetch(`${app.url}/download?stag=nul_3&a%00=1`, { redirect: "manual" });
    expect([named.status, await named.json()]).toEqual([400, { error: "query: a parameter name contains a NUL character" }]);
    expect((await app.pool.query("SELECT 1 FROM postback_downloads WHERE stag IN ('nul_2', 'nul_3')")).rows).toEqual([]);

    expect((await fetch(`${app.url}/track?id=%00`)).status).toBe(400);
    const stats = await fetch(`${app.url}/stats?tracker_id=00000000-0000-4000-8000-000000000000&from=%00&to=2026-01-01`);
    expect(stats.status).toBe(400);

    // Bytes that are not UTF-8 are refused, not stored as U+FFFD.
    const bytes = Buffer.concat([Buffer.from('{"tag": "t", "id": "a'), Buffer.from([0xff]), Buffer.from('"}')]);
    expect(await postSeen(app, bytes as unknown as string)).toMatchObject({ status: 400, body: { error: "body: not valid UTF-8" } });
    expect((await app.pool.query("SELECT 1 FROM seen_marks WHERE tag = 't'")).rows).toEqual([]);
  });
});
