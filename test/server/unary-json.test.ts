import net from "node:net";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { App } from "../../services/app.js";
import { UnaryJsonRoutes } from "../../services/core/unary-json.js";
import { overHttp1, overHttp2 } from "../support/raw-http.js";
import { ADMIN_TOKEN, startTestApp } from "../support/stores.js";

// Each request names its own request id, so both paths echo the same one and the answers compare whole.
const JSON_HEADERS = { "content-type": "application/json", "x-request-id": "unary-json-comparison" };

describe("Connect unary JSON over HTTP/1.1", () => {
  let app: App;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(async () => {
    await app.stop();
  });

  const cases: { name: string; path: string; headers?: Record<string, string>; body: string }[] = [
    { name: "a validation error naming the field", path: "/funnel.ingest.v1.IngestService/Send", body: JSON.stringify({ event: "element_click", data: { element_type: 7 } }) },
    { name: "an unknown event type", path: "/funnel.ingest.v1.IngestService/Send", body: JSON.stringify({ event: "nope", data: {} }) },
    { name: "a body that is not JSON", path: "/funnel.ingest.v1.IngestService/Send", body: "{not json" },
    { name: "an empty body", path: "/funnel.ingest.v1.IngestService/Send", body: "" },
    { name: "a field the message does not have", path: "/funnel.ingest.v1.IngestService/Send", body: JSON.stringify({ event: "element_click", colour: "red" }) },
    { name: "an admin method without the token", path: "/funnel.tracker.v1.TrackerService/ListTrackers", body: "{}" },
    { name: "an admin method with a wrong token", path: "/funnel.tracker.v1.TrackerService/ListTrackers", headers: { authorization: "Bearer wrong" }, body: "{}" },
    {
      name: "an unknown tracker",
      path: "/funnel.tracker.v1.TrackerService/GetTracker",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      body: JSON.stringify({ id: randomUUID() }),
    },
    { name: "a quality report for a quiet past week", path: "/funnel.ingest.v1.IngestService/GetQuality", headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, body: JSON.stringify({ from: "2001-01-01", to: "2001-01-07" }) },
    { name: "a malformed deadline", path: "/funnel.ingest.v1.IngestService/GetQuality", headers: { "connect-timeout-ms": "soon", authorization: `Bearer ${ADMIN_TOKEN}` }, body: "{}" },
    { name: "a deadline longer than a timer can wait", path: "/funnel.ingest.v1.IngestService/GetQuality", headers: { "connect-timeout-ms": "3000000000", authorization: `Bearer ${ADMIN_TOKEN}` }, body: "{}" },
    { name: "a charset in the content type", path: "/funnel.ingest.v1.IngestService/GetQuality", headers: { "content-type": "application/json; charset=utf-8", authorization: `Bearer ${ADMIN_TOKEN}` }, body: JSON.stringify({ from: "2001-01-01", to: "2001-01-02" }) },
    { name: "a body over the size limit", path: "/funnel.ingest.v1.IngestService/SendBatch", body: JSON.stringify({ events: [{ event: "x".repeat(5 * 1024 * 1024) }] }) },
  ];

  for (const { name, path, headers, body } of cases) {
    it(`answers ${name} exactly as connect-es does`, async () => {
      const sent = { ...JSON_HEADERS, ...headers };
      // Which path served each call: the short path takes the HTTP/1.1 one, connect-es the HTTP/2 one.
      const taken = vi.spyOn(UnaryJsonRoutes.prototype, "take");
      try {
        const fast = await overHttp1(app.url, path, sent, body);
        expect(taken.mock.results.map((result): unknown => result.value)).toContain(true);
        taken.mockClear();
        const general = await overHttp2(app.url, path, sent, body);
        expect(taken.mock.results.map((result): unknown => result.value)).not.toContain(true);
        expect(fast).toEqual(general);
      } finally {
        taken.mockRestore();
      }
    });
  }

  it("serves accepted events on both paths with the same shape", async () => {
    const send = (id: string) => JSON.stringify({ event: "element_click", event_id: id, data: { element_type: "movie", page_type: "category" } });
    const [first, second] = [randomUUID(), randomUUID()];
    const fast = await overHttp1(app.url, "/funnel.ingest.v1.IngestService/Send", JSON_HEADERS, send(first));
    const general = await overHttp2(app.url, "/funnel.ingest.v1.IngestService/Send", JSON_HEADERS, send(second));
    expect(fast.status).toBe(200);
    expect(fast.headers).toEqual(general.headers);
    expect(JSON.parse(fast.body)).toEqual({ eventId: first, status: "EVENT_STATUS_ACCEPTED" });
    expect(JSON.parse(general.body)).toEqual({ eventId: second, status: "EVENT_STATUS_ACCEPTED" });
    // A repeat over the other path is a duplicate: both paths reach one store.
    expect(JSON.parse((await overHttp2(app.url, "/funnel.ingest.v1.IngestService/Send", JSON_HEADERS, send(first))).body)).toEqual({ eventId: first, status: "EVENT_STATUS_DUPLICATE" });
  });

  it("serves HTTP/1.1 JSON itself: its one difference, an uncompressed answer where connect-es compresses", async () => {
    // 40 rejected events make an answer well over connect-es's 1 KiB compression threshold; nothing is stored.
    const body = JSON.stringify({ events: Array.from({ length: 40 }, () => ({ event: "no_such_type", data: {} })) });
    const sent = { ...JSON_HEADERS, "accept-encoding": "gzip" };
    const fast = await overHttp1(app.url, "/funnel.ingest.v1.IngestService/SendBatch", sent, body);
    const general = await overHttp2(app.url, "/funnel.ingest.v1.IngestService/SendBatch", sent, body);
    expect(fast.status).toBe(200);
    expect(general.status).toBe(200);
    expect(general.headers["content-encoding"]).toBe("gzip");
    expect(fast.headers["content-encoding"]).toBeUndefined();
    expect(JSON.parse(fast.body)).toMatchObject({ rejected: 40 });
  });

  it("lets a client go that leaves in the middle of its body, and serves the next one", async () => {
    const { port } = new URL(app.url);
    const socket = net.connect(Number(port), "127.0.0.1");
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    socket.write("POST /funnel.ingest.v1.IngestService/Send HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"event\":");
    await new Promise((resolve) => setTimeout(resolve, 50));
    socket.destroy();
    const next = await overHttp1(app.url, "/funnel.ingest.v1.IngestService/Send", JSON_HEADERS, JSON.stringify({ event: "nope", data: {} }));
    expect(next.status).toBe(400);
    expect((await fetch(`${app.url}/healthz`)).status).toBe(200);
  });

  it("counts calls on the fast path in the RPC metrics like any other", async () => {
    const metric = async () => {
      const text = await (await fetch(`${app.metricsUrl}/metrics`)).text();
      return Number(/^funnel_rpc_requests_total\{method="funnel.ingest.v1.IngestService\/GetQuality",code="invalid_argument"\} (\d+)$/m.exec(text)?.[1] ?? 0);
    };
    const before = await metric();
    const { status } = await overHttp1(app.url, "/funnel.ingest.v1.IngestService/GetQuality", { ...JSON_HEADERS, authorization: `Bearer ${ADMIN_TOKEN}` }, JSON.stringify({ from: "not a day" }));
    expect(status).toBe(400);
    expect(await metric()).toBe(before + 1);
  });
});
