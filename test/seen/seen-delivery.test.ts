import { randomUUID } from "node:crypto";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../services/app.js";
import { adminClients, Consumer, deliveriesOf, JWT_SECRET, seenClients, token } from "../support/seen.js";
import { createAttemptLog, type Attempt, type AttemptOutcome, type Delivery } from "../../services/core/delivery/index.js";
import { createSeenDeliveries } from "../../services/seen/deliveries.js";
import { createSeenMetrics } from "../../services/seen/metrics.js";
import type { DeliveryRow } from "../../services/seen/sql/deliveries.js";
import { deliveriesSettled, eventually, startTestApp } from "../support/stores.js";
import { deliverQueue as seenDeliverQueue } from "../../services/seen/queue.js";

interface AttemptRow {
  attempt: number;
  http_status: number | null;
  outcome: string;
  error: string;
  response_body: string;
  duration_ms: number;
}

describe("seen api deliveries", () => {
  let app: App;
  const consumers: Consumer[] = [];

  beforeAll(async () => {
    app = await startTestApp({ env: { AUTH_JWT_SECRET: JWT_SECRET, JOBS_POLL_SECONDS: "1", SEEN_ALLOW_PRIVATE: "true" } });
  });
  afterAll(async () => {
    await app.stop();
    await Promise.all(consumers.map((consumer) => consumer.stop()));
  });

  /** A consumer and an api integration owning `tag` that calls it. */
  async function integration(tag: string, answer: Consumer["answer"], api: { maxAttempts?: number; timeoutMs?: number } = {}): Promise<Consumer> {
    const consumer = await new Consumer().start();
    consumers.push(consumer);
    consumer.answer = answer;
    await adminClients(app).admin.createIntegration({
      integration: {
        name: `${tag}-owner`,
        tags: [tag],
        enabled: true,
        delivery: {
          case: "api",
          value: {
            url: consumer.url,
            initialBackoff: durationFromMs(10),
            maxBackoff: durationFromMs(50),
            maxAttempts: api.maxAttempts ?? 0,
            ...(api.timeoutMs !== undefined ? { timeout: durationFromMs(api.timeoutMs) } : {}),
          },
        },
      },
    });
    return consumer;
  }

  const mark = (tag: string, id: string) =>
    seenClients(app, { authorization: `Bearer ${token({ sub: "u-1", uid: "4001", bound_uids: ["4002", "4003"], phone_id: "p-1" })}` }).seen.markSeen({ tag, id });

  const finished = (tag: string, id: string) =>
    eventually(async () => {
      const [delivery] = await deliveriesOf(app, tag, id);
      return delivery !== undefined && delivery.status !== "pending" ? delivery : undefined;
    }, 15_000, `the delivery of ${tag}/${id} to finish`);

  const attempts = async (deliveryId: string): Promise<AttemptRow[]> =>
    (
      await app.pool.query<AttemptRow>(
        "SELECT attempt, http_status, outcome, error, response_body, duration_ms FROM seen_delivery_attempts WHERE delivery_id = $1 ORDER BY attempt",
        [deliveryId],
      )
    ).rows;

  it.concurrent("posts the client format with an Idempotency-Key, records the attempt and streams it to ClickHouse", async ({ expect }) => {
    const consumer = await integration("ok-tag", () => ({ status: 204 }));
    const answer = await mark("ok-tag", "promo-1");
    expect(answer.created).toBe(true);
    const delivery = await finished("ok-tag", "promo-1");
    expect(delivery).toMatchObject({ status: "delivered", attempts: 1, integration: "ok-tag-owner" });
    expect(consumer.received).toHaveLength(1);
    const [request] = consumer.received;
    expect(request?.headers["idempotency-key"]).toBe(delivery.id);
    expect(request?.headers["content-type"]).toBe("application/json");
    expect(request?.headers["x-funnel-attempt"]).toBe("1");
    expect(request?.body).toEqual({
      delivery_id: delivery.id,
      kind: "client",
      tag: "ok-tag",
      id: "promo-1",
      seen_at: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/) as unknown,
      user_id: "u-1",
      uid: "4001",
      bound_uids: ["4002", "4003"],
      phone_id: "p-1",
    });
    expect(await attempts(delivery.id)).toMatchObject([{ attempt: 1, http_status: 204, outcome: "delivered", error: "" }]);

    await app.streamer?.drain();
    const rows = await eventually(async () => {
      const result = await app.clickhouse.client.query({
        query: `SELECT attempt, http_status, outcome, integration, tag, item_id FROM ${app.clickhouse.database}.seen_delivery_attempts WHERE delivery_id = {id:UUID}`,
        query_params: { id: delivery.id },
        format: "JSONEachRow",
      });
      const found = await result.json<Record<string, unknown>>();
      return found.length > 0 ? found : undefined;
    }, 10_000, "the attempt in ClickHouse");
    expect(rows).toEqual([{ attempt: 1, http_status: 204, outcome: "delivered", integration: "ok-tag-owner", tag: "ok-tag", item_id: "promo-1" }]);
  });

  it.concurrent("retries 5xx with backoff until a 2xx, with the same Idempotency-Key", async ({ expect }) => {
    const consumer = await integration("flaky-tag", (_request, index) => (index < 2 ? { status: index === 0 ? 503 : 500, body: "down for maintenance" } : { status: 200 }));
    await mark("flaky-tag", "n-1");
    const delivery = await finished("flaky-tag", "n-1");
    expect(delivery).toMatchObject({ status: "delivered", attempts: 3 });
    expect(consumer.received.map((request) => request.headers["idempotency-key"])).toEqual([delivery.id, delivery.id, delivery.id]);
    expect(consumer.received.map((request) => request.headers["x-funnel-attempt"])).toEqual(["1", "2", "3"]);
    expect(await attempts(delivery.id)).toMatchObject([
      { attempt: 1, http_status: 503, outcome: "retry", error: "HTTP 503", response_body: "down for maintenance" },
      { attempt: 2, http_status: 500, outcome: "retry" },
      { attempt: 3, http_status: 200, outcome: "delivered" },
    ]);
  });

  it.concurrent("dead-letters a 4xx at once", async ({ expect }) => {
    const consumer = await integration("reject-tag", () => ({ status: 422, body: '{"error":"unknown promotion"}' }));
    await mark("reject-tag", "n-1");
    const delivery = await finished("reject-tag", "n-1");
    expect(delivery).toMatchObject({ status: "dead", attempts: 1, last_error: "HTTP 422" });
    expect(await attempts(delivery.id)).toMatchObject([{ attempt: 1, http_status: 422, outcome: "dead", response_body: '{"error":"unknown promotion"}' }]);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(consumer.received).toHaveLength(1);
    const dead = await eventually(async () => {
      const { rows } = await app.pool.query<{ data: { payload: { deliveryId: string } } }>(
        `SELECT data FROM ${app.config.jobsSchema}.job WHERE name = 'seen.deliver.dead'`,
      );
      return rows.find((row) => row.data.payload.deliveryId === delivery.id);
    }, 5_000, "the dead letter");
    expect(dead).toBeDefined();
  });

  it.concurrent("retries a timed-out attempt", async ({ expect }) => {
    const consumer = await integration("slow-tag", (_request, index) => (index === 0 ? { status: 200, delayMs: 1_500 } : { status: 200 }), { timeoutMs: 200 });
    await mark("slow-tag", "n-1");
    const delivery = await finished("slow-tag", "n-1");
    expect(delivery).toMatchObject({ status: "delivered", attempts: 2 });
    const recorded = await attempts(delivery.id);
    expect(recorded).toMatchObject([
      { attempt: 1, http_status: null, outcome: "retry", error: "timeout after 200 ms" },
      { attempt: 2, http_status: 200, outcome: "delivered" },
    ]);
    expect(recorded[0]?.duration_ms).toBeGreaterThanOrEqual(190);
    expect(consumer.received).toHaveLength(2);
  });

  it.concurrent("gives up after max attempts", async ({ expect }) => {
    const consumer = await integration("down-tag", () => ({ status: 502 }), { maxAttempts: 3 });
    await mark("down-tag", "n-1");
    const delivery = await finished("down-tag", "n-1");
    expect(delivery).toMatchObject({ status: "dead", attempts: 3, last_error: "HTTP 502; gave up after 3 attempt(s)" });
    expect((await attempts(delivery.id)).map((attempt) => attempt.outcome)).toEqual(["retry", "retry", "dead"]);
    expect(consumer.received).toHaveLength(3);
  });

  it.concurrent("waits as long as Retry-After asks", async ({ expect }) => {
    const consumer = await integration("busy-tag", (_request, index) => (index === 0 ? { status: 429, headers: { "retry-after": "2" } } : { status: 200 }));
    await mark("busy-tag", "n-1");
    const delivery = await finished("busy-tag", "n-1");
    expect(delivery).toMatchObject({ status: "delivered", attempts: 2 });
    const [first, second] = consumer.received;
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(1_950);
  });

  it("records one of two results for the same attempt arriving in one group", async () => {
    // The consumer holds its first request, so the worker's own attempt 1 is still out meanwhile.
    const consumer = await integration("twin-tag", (_request, index) => (index === 0 ? { status: 200, delayMs: 1_500 } : { status: 200 }));
    await mark("twin-tag", "promo-twin");
    await eventually(async () => (consumer.received.length === 1 ? true : undefined), 10_000, "the first request");
    const [delivery] = await deliveriesOf(app, "twin-tag", "promo-twin");
    const { store } = createSeenDeliveries({ pool: app.pool, analytics: app.analytics, metrics: createSeenMetrics(app.metrics, app.pool) });
    const log = createAttemptLog({ group: "seen_attempts", queue: seenDeliverQueue, store, jobs: app.jobs, metrics: app.metrics });
    const [loaded] = await store.load([delivery!.id]);
    const result = (target: Delivery<DeliveryRow>, outcome: AttemptOutcome, httpStatus: number): Attempt<DeliveryRow> => ({
      delivery: target,
      attempt: 1,
      method: "POST",
      url: consumer.url,
      httpStatus,
      responseBody: Buffer.alloc(0),
      durationMs: 1,
      error: outcome === "retry" ? `HTTP ${httpStatus}` : "",
      outcome,
      attemptedAt: new Date(),
      nextAttemptAt: outcome === "retry" ? new Date(Date.now() + 50) : null,
    });
    // Two results of an unknown delivery take both commit slots, so the two that follow wait and go together.
    const filler = result({ ...loaded!, id: randomUUID() }, "delivered", 200);
    const answers = await Promise.all([filler, filler, result(loaded!, "delivered", 200), result(loaded!, "retry", 503)].map((r) => log.record(r)));
    expect(answers).toEqual([false, false, true, false]);
    await deliveriesSettled(app, seenDeliverQueue, [delivery!.id]);
    expect((await deliveriesOf(app, "twin-tag", "promo-twin"))[0]).toMatchObject({ status: "delivered", attempts: 1 });
    expect((await attempts(delivery!.id)).map((row) => [row.attempt, row.outcome])).toEqual([[1, "delivered"]]);
    expect(consumer.received).toHaveLength(1);
    // The refused retry queued no job for attempt 2, and only the recorded result reached the analytics stream.
    const jobs = await app.pool.query<{ attempt: number }>(
      `SELECT (data->'payload'->>'attempt')::int AS attempt FROM ${app.config.jobsSchema}.job WHERE data->'payload'->>'deliveryId' = $1`,
      [delivery!.id],
    );
    expect(jobs.rows).toEqual([{ attempt: 1 }]);
    await app.streamer?.drain();
    const streamed = await eventually(async () => {
      const result = await app.clickhouse.client.query({
        query: `SELECT attempt, outcome FROM ${app.clickhouse.database}.seen_delivery_attempts WHERE delivery_id = {id:UUID}`,
        query_params: { id: delivery!.id },
        format: "JSONEachRow",
      });
      const found = await result.json();
      return found.length > 0 ? found : undefined;
    }, 10_000, "the attempt in ClickHouse");
    expect(streamed).toEqual([{ attempt: 1, outcome: "delivered" }]);
  });

  it("lets ops redrive a dead delivery: a new round of attempts", async () => {
    let healthy = false;
    const consumer = await integration("redrive-tag", () => (healthy ? { status: 200 } : { status: 400 }));
    await mark("redrive-tag", "n-1");
    const dead = await finished("redrive-tag", "n-1");
    expect(dead.status).toBe("dead");
    healthy = true;
    // The delivery is dead once its attempt commits; its job reaches the dead-letter queue just
    // after, and earlier tests' dead letters are there already: redrive until this one was among them.
    const delivered = await eventually(async () => {
      const [delivery] = await deliveriesOf(app, "redrive-tag", "n-1");
      if (delivery?.status === "delivered") return delivery;
      if (delivery?.status === "dead") await app.jobs.redrive("seen.deliver");
      return undefined;
    }, 15_000, "the redriven delivery");
    expect(delivered.attempts).toBe(2);
    expect(consumer.received).toHaveLength(2);
  });
});
