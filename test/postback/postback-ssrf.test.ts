import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeliveryStatus } from "../../gen/funnel/postback/v1/delivery_pb.js";
import type { App } from "../../services/app.js";
import { refusedReason } from "../../services/core/outbound/guard.js";
import { startPartnerServer, type PartnerServer } from "../support/partner-server.js";
import { postbackClients, testPartner, type PostbackClients } from "../support/postback-clients.js";
import { eventually, startTestApp } from "../support/stores.js";

describe("postback SSRF guard", () => {
  let app: App;
  let partner: PartnerServer;
  let api: PostbackClients;

  beforeAll(async () => {
    partner = await startPartnerServer();
    // POSTBACK_ALLOW_PRIVATE is not set: the local partner server must be refused.
    app = await startTestApp({ env: { JOBS_POLL_SECONDS: "1" } });
    api = postbackClients(app.url);
  });
  afterAll(async () => {
    await app?.stop();
    await partner?.close();
  });

  it("classifies loopback, private, link-local and metadata addresses", () => {
    expect(refusedReason("127.0.0.1")).toBe("loopback");
    expect(refusedReason("::1")).toBe("loopback");
    expect(refusedReason("::ffff:127.0.0.1")).toBe("loopback");
    expect(refusedReason("10.1.2.3")).toBe("private");
    expect(refusedReason("172.20.0.1")).toBe("private");
    expect(refusedReason("192.168.1.1")).toBe("private");
    expect(refusedReason("169.254.169.254")).toBe("cloud metadata");
    expect(refusedReason("169.254.10.1")).toBe("link-local");
    expect(refusedReason("fe80::1")).toBe("link-local");
    expect(refusedReason("fd12::1")).toBe("private (unique local)");
    expect(refusedReason("0.0.0.0")).toBe("unspecified");
    expect(refusedReason("8.8.8.8")).toBeUndefined();
    expect(refusedReason("2606:4700::1111")).toBeUndefined();
    expect(refusedReason("172.32.0.1")).toBeUndefined();
  });

  it("refuses a partner on a loopback address, by IP literal and by name, without sending", async () => {
    const port = new URL(partner.url).port;
    await api.partners.createPartner({ partner: testPartner("literal", `${partner.url}/literal`) });
    await api.partners.createPartner({ partner: testPartner("named", `http://localhost:${port}/named`) });
    const ids = [(await api.events.recordInstall({ stag: "literal_1" })).deliveryId, (await api.events.recordInstall({ stag: "named_1" })).deliveryId];
    const dead = await Promise.all(
      ids.map((id) =>
        eventually(async () => {
          const { delivery } = await api.deliveries.getDelivery({ id });
          return delivery?.status === DeliveryStatus.DEAD && delivery.attemptLog.length === 1 ? delivery : undefined;
        }, 10_000, "the refused postback"),
      ),
    );
    expect(dead[0]!.attemptLog[0]!.error).toBe("refused 127.0.0.1 (127.0.0.1): loopback address; set POSTBACK_ALLOW_PRIVATE=true to allow");
    expect(dead[1]!.attemptLog[0]!.error).toMatch(/^refused localhost \((127\.0\.0\.1|::1)\): loopback address/);
    expect(dead.every((d) => d.attemptLog[0]!.httpStatus === 0)).toBe(true);
    expect(partner.requests).toHaveLength(0);
  });

  it("refuses a partner on loopback written as an IPv4-mapped IPv6 literal, without sending", async () => {
    const port = new URL(partner.url).port;
    await api.partners.createPartner({ partner: testPartner("mapped", `http://[::ffff:127.0.0.1]:${port}/mapped`) });
    const { deliveryId } = await api.events.recordInstall({ stag: "mapped_1" });
    const dead = await eventually(async () => {
      const { delivery } = await api.deliveries.getDelivery({ id: deliveryId });
      return delivery?.status === DeliveryStatus.DEAD && delivery.attemptLog.length === 1 ? delivery : undefined;
    }, 10_000, "the refused postback");
    expect(dead.attemptLog[0]).toMatchObject({ httpStatus: 0, error: "refused ::ffff:7f00:1 (::ffff:7f00:1): loopback address; set POSTBACK_ALLOW_PRIVATE=true to allow" });
    expect(partner.received("/mapped")).toHaveLength(0);
  });
});
