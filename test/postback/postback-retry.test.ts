import { randomUUID } from "node:crypto";
import { createServer, type AddressInfo } from "node:net";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeliveryStatus, type Delivery } from "../../gen/funnel/postback/v1/delivery_pb.js";
import { EventKind } from "../../gen/funnel/postback/v1/partner_pb.js";
import type { App } from "../../services/app.js";
import { createAttemptLog, type Attempt, type AttemptOutcome, type Delivery as EngineDelivery } from "../../services/core/delivery/index.js";
import { createPostbackDeliveries } from "../../services/postback/deliveries.js";
import { createPostbackMetrics } from "../../services/postback/metrics.js";
import { createPartnerDirectory } from "../../services/postback/partner-directory.js";
import { createDeliveryRepository, type DeliveryRow } from "../../services/postback/delivery-repository.js";
import { createPartnerRepository } from "../../services/postback/partner-repository.js";
import { startPartnerServer, type PartnerServer } from "../support/partner-server.js";
import { postbackClients, testPartner, type PostbackClients } from "../support/postback-clients.js";
import { deliveriesSettled, eventually, startTestApp } from "../support/stores.js";
import { deliverQueue as postbackDeliverQueue } from "../../services/postback/queue.js";
import { withTransaction } from "../../services/core/postgres.js";

