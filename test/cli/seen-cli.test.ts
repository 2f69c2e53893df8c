import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../services/app.js";
import { runCliAsAdmin } from "../support/cli.js";
import { adminClients, Consumer, deliveriesOf, JWT_SECRET, seenClients, token } from "../support/seen.js";
import { eventually, startTestApp } from "../support/stores.js";

describe("funnel seen deliveries (CLI as a process)", () => {
  let app: App;
  const consumer = new Consumer();

  beforeAll(async () => {
    app = await startTestApp({ env: { AUTH_JWT_SECRET: JWT_SECRET, JOBS_POLL_SECONDS: "1", SEEN_ALLOW_PRIVATE: "true" } });
    await consumer.start();
  });
  afterAll(async () => {
    await app.stop();
    await consumer.stop();
  });
  const funnel = (...args: string[]) => runCliAsAdmin(app, args);

  it("lists, shows and replays a dead delivery", async () => {
    let healthy = false;
    consumer.answer = () => (healthy ? { status: 200 } : { status: 400 });
    await adminClients(app).admin.createIntegration({
      integration: {
        name: "cli-owner",
        tags: ["cli-tag"],
        enabled: true,
        delivery: { case: "api", value: { url: consumer.url, initialBackoff: durationFromMs(10), maxBackoff: durationFromMs(50) } },
      },
    });
    await seenClients(app, { authorization: `Bearer ${token({ sub: "u-1", uid: "4001" })}` }).seen.markSeen({ tag: "cli-tag", id: "n-1" });
    const dead = await eventually(async () => {
      const [delivery] = await deliveriesOf(app, "cli-tag", "n-1");
      return delivery?.status === "dead" ? delivery : undefined;
    }, 15_000, "the dead delivery");

    const listed = await funnel("seen", "deliveries", "list", "--integration", "cli-owner", "--status", "dead");
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`^${dead.id}\\s+cli-owner\\s+cli-tag\\s+n-1\\s+dead\\s+1\\s+`, "m"));
    const shown = await funnel("seen", "deliveries", "show", dead.id);
    expect(shown.stdout).toMatch(/^status\s+dead$/m);
    const asJson = JSON.parse((await funnel("seen", "deliveries", "show", dead.id, "--json")).stdout) as Record<string, unknown>;
    expect(asJson).toMatchObject({ id: dead.id, integration: "cli-owner", status: "dead", attempts: 1 });

    healthy = true;
    expect(await funnel("seen", "deliveries", "replay", dead.id)).toMatchObject({ code: 0, stdout: "replayed 1 delivery(ies)\n" });
    const delivered = await eventually(async () => {
      const [delivery] = await deliveriesOf(app, "cli-tag", "n-1");
      return delivery?.status === "delivered" ? delivery : undefined;
    }, 10_000, "the replayed delivery");
    expect(delivered.attempts).toBe(2);
    const again = JSON.parse((await funnel("seen", "deliveries", "replay", dead.id, "--json")).stdout) as Record<string, unknown>;
    expect(again).toEqual({ replayed: [], notFound: [], notDead: [dead.id] });
  });

  it("rejects bad ids and filters with exit status 2, and says which id is unknown", async () => {
    const badId = await funnel("seen", "deliveries", "replay", "not-a-uuid");
    expect(badId.code).toBe(2);
    expect(badId.stderr).toMatch(/^funnel: InvalidArgument: ids\[0\]: .* is not a UUID/);
    const badStatus = await funnel("seen", "deliveries", "list", "--status", "lost");
    expect(badStatus.code).toBe(2);
    expect(badStatus.stderr).toMatch(/status: one of pending, delivered, dead, cancelled/);
    const missing = await funnel("seen", "deliveries", "show", "00000000-0000-0000-0000-000000000000");
    expect(missing).toMatchObject({ code: 1, stderr: "funnel: NotFound: id: no delivery 00000000-0000-0000-0000-000000000000\n" });
  });
});
