import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FeedMessage } from "../../gen/funnel/seen/v1/feed_pb.js";
import type { App } from "../../services/app.js";
import { adminClients, JWT_SECRET, seenClients } from "../support/seen.js";
import { eventually, startTestApp } from "../support/stores.js";

const env = { AUTH_JWT_SECRET: JWT_SECRET, TRUSTED_PROXIES: "127.0.0.2", JOBS_MAINTENANCE_SECONDS: "1", SEEN_ALLOW_PRIVATE: "true" };

/** An open subscription: messages as they arrive, until closed. */
function subscribe(app: App, topic: string, consumer: string) {
  const received: FeedMessage[] = [];
  const controller = new AbortController();
  const done = (async () => {
    try {
      for await (const response of adminClients(app).feed.subscribe({ topic, consumer }, { signal: controller.signal })) {
        if (response.message !== undefined) received.push(response.message);
      }
      return "ended";
    } catch (error) {
      return controller.signal.aborted ? "closed" : error;
    }
  })();
  return {
    received,
    /** Waits until `count` messages have arrived. */
    has: (count: number) => eventually(async () => (received.length >= count ? received.slice() : undefined), 10_000, `${count} feed messages`),
    close: async () => {
      controller.abort();
      return done;
    },
    done,
  };
}

describe("seen topic feed", () => {
  let app: App;

  beforeAll(async () => {
    app = await startTestApp({ env });
    await adminClients(app).admin.createIntegration({
      integration: { name: "goals", tags: ["goal"], enabled: true, delivery: { case: "topic", value: { topic: "goals.seen" } } },
    });
  });
  afterAll(async () => {
    await app.stop();
  });

  const markAs = (headers: Record<string, string>, id: string) => seenClients(app, headers, "127.0.0.2").seen.markSeen({ tag: "goal", id });

  it("streams one format per identity kind, resumes after the last ack, and survives a server restart", async () => {
    await markAs({ "x-funnel-user-id": "u-1", "x-funnel-uid": "9", "x-funnel-phone-id": "p-1" }, "g-1");
    await markAs({ "x-funnel-driver-db-id": "park-1", "x-funnel-driver-uuid": "drv-1" }, "g-2");
    await markAs({ "x-funnel-device-id": "dev-1" }, "g-3");

    const first = subscribe(app, "goals.seen", "reader");
    const [client, driver, anonymous] = await first.has(3);
    expect(client).toMatchObject({ topic: "goals.seen", tag: "goal", id: "g-1", identity: { kind: { case: "client", value: { userId: "u-1", uid: "9", phoneId: "p-1", boundUids: [] } } } });
    expect(driver).toMatchObject({ id: "g-2", identity: { kind: { case: "driver", value: { dbId: "park-1", uuid: "drv-1" } } } });
    // An unauthorized mark carries no ids, not even the device it was keyed by.
    expect(anonymous).toMatchObject({ id: "g-3", identity: { kind: { case: "unauthorized", value: { deviceId: "" } } } });
    expect(new Set([client, driver, anonymous].map((message) => message?.messageId)).size).toBe(3);

    // Woken by NOTIFY: a new mark reaches the open stream.
    await markAs({ "x-funnel-user-id": "u-2" }, "g-4");
    expect((await first.has(4))[3]?.id).toBe("g-4");
    const { feed } = adminClients(app);
    expect((await feed.ack({ topic: "goals.seen", consumer: "reader", cursor: client!.cursor })).cursor).toBe(client!.cursor);
    expect(await first.close()).toBe("closed");

    // A new subscription starts after the acknowledged message: g-2 was received but not acknowledged.
    const second = subscribe(app, "goals.seen", "reader");
    expect((await second.has(3)).map((message) => message.id)).toEqual(["g-2", "g-3", "g-4"]);
    expect((await second.has(3))[0]?.messageId).toBe(driver?.messageId);
    await feed.ack({ topic: "goals.seen", consumer: "reader", cursor: second.received[1]!.cursor });
    // An older cursor does not move the position back.
    expect((await feed.ack({ topic: "goals.seen", consumer: "reader", cursor: client!.cursor })).cursor).toBe(second.received[1]!.cursor);

    // The server stops while the stream is open: the stream ends, the position is kept.
    await app.stop();
    const ended = await second.done;
    expect(ended).not.toBe("closed");
    app = await startTestApp({ env });
    await markAs({ "x-funnel-user-id": "u-3" }, "g-5");
    const third = subscribe(app, "goals.seen", "reader");
    expect((await third.has(2)).map((message) => message.id)).toEqual(["g-4", "g-5"]);
    // Another consumer has its own position: it starts at the oldest retained message.
    const other = subscribe(app, "goals.seen", "auditor");
    expect((await other.has(5)).map((message) => message.id)).toEqual(["g-1", "g-2", "g-3", "g-4", "g-5"]);
    await third.close();
    await other.close();
  });

  it("refuses unknown topics, missing tokens and bad cursors", async () => {
    const unknown = subscribe(app, "nobody.reads", "reader");
    expect(await unknown.done).toMatchObject({ code: Code.NotFound });
    const anonymous = seenClients(app).feed;
    await expect(anonymous.ack({ topic: "goals.seen", consumer: "reader", cursor: "1.1" })).rejects.toMatchObject({ code: Code.Unauthenticated });
    await expect(adminClients(app).feed.ack({ topic: "goals.seen", consumer: "reader", cursor: "nope" })).rejects.toMatchObject({ code: Code.InvalidArgument });
  });

  it("drops messages past the topic's retention", async () => {
    await markAs({ "x-funnel-user-id": "u-old" }, "g-old");
    // Age the message beyond the topic's retention (7 days by default).
    await app.pool.query("UPDATE seen_topic_messages SET created_at = now() - interval '8 days' WHERE item_id = 'g-old'");
    await eventually(async () => {
      const { rows } = await app.pool.query("SELECT 1 FROM seen_topic_messages WHERE item_id = 'g-old'");
      return rows.length === 0 ? true : undefined;
    }, 5_000, "the old message to be deleted");
    const { rows } = await app.pool.query("SELECT 1 FROM seen_topic_messages WHERE item_id = 'g-1'");
    expect(rows).toHaveLength(1);
  });
});
