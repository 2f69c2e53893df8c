import pg from "pg";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, describe, expect, it } from "vitest";
import type { App } from "../../services/app.js";
import { deliverQueue } from "../../services/seen/queue.js";
import { adminClients, Consumer, deliveriesOf, JWT_SECRET, seenClients, token } from "../support/seen.js";
import { deliveriesSettled, eventually, startTestApp, testStores } from "../support/stores.js";

describe("seen worker shutdown", () => {
  const consumer = new Consumer();
  const late = new Consumer();
  let app: App | undefined;
  afterAll(async () => {
    await app?.stop();
    await consumer.stop();
    await late.stop();
  });

  const envWith = (shutdownTimeoutMs: number) => ({ AUTH_JWT_SECRET: JWT_SECRET, JOBS_POLL_SECONDS: "1", SEEN_ALLOW_PRIVATE: "true", SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs) });

  /** Starts an app whose api integration owning `tag` calls `target`, marks (tag, promo-1), and resolves once that delivery is in flight. */
  async function deliveryInFlight(shutdownTimeoutMs: number, tag: string, target: Consumer): Promise<App> {
    const started = await startTestApp({ env: envWith(shutdownTimeoutMs) });
    app = started;
    await target.start();
    await adminClients(started).admin.createIntegration({
      integration: {
        name: `${tag}-owner`,
        tags: [tag],
        enabled: true,
        delivery: { case: "api", value: { url: target.url, initialBackoff: durationFromMs(10), maxBackoff: durationFromMs(50), maxAttempts: 0 } },
      },
    });
    await seenClients(started, { authorization: `Bearer ${token({ sub: "u-1", uid: "4001", bound_uids: [], phone_id: "p-1" })}` }).seen.markSeen({ tag, id: "promo-1" });
    await eventually(async () => (target.received.length === 1 ? true : undefined), 10_000, "the delivery to be in flight");
    return started;
  }

  it("lets a delivery in flight finish and records it before the process stops", async () => {
    consumer.answer = () => ({ status: 200, body: "ok", delayMs: 1_000 });
    const first = await deliveryInFlight(10_000, "slow", consumer);
    await first.stop();
    app = undefined;

    const client = new pg.Client({ connectionString: (await testStores()).databaseUrl });
    await client.connect();
    try {
      const { rows } = await client.query<{ status: string; attempts: number; outcome: string }>(
        `SELECT d.status, d.attempts, a.outcome FROM seen_deliveries d JOIN seen_delivery_attempts a ON a.delivery_id = d.id WHERE d.tag = 'slow'`,
      );
      expect(rows).toEqual([{ status: "delivered", attempts: 1, outcome: "delivered" }]);
    } finally {
      await client.end();
    }
    expect(consumer.received).toHaveLength(1);
  });

  it("ends a delivery still in flight after the grace as a retry, and delivers it after a restart", async () => {
    late.answer = (_request, index) => (index === 0 ? { status: 200, body: "too late", delayMs: 5_000 } : { status: 200, body: "ok" });
    const first = await deliveryInFlight(1_000, "late", late);
    const stopping = Date.now();
    await first.stop();
    app = undefined;
    expect(Date.now() - stopping).toBeLessThan(4_000);

    const client = new pg.Client({ connectionString: (await testStores()).databaseUrl });
    await client.connect();
    try {
      const { rows: deliveries } = await client.query<{ id: string; status: string; attempts: number; last_error: string }>(
        "SELECT id::text, status, attempts, last_error FROM seen_deliveries WHERE tag = 'late'",
      );
      expect(deliveries).toEqual([{ id: expect.any(String) as unknown, status: "pending", attempts: 1, last_error: "aborted: the worker is stopping" }]);
      const { rows: attempts } = await client.query("SELECT attempt, http_status, outcome, error FROM seen_delivery_attempts WHERE delivery_id = $1", [deliveries[0]?.id]);
      expect(attempts).toEqual([{ attempt: 1, http_status: null, outcome: "retry", error: "aborted: the worker is stopping" }]);
      const { rows: jobs } = await client.query(
        `SELECT state, data->'payload'->'attempt' AS attempt FROM ${first.config.jobsSchema}.job WHERE name = $1 AND data->'payload'->>'deliveryId' = $2 ORDER BY created_on`,
        [deliverQueue.name, deliveries[0]?.id],
      );
      expect(jobs).toEqual([
        { state: "completed", attempt: 1 },
        { state: "created", attempt: 2 },
      ]);
    } finally {
      await client.end();
    }

    const second = await startTestApp({ env: envWith(1_000) });
    app = second;
    const delivery = await eventually(async () => {
      const [found] = await deliveriesOf(second, "late", "promo-1");
      return found?.status === "delivered" ? found : undefined;
    }, 10_000, "the delivery after the restart");
    expect(delivery).toMatchObject({ status: "delivered", attempts: 2, last_error: "" });
    await deliveriesSettled(second, deliverQueue, [delivery.id]);
    expect(late.received.map((request) => [request.headers["idempotency-key"], request.headers["x-funnel-attempt"]])).toEqual([
      [delivery.id, "1"],
      [delivery.id, "2"],
    ]);
    expect(late.received[1]?.body).toEqual(late.received[0]?.body);
    const { rows: attempts } = await second.pool.query("SELECT attempt, http_status, outcome, error FROM seen_delivery_attempts WHERE delivery_id = $1 ORDER BY attempt", [delivery.id]);
    expect(attempts).toEqual([
      { attempt: 1, http_status: null, outcome: "retry", error: "aborted: the worker is stopping" },
      { attempt: 2, http_status: 200, outcome: "delivered", error: "" },
    ]);
    await second.streamer?.drain();
    const streamed = await eventually(async () => {
      const result = await second.clickhouse.client.query({
        query: `SELECT attempt, http_status, outcome, error FROM ${second.clickhouse.database}.seen_delivery_attempts WHERE delivery_id = {id:UUID} ORDER BY attempt`,
        query_params: { id: delivery.id },
        format: "JSONEachRow",
      });
      const found = await result.json<Record<string, unknown>>();
      return found.length >= 2 ? found : undefined;
    }, 10_000, "both attempts in ClickHouse");
    expect(streamed).toEqual([
      { attempt: 1, http_status: 0, outcome: "retry", error: "aborted: the worker is stopping" },
      { attempt: 2, http_status: 200, outcome: "delivered", error: "" },
    ]);
  });
});
