import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../services/app.js";
import { adminClients, Consumer, deliveriesOf, JWT_SECRET, seenClients, token } from "../support/seen.js";
import { eventually, startTestApp } from "../support/stores.js";

describe("seen api deliveries to private addresses", () => {
  let app: App;
  let consumer: Consumer;

  beforeAll(async () => {
    // SEEN_ALLOW_PRIVATE is not set: the local consumer must be refused.
    app = await startTestApp({ env: { AUTH_JWT_SECRET: JWT_SECRET, JOBS_POLL_SECONDS: "1" } });
    consumer = await new Consumer().start();
    consumer.answer = () => ({ status: 204 });
  });
  afterAll(async () => {
    await app.stop();
    await consumer.stop();
  });

  it("refuses a consumer on a loopback address, by IP literal (plain and IPv4-mapped) and by name, without sending", async () => {
    const port = new URL(consumer.url).port;
    const targets = [
      ["literal", `http://127.0.0.1:${port}/seen`, "refused 127.0.0.1 (127.0.0.1): loopback address; set SEEN_ALLOW_PRIVATE=true to allow"],
      ["named", `http://localhost:${port}/seen`, /^refused localhost \((127\.0\.0\.1|::1)\): loopback address; set SEEN_ALLOW_PRIVATE=true to allow$/],
      ["mapped", `http://[::ffff:127.0.0.1]:${port}/seen`, "refused ::ffff:7f00:1 (::ffff:7f00:1): loopback address; set SEEN_ALLOW_PRIVATE=true to allow"],
    ] as const;
    for (const [tag, url] of targets) {
      await adminClients(app).admin.createIntegration({
        integration: {
          name: `${tag}-owner`,
          tags: [tag],
          enabled: true,
          delivery: { case: "api", value: { url, initialBackoff: durationFromMs(10), maxBackoff: durationFromMs(50), maxAttempts: 3 } },
        },
      });
      await seenClients(app, { authorization: `Bearer ${token({ sub: "u-1" })}` }).seen.markSeen({ tag, id: "n-1" });
    }
    for (const [tag, , error] of targets) {
      const delivery = await eventually(async () => {
        const [row] = await deliveriesOf(app, tag, "n-1");
        return row !== undefined && row.status !== "pending" ? row : undefined;
      }, 15_000, `the ${tag} delivery to finish`);
      // Final at the first attempt: a refused address is not worth retrying.
      expect(delivery).toMatchObject({ status: "dead", attempts: 1 });
      const { rows } = await app.pool.query<{ error: string }>("SELECT error FROM seen_delivery_attempts WHERE delivery_id = $1", [delivery.id]);
      expect(rows).toHaveLength(1);
      expect(rows[0]?.error).toMatch(error);
    }
    expect(consumer.received).toHaveLength(0);
  });
});
