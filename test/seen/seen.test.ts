import { durationFromMs, timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../services/app.js";
import { withTransaction } from "../../services/core/postgres.js";
import { markMany } from "../../services/seen/sql/marks.js";
import { adminClients, Consumer, deliveriesOf, JWT_SECRET, postSeen, seenClients, token } from "../support/seen.js";
import { runCliAsAdmin } from "../support/cli.js";
import { deliveriesSettled, eventually, startTestApp } from "../support/stores.js";
import { deliverQueue as seenDeliverQueue } from "../../services/seen/queue.js";

const funnel = runCliAsAdmin;
const SERVICE_TOKEN = "seen-service-token-0123456789";


const bearer = (claims: Record<string, unknown>) => ({ authorization: `Bearer ${token(claims)}` });

describe("seen marks and identities", () => {
  let app: App;
  const consumer = new Consumer();

  beforeAll(async () => {
    await consumer.start();
    app = await startTestApp({
      env: {
        AUTH_JWT_SECRET: JWT_SECRET,
        TRUSTED_PROXIES: "127.0.0.2",
        SEEN_SERVICE_TOKEN: SERVICE_TOKEN,
        // Drivers' tokens name the park as `park_id`.
        SEEN_IDENTITY_CLAIMS: "db_id=park_id",
        JOBS_MAINTENANCE_SECONDS: "1",
        SEEN_ALLOW_PRIVATE: "true",
      },
    });
    const { admin } = adminClients(app);
    await admin.createIntegration({
      integration: { name: "promotions", tags: ["promo", "ids"], enabled: true, delivery: { case: "api", value: { url: consumer.url } } },
    });
  });
  afterAll(async () => {
    await app.stop();
    await consumer.stop();
  });

  /** Waits for the delivery of (tag, id) and returns the body the consumer got. */
  const deliveredBody = async (tag: string, id: string) => {
    const [delivery] = await eventually(async () => {
      const rows = await deliveriesOf(app, tag, id);
      return rows.length > 0 && rows.every((row) => row.status === "delivered") ? rows : undefined;
    }, 10_000, `delivery of ${tag}/${id}`);
    const request = consumer.received.find((received) => received.headers["idempotency-key"] === delivery?.id);
    return request?.body;
  };

  describe("identity kinds", () => {
    const cases = [
      {
        kind: "client",
        claims: { sub: "user-1", uid: "100", bound_uids: ["101", 102], phone_id: "phone-1" },
        headers: { "x-funnel-user-id": "user-1", "x-funnel-uid": "100", "x-funnel-bound-uids": "101, 102", "x-funnel-phone-id": "phone-1" },
        identity: { case: "client", value: { userId: "user-1", uid: "100", boundUids: ["101", "102"], phoneId: "phone-1" } },
        delivered: { kind: "client", user_id: "user-1", uid: "100", bound_uids: ["101", "102"], phone_id: "phone-1" },
      },
      {
        kind: "driver",
        claims: { sub: "d-1", park_id: "park-7", uuid: "drv-9" },
        headers: { "x-funnel-driver-db-id": "park-7", "x-funnel-driver-uuid": "drv-9" },
        identity: { case: "driver", value: { dbId: "park-7", uuid: "drv-9" } },
        delivered: { kind: "driver", db_id: "park-7", uuid: "drv-9" },
      },
      {
        kind: "unauthorized",
        claims: { device_id: "device-5" },
        headers: { "x-funnel-device-id": "device-5" },
        identity: { case: "unauthorized", value: { deviceId: "device-5" } },
        delivered: { kind: "unauthorized" },
      },
    ] as const;

    for (const sample of cases) {
      it(`${sample.kind}: through a token and through trusted gateway headers, one key`, async () => {
        const id = `${sample.kind}-1`;
        const viaToken = await seenClients(app, bearer(sample.claims)).seen.markSeen({ tag: "ids", id });
        expect(viaToken.created).toBe(true);
        expect(viaToken.identity?.kind).toMatchObject(sample.identity);
        const body = await deliveredBody("ids", id);
        expect(body).toEqual({ delivery_id: expect.any(String) as unknown, tag: "ids", id, seen_at: expect.any(String) as unknown, ...sample.delivered });

        // The gateway asserts the same identity: the mark is already there.
        const viaGateway = await postSeen(app, JSON.stringify({ tag: "ids", id }), { from: "127.0.0.2", headers: sample.headers });
        expect(viaGateway.status).toBe(200);
        expect(viaGateway.body).toMatchObject({ firstSeenAt: expect.any(String) as unknown });
        expect(viaGateway.body.created).toBeUndefined(); // false is the JSON default
        expect((await seenClients(app, sample.headers, "127.0.0.2").seen.isSeen({ tag: "ids", id })).seen).toBe(true);
        expect(await deliveriesOf(app, "ids", id)).toHaveLength(1);
      });
    }

    it("ignores identity headers from a peer that is not a trusted proxy", async () => {
      const forged = { "x-funnel-user-id": "victim", "x-funnel-driver-db-id": "park-7", "x-funnel-driver-uuid": "drv-9" };
      const plain = await postSeen(app, JSON.stringify({ tag: "ids", id: "forged-1" }), { from: "127.0.0.1", headers: forged });
      expect(plain.status).toBe(200);
      expect(plain.body.identity).toEqual({ unauthorized: {} });
      const rpc = await seenClients(app, forged, "127.0.0.1").seen.markSeen({ tag: "ids", id: "forged-2" });
      expect(rpc.identity?.kind.case).toBe("unauthorized");
      // The victim has no marks; the driver of the forged headers neither.
      const lookups = adminClients(app).seen;
      expect((await lookups.lookupSeen({ identity: { kind: { case: "client", value: { userId: "victim" } } }, tag: "ids", ids: ["forged-1", "forged-2"] })).items).toEqual([]);
      expect((await lookups.lookupSeen({ identity: { kind: { case: "driver", value: { dbId: "park-7", uuid: "drv-9" } } }, tag: "ids", ids: ["forged-1"] })).items).toEqual([]);
      const body = await deliveredBody("ids", "forged-1");
      expect(body).toMatchObject({ kind: "unauthorized" });
      expect(body).not.toHaveProperty("user_id");
    });

    it("rejects a token that does not verify", async () => {
      const forgedToken = `${token({ sub: "u" }).slice(0, -4)}AAAA`;
      await expect(seenClients(app, { authorization: `Bearer ${forgedToken}` }).seen.markSeen({ tag: "ids", id: "bad-token" })).rejects.toMatchObject({
        code: Code.Unauthenticated,
      });
      const plain = await postSeen(app, JSON.stringify({ tag: "ids", id: "bad-token" }), { headers: { authorization: `Bearer ${forgedToken}` } });
      expect(plain.status).toBe(401);
      expect(await deliveriesOf(app, "ids", "bad-token")).toEqual([]);
    });

    it("rejects an expired token and a malformed authorization header instead of marking anonymously", async () => {
      const good = token({ sub: "u-1" });
      const headers = [
        `Bearer ${token({ sub: "u-1", exp: Date.UTC(2001, 0, 1) / 1000 })}`,
        `Bearer ${good} extra`,
        "Bearer a b",
        "Bearer",
        `Basic ${Buffer.from("user:password").toString("base64")}`,
        `Bearer  ${good}`,
        good,
      ];
      for (const [index, authorization] of headers.entries()) {
        const id = `malformed-${index}`;
        await expect(seenClients(app, { authorization }).seen.markSeen({ tag: "ids", id }), authorization).rejects.toMatchObject({ code: Code.Unauthenticated });
        const plain = await postSeen(app, JSON.stringify({ tag: "ids", id }), { headers: { authorization } });
        expect(plain.status, authorization).toBe(401);
        expect(plain.body.error).toMatch(/^(token|authorization): /);
        expect(await deliveriesOf(app, "ids", id)).toEqual([]);
      }
      // Without the header, the caller is anonymous.
      expect((await postSeen(app, JSON.stringify({ tag: "ids", id: "malformed-none" }))).body.identity).toEqual({ unauthorized: {} });
    });
  });

  it("rejects bad input with the field named and stores nothing", async () => {
    const { seen } = seenClients(app);
    for (const [request, field] of [
      [{ tag: "", id: "x" }, "tag: required"],
      [{ tag: "bad tag!", id: "x" }, "tag:"],
      [{ tag: "promo", id: "" }, "id: required"],
      [{ tag: "promo", id: "x".repeat(257) }, "id: longer than 256"],
    ] as const) {
      const error = await seen.markSeen(request).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConnectError);
      expect((error as ConnectError).code).toBe(Code.InvalidArgument);
      expect((error as ConnectError).rawMessage).toContain(field);
    }
    expect((await postSeen(app, "{not json")).status).toBe(400);
    expect(await postSeen(app, JSON.stringify({ tag: 5, id: "x" }))).toMatchObject({ status: 400, body: { error: "tag: must be a string" } });
    expect((await app.pool.query("SELECT 1 FROM seen_marks WHERE tag = 'bad tag!' OR item_id = ''")).rows).toEqual([]);
  });

  it("keeps one mark and one delivery per integration under 50 concurrent duplicates", async () => {
    const topicConsumer = new Consumer();
    await topicConsumer.start();
    const { admin } = adminClients(app);
    await admin.createIntegration({ integration: { name: "wallet", tags: ["dup"], enabled: true, delivery: { case: "api", value: { url: topicConsumer.url } } } });
    await admin.createIntegration({ integration: { name: "dup-feed", tags: ["dup"], enabled: true, delivery: { case: "topic", value: { topic: "dup-topic" } } } });
    const client = seenClients(app, bearer({ sub: "dup-user" })).seen;
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? client.markSeen({ tag: "dup", id: "n-1" }) : postSeen(app, JSON.stringify({ tag: "dup", id: "n-1" }), { headers: bearer({ sub: "dup-user" }) }))),
    );
    const created = answers.filter((answer) => ("status" in answer ? answer.body.created === true : answer.created));
    expect(created).toHaveLength(1);
    expect(answers.every((answer) => !("status" in answer) || answer.status === 200)).toBe(true);
    const deliveries = await eventually(async () => {
      const rows = await deliveriesOf(app, "dup", "n-1");
      return rows.length === 1 && rows[0]?.status === "delivered" ? rows : undefined;
    }, 10_000, "the delivery");
    expect(deliveries.map((row) => row.integration)).toEqual(["wallet"]);
    await deliveriesSettled(app, seenDeliverQueue, deliveries.map((row) => row.id));
    expect(topicConsumer.received).toHaveLength(1);
    const { rows: messages } = await app.pool.query("SELECT 1 FROM seen_topic_messages WHERE topic = 'dup-topic' AND item_id = 'n-1'");
    expect(messages).toHaveLength(1);
    const { rows: marks } = await app.pool.query("SELECT 1 FROM seen_marks WHERE tag = 'dup' AND item_id = 'n-1'");
    expect(marks).toHaveLength(1);
    await topicConsumer.stop();
  });

  it("commits concurrent marks of many ids together: each stored, delivered and fed once, repeats in the same group found", async () => {
    const manyConsumer = new Consumer();
    await manyConsumer.start();
    const { admin } = adminClients(app);
    await admin.createIntegration({ integration: { name: "many-api", tags: ["many"], enabled: true, delivery: { case: "api", value: { url: manyConsumer.url } } } });
    await admin.createIntegration({ integration: { name: "many-feed", tags: ["many"], enabled: true, delivery: { case: "topic", value: { topic: "many-topic" } } } });
    const users = ["many-a", "many-b", "many-c"].map((user) => seenClients(app, bearer({ sub: user })).seen);
    const groupsBefore = /funnel_seen_mark_group_marks_count (\d+)/.exec(await (await fetch(`${app.metricsUrl}/metrics`)).text())?.[1] ?? "0";
    // 120 distinct marks (3 users × 40 ids), each sent twice at the same moment.
    const calls = users.flatMap((user, u) => Array.from({ length: 80 }, (_, i) => ({ user, u, id: `m-${i % 40}` })));
    const answers = await Promise.all(calls.map(({ user, id }) => user.markSeen({ tag: "many", id })));
    const createdPerMark = new Map<string, number>();
    answers.forEach((answer, i) => {
      const key = `${calls[i]!.u}/${calls[i]!.id}`;
      createdPerMark.set(key, (createdPerMark.get(key) ?? 0) + (answer.created ? 1 : 0));
    });
    expect(createdPerMark.size).toBe(120);
    expect([...createdPerMark.values()].every((count) => count === 1)).toBe(true);

    await eventually(async () => (manyConsumer.received.length >= 120 ? true : undefined), 15_000, "120 deliveries");
    const { rows: many } = await app.pool.query<{ id: string }>("SELECT id::text FROM seen_deliveries WHERE tag = 'many'");
    await deliveriesSettled(app, seenDeliverQueue, many.map((row) => row.id));
    const delivered = manyConsumer.received.map((request) => `${String(request.body.user_id)}/${String(request.body.id)}`);
    expect(delivered).toHaveLength(120);
    expect(new Set(delivered).size).toBe(120);
    const { rows } = await app.pool.query<{ marks: number; deliveries: number; messages: number }>(
      `SELECT (SELECT count(*)::int FROM seen_marks WHERE tag = 'many') AS marks,
              (SELECT count(*)::int FROM seen_deliveries WHERE tag = 'many') AS deliveries,
              (SELECT count(DISTINCT (identity->>'user_id', item_id))::int FROM seen_topic_messages WHERE topic = 'many-topic') AS messages`,
    );
    expect(rows[0]).toEqual({ marks: 120, deliveries: 120, messages: 120 });
    expect((await app.pool.query("SELECT 1 FROM seen_topic_messages WHERE topic = 'many-topic'")).rows).toHaveLength(120);
    // The 240 calls shared transactions.
    const groupsAfter = /funnel_seen_mark_group_marks_count (\d+)/.exec(await (await fetch(`${app.metricsUrl}/metrics`)).text())?.[1];
    expect(Number(groupsAfter) - Number(groupsBefore)).toBeGreaterThan(0);
    expect(Number(groupsAfter) - Number(groupsBefore)).toBeLessThan(240);
    await manyConsumer.stop();
  });

  it("stores the same mark twice in one group once: the first creates it, the second finds it", async () => {
    const input = (itemId: string, at: number) => ({
      identityKey: "client:group-user",
      tag: "promo",
      itemId,
      kind: "client" as const,
      identity: { user_id: "group-user", uid: "", bound_uids: [], phone_id: "" },
      body: { kind: "client", tag: "promo", id: itemId, seen_at: new Date(at).toISOString(), user_id: "group-user" },
      now: new Date(at),
    });
    const results = await withTransaction(app.pool, (tx) => markMany(tx, [input("g-1", 1_000), input("g-2", 2_000), input("g-1", 3_000)], 86_400));
    expect(results.map((result) => [result.created, result.firstSeenAt.getTime(), result.deliveryIds.length])).toEqual([
      [true, 1_000, 1],
      [true, 2_000, 1],
      [false, 1_000, 0],
    ]);
    const { rows } = await app.pool.query("SELECT item_id FROM seen_deliveries WHERE body->>'user_id' = 'group-user' ORDER BY item_id");
    expect(rows).toEqual([{ item_id: "g-1" }, { item_id: "g-2" }]);
  });

  it("answers IsSeen, ListSeen (paged, filtered) and LookupSeen (service token only)", async () => {
    const user = seenClients(app, bearer({ sub: "lister" })).seen;
    const other = seenClients(app, bearer({ sub: "someone-else" })).seen;
    for (const id of ["a", "b", "c"]) await user.markSeen({ tag: "promo", id });
    await user.markSeen({ tag: "news", id: "a" });
    expect((await user.isSeen({ tag: "promo", id: "b" })).seen).toBe(true);
    expect((await other.isSeen({ tag: "promo", id: "b" })).seen).toBe(false);

    const first = await user.listSeen({ pageSize: 3 });
    expect(first.marks.map((mark) => `${mark.tag}/${mark.id}`)).toEqual(["promo/a", "promo/b", "promo/c"]);
    const second = await user.listSeen({ pageSize: 3, pageToken: first.nextPageToken });
    expect(second.marks.map((mark) => `${mark.tag}/${mark.id}`)).toEqual(["news/a"]);
    expect(second.nextPageToken).toBe("");
    const expires = timestampDate(first.marks[0]!.expiresAt!).getTime() - timestampDate(first.marks[0]!.firstSeenAt!).getTime();
    expect(expires).toBe(30 * 86_400_000);
    expect((await user.listSeen({ tag: "news" })).marks.map((mark) => mark.id)).toEqual(["a"]);
    expect((await user.listSeen({ since: { seconds: BigInt(Math.floor(Date.now() / 1000) + 60) } })).marks).toEqual([]);

    const request = { identity: { kind: { case: "client" as const, value: { userId: "lister" } } }, tag: "promo", ids: ["a", "c", "zzz"] };
    expect((await seenClients(app, { authorization: `Bearer ${SERVICE_TOKEN}` }).seen.lookupSeen(request)).items.map((item) => item.id)).toEqual(["a", "c"]);
    await expect(user.lookupSeen(request)).rejects.toMatchObject({ code: Code.Unauthenticated });
  });

  it("forgets marks past their tag's retention: they count as new again, and clean-up removes them", async () => {
    const { admin } = adminClients(app);
    await admin.setTagRetention({ tag: "short", retention: durationFromMs(1_000) });
    const user = seenClients(app, bearer({ sub: "forgetful" })).seen;
    expect((await user.markSeen({ tag: "short", id: "x" })).created).toBe(true);
    expect((await user.markSeen({ tag: "short", id: "x" })).created).toBe(false);
    await user.markSeen({ tag: "short", id: "y" });
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect((await user.isSeen({ tag: "short", id: "x" })).seen).toBe(false);
    expect((await user.markSeen({ tag: "short", id: "x" })).created).toBe(true);
    // The worker's clean-up (every JOBS_MAINTENANCE_SECONDS) removes y; a mark of another tag stays.
    await eventually(async () => {
      const { rows } = await app.pool.query("SELECT 1 FROM seen_marks WHERE tag = 'short' AND item_id = 'y'");
      return rows.length === 0 ? true : undefined;
    }, 5_000, "the expired mark to be deleted");
    const { rows } = await app.pool.query("SELECT 1 FROM seen_marks WHERE tag = 'promo'");
    expect(rows.length).toBeGreaterThan(0);
  });

  it("manages integrations and tag retention through the CLI", async () => {
    const add = await funnel(app, ["seen", "integrations", "add", "cashback", "--tags", "wallet,cash", "--endpoint", "https://wallet.internal/v1/seen", "--max-attempts", "5", "--timeout", "2s"]);
    expect(add.stderr).toBe("");
    expect(add.stdout).toMatch(/^cashback\s+yes\s+cash,wallet\s+api\s+https:\/\/wallet\.internal\/v1\/seen \(timeout 2s, 5 attempts, backoff 1s\.\.1h\)/m);
    const update = await funnel(app, ["seen", "integrations", "update", "cashback", "--disable", "--max-backoff", "10m"]);
    expect(update.stdout).toMatch(/^cashback\s+no\s+cash,wallet\s+api\s+.*5 attempts, backoff 1s\.\.10m/m);
    const json = JSON.parse((await funnel(app, ["seen", "integrations", "show", "cashback", "--json"])).stdout) as Record<string, unknown>;
    expect(json).toMatchObject({ integration: { name: "cashback", tags: ["cash", "wallet"], api: { url: "https://wallet.internal/v1/seen", maxAttempts: 5, timeout: "2s" } } });
    const topic = await funnel(app, ["seen", "integrations", "add", "goals", "--tags", "goal", "--topic", "goals.seen", "--retention", "3d"]);
    expect(topic.stdout).toMatch(/goals\s+yes\s+goal\s+topic\s+goals\.seen \(retention 3d\)/);
    expect((await funnel(app, ["seen", "integrations", "list"])).stdout).toMatch(/cashback[\s\S]*goals[\s\S]*promotions/);
    const bad = await funnel(app, ["seen", "integrations", "add", "broken", "--tags", "x", "--endpoint", "ftp://nope"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/integration\.api\.url: scheme must be http or https/);
    const duplicate = await funnel(app, ["seen", "integrations", "add", "goals", "--tags", "goal", "--topic", "other"]);
    expect(duplicate.stderr).toMatch(/already exists/);
    expect((await funnel(app, ["seen", "integrations", "remove", "cashback"])).stdout).toMatch(/removed cashback/);
    expect((await funnel(app, ["seen", "integrations", "show", "cashback"])).stderr).toMatch(/NotFound|no integration/);
    const retention = await funnel(app, ["seen", "tags", "set-retention", "promo", "90d"]);
    expect(retention.stdout).toMatch(/promo: marks are remembered for 90d/);
    expect((await funnel(app, ["seen", "tags", "list"])).stdout).toMatch(/promo\s+90d/);
    expect((await funnel(app, ["seen", "tags", "set-retention", "promo", "soon"])).code).not.toBe(0);
  });

  it("counts requests, marks and deliveries in /metrics", async () => {
    const text = await (await fetch(`${app.metricsUrl}/metrics`)).text();
    expect(text).toMatch(/funnel_seen_mark_requests_total\{result="ok"\} [1-9]/);
    expect(text).toMatch(/funnel_seen_mark_requests_total\{result="invalid_argument"\} [1-9]/);
    expect(text).toMatch(/funnel_seen_marks_total\{result="created"\} [1-9]/);
    expect(text).toMatch(/funnel_seen_deliveries_total\{integration="promotions",outcome="delivered"\} [1-9]/);
    expect(text).toMatch(/funnel_seen_delivery_queue/);
  });
});
