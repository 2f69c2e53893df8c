import { durationFromMs, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../services/app.js";
import { adminClients, Consumer, JWT_SECRET, seenClients } from "../support/seen.js";
import { eventually, startTestApp } from "../support/stores.js";

const env = { AUTH_JWT_SECRET: JWT_SECRET, TRUSTED_PROXIES: "127.0.0.2", SEEN_ALLOW_PRIVATE: "true" };
const failure = (promise: Promise<unknown>) => promise.then(() => undefined, (e: unknown) => ConnectError.from(e));

describe("SeenAdminService for the console: delivery pages, attempt logs, topics", () => {
  let app: App;
  let consumer: Consumer;
  const admin = () => adminClients(app).admin;
  const markAs = (tag: string, id: string) => seenClients(app, { "x-funnel-user-id": "u-1" }, "127.0.0.2").seen.markSeen({ tag, id });

  beforeAll(async () => {
    app = await startTestApp({ env });
    consumer = await new Consumer().start();
    // The first request for each mark fails, the second succeeds.
    const seen = new Map<string, number>();
    consumer.answer = (request) => {
      const key = JSON.stringify(request.body);
      const n = (seen.get(key) ?? 0) + 1;
      seen.set(key, n);
      return n === 1 ? { status: 500, body: "not yet, try again" } : { status: 200, body: "ok" };
    };
    const api = { url: consumer.url, initialBackoff: durationFromMs(20), maxBackoff: durationFromMs(50), maxAttempts: 5 };
    await admin().createIntegration({ integration: { name: "goals-api", tags: ["goal", "promo"], enabled: true, delivery: { case: "api", value: api } } });
    await admin().createIntegration({ integration: { name: "goals-feed", tags: ["goal"], enabled: true, delivery: { case: "topic", value: { topic: "goals.seen" } } } });
    for (const [tag, id] of [["goal", "g-1"], ["goal", "g-2"], ["promo", "p-1"], ["goal", "g-3"]] as const) await markAs(tag, id);
  });
  afterAll(async () => {
    await app.stop();
    await consumer.stop();
  });

  it("pages api deliveries newest first, filtered by tag and time", async () => {
    const first = await admin().listDeliveries({ integration: "goals-api", limit: 3 });
    expect(first.deliveries.map((d) => d.itemId)).toEqual(["g-3", "p-1", "g-2"]);
    expect(first.nextPageToken).not.toBe("");
    const second = await admin().listDeliveries({ integration: "goals-api", limit: 3, pageToken: first.nextPageToken });
    expect(second.deliveries.map((d) => d.itemId)).toEqual(["g-1"]);
    expect(second.nextPageToken).toBe("");
    expect((await admin().listDeliveries({ tag: "promo" })).deliveries.map((d) => d.itemId)).toEqual(["p-1"]);
    const p1 = first.deliveries[1]?.createdAt;
    expect(p1).toBeDefined();
    const since = await admin().listDeliveries({ from: p1 });
    expect(since.deliveries.map((d) => d.itemId)).toEqual(["g-3", "p-1"]);
    const before = await admin().listDeliveries({ to: p1 });
    expect(before.deliveries.map((d) => d.itemId)).toEqual(["g-2", "g-1"]);
  });

  it("shows each attempt of a delivery: status, duration, error, the answer's first bytes and the URL", async () => {
    const [delivery] = (await admin().listDeliveries({ tag: "promo" })).deliveries;
    const shown = await eventually(async () => {
      const got = (await admin().getDelivery({ id: delivery?.id ?? "" })).delivery;
      return got?.status === "delivered" ? got : undefined;
    }, 15_000, "the delivery to succeed on its second attempt");
    expect(shown.attemptLog.map((a) => [a.attempt, a.httpStatus, a.outcome, a.responseBody, a.url])).toEqual([
      [1, 500, "retry", "not yet, try again", consumer.url],
      [2, 200, "delivered", "ok", consumer.url],
    ]);
    expect(shown.attemptLog[0]?.error).not.toBe("");
    expect(shown.attemptLog[1]?.error).toBe("");
    expect(shown.attemptLog[0]?.durationMs).toBeGreaterThan(0);
    expect(timestampDate(shown.attemptLog[1]?.attemptedAt ?? timestampFromDate(new Date(0))).getTime()).toBeGreaterThan(timestampDate(shown.attemptLog[0]?.attemptedAt ?? timestampFromDate(new Date())).getTime() - 1);
    // A list leaves the log out.
    expect((await admin().listDeliveries({ tag: "promo" })).deliveries[0]?.attemptLog).toEqual([]);
  });

  it("lists topics with their messages and each consumer's lag", async () => {
    const { feed } = adminClients(app);
    const controller = new AbortController();
    const cursors: string[] = [];
    const reading = (async () => {
      try {
        for await (const response of feed.subscribe({ topic: "goals.seen", consumer: "reader" }, { signal: controller.signal })) {
          cursors.push(response.message?.cursor ?? "");
        }
      } catch {
        // Closed by the test.
      }
    })();
    await eventually(async () => (cursors.length >= 3 ? true : undefined), 10_000, "three feed messages");
    controller.abort();
    await reading;
    await feed.ack({ topic: "goals.seen", consumer: "reader", cursor: cursors[0] ?? "" });

    const { topics } = await admin().listTopics({});
    expect(topics).toHaveLength(1);
    const [topic] = topics;
    expect(topic).toMatchObject({ name: "goals.seen", integrations: ["goals-feed"], messages: 3n });
    expect(topic?.retention?.seconds).toBe(7n * 86_400n);
    expect(topic?.oldestMessageAt).toBeDefined();
    expect(topic?.consumers.map((c) => [c.name, c.lagMessages])).toEqual([["reader", 2n]]);
    expect(topic?.consumers[0]?.lagSeconds).toBeGreaterThan(0);
    expect(topic?.consumers[0]?.ackedAt).toBeDefined();
  });

  it("refuses a bad page token, tag or range naming the field", async () => {
    const cases: [Parameters<ReturnType<typeof admin>["listDeliveries"]>[0], RegExp][] = [
      [{ pageToken: "garbage" }, /^page_token: not a token this service issued/],
      [{ tag: "no spaces" }, /^tag: /],
      [{ from: timestampFromDate(new Date(2_000)), to: timestampFromDate(new Date(1_000)) }, /^from: must be before to/],
    ];
    for (const [req, message] of cases) {
      const error = await failure(admin().listDeliveries(req));
      expect(error?.code).toBe(Code.InvalidArgument);
      expect(error?.rawMessage).toMatch(message);
    }
    expect((await failure(seenClients(app).admin.listTopics({})))?.code).toBe(Code.Unauthenticated);
  });
});
