import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventOutcome } from "../../gen/funnel/postback/v1/postback_pb.js";
import type { App } from "../../services/app.js";
import { startPartnerServer, type PartnerServer } from "../support/partner-server.js";
import { postbackClients, seedTemplate, testPartner } from "../support/postback-clients.js";
import { deliveriesSettled, eventually, startTestApp } from "../support/stores.js";
import { deliverQueue as postbackDeliverQueue } from "../../services/postback/queue.js";

describe("postback once-only across restarts", () => {
  let partner: PartnerServer;
  let app: App | undefined;
  const env = { POSTBACK_ALLOW_PRIVATE: "true", JOBS_POLL_SECONDS: "1" };

  beforeAll(async () => {
    partner = await startPartnerServer();
  });
  afterAll(async () => {
    await app?.stop();
    await partner.close();
  });

  it("sends an install queued before a restart once, and never again after it", async () => {
    // An API-only process takes the events; nothing sends yet.
    const first = await startTestApp({ roles: ["api"], env });
    app = first;
    let api = postbackClients(first.url);
    await api.partners.createPartner({ partner: testPartner("42", seedTemplate(partner.url)) });
    await fetch(`${first.url}/download?stag=42_abc&clickID=x1`, { redirect: "manual" });
    expect((await api.events.recordInstall({ stag: "42_abc" })).outcome).toBe(EventOutcome.QUEUED);
    expect((await api.events.recordInstall({ stag: "42_abc" })).outcome).toBe(EventOutcome.DUPLICATE);
    await first.stop();
    expect(partner.requests).toHaveLength(0);

    // A new process with a worker sends what was queued.
    const second = await startTestApp({ env });
    app = second;
    api = postbackClients(second.url);
    await eventually(async () => (partner.received("/postback/42/?clickID=abc&externalClickID=x1&userID=&ts=").length === 2 ? true : undefined), 10_000, "download and install postbacks");
    expect((await api.events.recordInstall({ stag: "42_abc" })).outcome).toBe(EventOutcome.DUPLICATE);
    const { rows } = await second.pool.query<{ id: string }>("SELECT id::text FROM postbacks WHERE stag = '42_abc'");
    await deliveriesSettled(second, postbackDeliverQueue, rows.map((row) => row.id));
    expect(partner.requests).toHaveLength(2);
  });
});
