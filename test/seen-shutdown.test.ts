import pg from "pg";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, describe, expect, it } from "vitest";
import { adminClients, Consumer, JWT_SECRET, seenClients, token } from "./support/seen.js";
import { eventually, startTestApp, testStores } from "./support/stores.js";

describe("seen worker shutdown", () => {
  const consumer = new Consumer();
  afterAll(async () => {
    await consumer.stop();
  });

  it("lets a delivery in flight finish and records it before the process stops", async () => {
    const app = await startTestApp({ env: { AUTH_JWT_SECRET: JWT_SECRET, JOBS_POLL_SECONDS: "1", SEEN_ALLOW_PRIVATE: "true", SHUTDOWN_TIMEOUT_MS: "10000" } });
    await consumer.start();
    consumer.answer = () => ({ status: 200, body: "ok", delayMs: 1_000 });
    await adminClients(app).admin.createIntegration({
      integration: {
        name: "slow-owner",
        tags: ["slow"],
        enabled: true,
        delivery: { case: "api", value: { url: consumer.url, initialBackoff: durationFromMs(10), maxBackoff: durationFromMs(50), maxAttempts: 0 } },
      },
    });
    await seenClients(app, { authorization: `Bearer ${token({ sub: "s-1", user_id: "u-1", uid: "4001", bound_uids: [], phone_id: "p-1" })}` }).seen.markSeen({ tag: "slow", id: "promo-1" });
    await eventually(async () => (consumer.received.length === 1 ? true : undefined), 10_000, "the delivery to be in flight");
    await app.stop();

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
});