describe("postback delivery: retries, dead letters, replay", () => {
  let app: App;
  let partner: PartnerServer;
  let api: PostbackClients;
  /** Per-path answer scripts: path prefix → answer for the n-th request on it. */
  const scripts = new Map<string, (n: number) => { status?: number; body?: string; headers?: Record<string, string>; delayMs?: number }>();

  beforeAll(async () => {
    partner = await startPartnerServer();
    partner.answer((req) => {
      const path = req.url.split("?")[0] ?? "";
      const script = scripts.get(path);
      return script === undefined ? { status: 200 } : script(partner.received(path).length);
    });
    app = await startTestApp({ env: { POSTBACK_ALLOW_PRIVATE: "true", JOBS_POLL_SECONDS: "1" } });
    api = postbackClients(app.url);
  });
  afterAll(async () => {
    await app?.stop();
    await partner?.close();
  });

  /** Creates partner `id` whose install postback goes to `/<id>` with `script` answering. */
  async function scripted(id: string, script: (n: number) => { status?: number; body?: string; headers?: Record<string, string>; delayMs?: number }, overrides = {}) {
    scripts.set(`/${id}`, script);
    await api.partners.createPartner({ partner: testPartner(id, `${partner.url}/${id}?c={stag_clickID}&attempt_of={delivery_id}`, overrides) });
    const { deliveryId } = await api.events.recordInstall({ stag: `${id}_click` });
    return deliveryId;
  }

  async function settled(id: string, status: DeliveryStatus, timeoutMs = 15_000): Promise<Delivery> {
    return eventually(async () => {
      const { delivery } = await api.deliveries.getDelivery({ id });
      return delivery?.status === status && delivery.attemptLog.length === delivery.attempts ? delivery : undefined;
    }, timeoutMs, `delivery ${id} to be ${DeliveryStatus[status]}`);
  }

  const deadLetters = async (id: string) =>
    (
      await app.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${app.config.jobsSchema}.job WHERE name = 'postback.deliver.dead' AND data->'payload'->>'deliveryId' = $1`, [id])
    ).rows[0]?.n;

  it("retries 5xx with backoff until a 2xx, logging every attempt", async () => {
    const id = await scripted("flaky", (n) => (n <= 2 ? { status: 503, body: "down" } : { status: 200, body: "fine" }));
    const delivery = await settled(id, DeliveryStatus.DELIVERED);
    expect(delivery.attemptLog.map((a) => [a.attempt, a.httpStatus, a.outcome, a.error])).toEqual([
      [1, 503, "retry", "HTTP 503"],
      [2, 503, "retry", "HTTP 503"],
      [3, 200, "delivered", ""],
    ]);
    expect(partner.received("/flaky")).toHaveLength(3);
    for (const attempt of delivery.attemptLog) expect(attempt.url).toBe(`${partner.url}/flaky?c=click&attempt_of=${id}`);
    const chRows = await eventually(async () => {
      const result = await app.clickhouse.client.query({
        query: `SELECT attempt, http_status, outcome FROM ${app.clickhouse.database}.postback_deliveries WHERE delivery_id = {id:UUID} ORDER BY attempt`,
        query_params: { id },
        format: "JSONEachRow",
      });
      const rows = await result.json<{ attempt: number; http_status: number; outcome: string }>();
      return rows.length === 3 ? rows : undefined;
    }, 10_000, "attempts in ClickHouse");
    expect(chRows.map((r) => [Number(r.attempt), Number(r.http_status), r.outcome])).toEqual([
      [1, 503, "retry"],
      [2, 503, "retry"],
      [3, 200, "delivered"],
    ]);
  });

  it("honours Retry-After on 429", async () => {
    const id = await scripted("slowdown", (n) => (n === 1 ? { status: 429, headers: { "retry-after": "2" } } : { status: 204, body: "" }));
    await settled(id, DeliveryStatus.DELIVERED);
    const [first, second] = partner.received("/slowdown");
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(1_900);
  });

  it("dead-letters a 4xx at once, keeps the first 100 bytes of the body, and replays on demand", async () => {
    const body = "x".repeat(60) + "é".repeat(20) + "tail-not-kept";
    const id = await scripted("gone", (n) => (n === 1 ? { status: 404, body } : { status: 200 }));
    const dead = await settled(id, DeliveryStatus.DEAD);
    expect(dead.attemptLog).toHaveLength(1);
    expect(dead.attemptLog[0]).toMatchObject({ httpStatus: 404, outcome: "dead", error: "HTTP 404" });
    const prefix = dead.attemptLog[0]!.responseBody;
    expect(prefix.byteLength).toBe(100);
    expect(Buffer.from(prefix).equals(Buffer.from(body).subarray(0, 100))).toBe(true);
    await eventually(async () => ((await deadLetters(id)) === 1 ? true : undefined), 5_000, "the dead letter");

    const { redelivered } = await api.deliveries.redeliver({ ids: [id] });
    expect(redelivered).toEqual([id]);
    const replayed = await settled(id, DeliveryStatus.DELIVERED);
    expect(replayed.attemptLog.map((a) => [a.attempt, a.httpStatus, a.outcome])).toEqual([
      [1, 404, "dead"],
      [2, 200, "delivered"],
    ]);
  });

  it("retries timeouts and network errors, then dead-letters when attempts run out", async () => {
    const id = await scripted("stuck", () => ({ status: 200, delayMs: 1_500 }), {
      timeout: durationFromMs(200),
      retry: { maxAttempts: 2, initialDelay: durationFromMs(20), maxDelay: durationFromMs(50) },
    });
    const dead = await settled(id, DeliveryStatus.DEAD);
    expect(dead.attemptLog.map((a) => [a.outcome, a.httpStatus, a.error])).toEqual([
      ["retry", 0, "timeout after 200 ms"],
      ["dead", 0, "timeout after 200 ms; gave up after 2 attempt(s)"],
    ]);
    expect(dead.attemptLog[0]!.durationMs).toBeLessThan(1_000);

    const closedPort = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, "127.0.0.1", () => {
        const { port } = probe.address() as AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    await api.partners.createPartner({
      partner: testPartner("closed", `http://127.0.0.1:${closedPort}/closed`, { retry: { maxAttempts: 3, initialDelay: durationFromMs(20), maxDelay: durationFromMs(50) } }),
    });
    const { deliveryId } = await api.events.recordInstall({ stag: "closed_1" });
    const refused = await settled(deliveryId, DeliveryStatus.DEAD);
    expect(refused.attemptLog).toHaveLength(3);
    expect(refused.attemptLog[0]!.error).toMatch(/^network error: .*ECONNREFUSED/);
    expect(refused.attemptLog[2]!.error).toMatch(/gave up after 3 attempt\(s\)$/);
    await eventually(async () => ((await deadLetters(deliveryId)) === 1 ? true : undefined), 5_000, "the dead letter");
  });

  it("does not follow redirects", async () => {
    const id = await scripted("moved", () => ({ status: 302, headers: { location: "http://127.0.0.1:9/elsewhere" } }));
    const dead = await settled(id, DeliveryStatus.DEAD);
    expect(dead.attemptLog[0]!.error).toBe("HTTP 302: redirects are not followed (to http://127.0.0.1:9/elsewhere)");
  });

  it("replays by filter and lists deliveries by partner, event and status", async () => {
    scripts.set("/batch", (n) => (n <= 3 ? { status: 400 } : { status: 200 }));
    await api.partners.createPartner({ partner: testPartner("batch", `${partner.url}/batch`) });
    const ids = await Promise.all(["a", "b", "c"].map(async (c) => (await api.events.recordInstall({ stag: `batch_${c}` })).deliveryId));
    for (const id of ids) await settled(id, DeliveryStatus.DEAD);
    const listed = await api.deliveries.listDeliveries({ filter: { partnerId: "batch", event: EventKind.INSTALL, status: DeliveryStatus.DEAD }, limit: 2 });
    expect(listed.deliveries).toHaveLength(2);
    expect(listed.nextPageToken).not.toBe("");
    const filter = { partnerId: "batch", event: EventKind.INSTALL, status: DeliveryStatus.DEAD };
    const rest = await api.deliveries.listDeliveries({ filter, limit: 2, pageToken: listed.nextPageToken });
    expect([...listed.deliveries, ...rest.deliveries].map((d) => d.id).sort()).toEqual([...ids].sort());
    expect(rest.nextPageToken).toBe("");
    // A page token continues only the filters it was issued with.
    await expect(api.deliveries.listDeliveries({ filter: { partnerId: "batch", status: DeliveryStatus.DEAD }, limit: 2, pageToken: listed.nextPageToken })).rejects.toMatchObject({
      rawMessage: expect.stringMatching(/^page_token: issued for a request with other filters;/) as unknown,
    });

    const { redelivered } = await api.deliveries.redeliver({ filter: { partnerId: "batch", status: DeliveryStatus.DEAD } });
    expect([...redelivered].sort()).toEqual([...ids].sort());
    for (const id of ids) await settled(id, DeliveryStatus.DELIVERED);
    const metrics = await (await fetch(`${app.metricsUrl}/metrics`)).text();
    expect(metrics).toMatch(/funnel_postback_attempts_total\{partner="batch",outcome="dead"\} 3/);
    expect(metrics).toMatch(/funnel_postback_attempts_total\{partner="batch",outcome="delivered"\} 3/);
  });

  it("records one of two results for the same attempt, the current replay's over a stale one, and none for a cancelled postback", async () => {
    const repository = createDeliveryRepository(app.pool);
    const { store } = createPostbackDeliveries({
      pool: app.pool,
      repository,
      directory: createPartnerDirectory(createPartnerRepository(app.pool)),
      analytics: app.analytics,
      metrics: createPostbackMetrics(app.metrics, repository),
    });
    const log = createAttemptLog({ group: "postback_attempts", queue: postbackDeliverQueue, store, jobs: app.jobs, metrics: app.metrics });
    const load = async (id: string): Promise<EngineDelivery<DeliveryRow>> => (await store.load([id]))[0]!;
    const result = (delivery: EngineDelivery<DeliveryRow>, outcome: AttemptOutcome, httpStatus: number): Attempt<DeliveryRow> => {
      const attemptedAt = new Date();
      return {
        delivery,
        attempt: 1,
        method: "GET",
        url: `${partner.url}/${delivery.row.partnerId}`,
        httpStatus,
        responseBody: Buffer.alloc(0),
        durationMs: 1,
        error: outcome === "retry" ? `HTTP ${httpStatus}` : "",
        outcome,
        attemptedAt,
        nextAttemptAt: outcome === "retry" ? new Date(attemptedAt.getTime() + 50) : null,
      };
    };
    /**
     * Records `results` as one group: two results of an unknown postback take
     * both commit slots first, so the rest wait and go together.
     */
    const recordTogether = async (results: Attempt<DeliveryRow>[]): Promise<boolean[]> => {
      const filler = result({ ...results[0]!.delivery, id: randomUUID() }, "delivered", 200);
      const answers = await Promise.all([filler, filler, ...results].map((r) => log.record(r)));
      expect(answers.slice(0, 2)).toEqual([false, false]);
      return answers.slice(2);
    };
    // Each partner holds its first request, so the worker's own attempt 1 is still out meanwhile.
    const held = async (id: string) => {
      const deliveryId = await scripted(id, (n) => (n === 1 ? { status: 200, delayMs: 1_500 } : { status: 200 }));
      await eventually(async () => (partner.received(`/${id}`).length === 1 ? true : undefined), 5_000, `the first request to /${id}`);
      return deliveryId;
    };

    // Two results of attempt 1 in one group: the first counts, the second changes nothing.
    const twin = await held("twin");
    const twinDelivery = await load(twin);
    expect(await recordTogether([result(twinDelivery, "delivered", 200), result(twinDelivery, "retry", 503)])).toEqual([true, false]);
    // The worker's own attempt 1 comes back later and is not recorded either; no next attempt was queued.
    await deliveriesSettled(app, postbackDeliverQueue, [twin]);
    const delivery = (await api.deliveries.getDelivery({ id: twin })).delivery;
    expect(delivery?.status).toBe(DeliveryStatus.DELIVERED);
    expect(delivery?.attemptLog.map((a) => [a.attempt, a.httpStatus, a.outcome])).toEqual([[1, 200, "delivered"]]);
    expect(partner.received("/twin")).toHaveLength(1);

    // Replayed while attempt 1 was out: the stale replay's result, though first, does not hide the current one's.
    const replayed = await held("replayed");
    const stale = await load(replayed);
    await withTransaction(app.pool, (tx) => repository.replayDeliveries(tx, { ids: [replayed] }));
    const current = await load(replayed);
    expect(current.replay).toBe(stale.replay + 1);
    expect(await recordTogether([result(stale, "delivered", 200), result(current, "delivered", 200)])).toEqual([false, true]);
    expect((await api.deliveries.getDelivery({ id: replayed })).delivery?.status).toBe(DeliveryStatus.DELIVERED);

    // A postback cancelled while its attempt was out stays cancelled.
    const cancelled = await held("held");
    const open = await load(cancelled);
    expect(await store.cancel(open, "partner disabled")).toBe(true);
    expect(await log.record(result(open, "retry", 503))).toBe(false);
    await deliveriesSettled(app, postbackDeliverQueue, [cancelled]);
    const after = (await api.deliveries.getDelivery({ id: cancelled })).delivery;
    expect(after?.status).toBe(DeliveryStatus.CANCELLED);
    expect(after?.attemptLog).toEqual([]);
  });

  it("runs a retry queued before the upgrade, whose job names its replay `generation`", async () => {
    const id = await scripted("upgraded", (n) => (n === 1 ? { status: 404 } : { status: 200 }));
    await settled(id, DeliveryStatus.DEAD);
    // A replay committed by the version before, with the job that version queued for it.
    const repository = createDeliveryRepository(app.pool);
    await withTransaction(app.pool, async (tx) => {
      const [row] = await repository.replayDeliveries(tx, { ids: [id] });
      const legacy = { deliveryId: id, attempt: row!.attempts + 1, generation: row!.replay };
      await app.jobs.send(postbackDeliverQueue, legacy, { tx });
    });
    const delivered = await settled(id, DeliveryStatus.DELIVERED);
    expect(delivered.attemptLog.map((a) => [a.attempt, a.httpStatus, a.outcome])).toEqual([
      [1, 404, "dead"],
      [2, 200, "delivered"],
    ]);
  });
});
