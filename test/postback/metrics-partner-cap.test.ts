import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../services/app.js";
import { postbackClients, seedTemplate, testPartner } from "../support/postback-clients.js";
import { startTestApp } from "../support/stores.js";

describe("per-partner series", () => {
  let app: App;
  beforeAll(async () => {
    app = await startTestApp({ roles: ["api"], env: { METRICS_MAX_PARTNER_SERIES: "2", POSTBACK_ALLOW_PRIVATE: "true" } });
  });
  afterAll(async () => {
    await app?.stop();
  });

  it("are capped: partners past METRICS_MAX_PARTNER_SERIES are counted under partner=\"other\"", async () => {
    const { partners, events } = postbackClients(app.url);
    const ids = ["710001", "710002", "710003", "710004"];
    for (const id of ids) await partners.createPartner({ partner: testPartner(id, seedTemplate("http://127.0.0.1:9")) });
    // An install without a download is unattributed, counted by partner.
    for (const id of ids) await events.recordInstall({ stag: `${id}_click` });
    const metrics = await (await fetch(`${app.metricsUrl}/metrics`)).text();
    const series = [...metrics.matchAll(/^funnel_postback_unattributed_total\{event="install",partner="([^"]*)"\} (\d+)/gm)].map(([, partner = "", n = ""]) => [partner, Number(n)] as const);
    expect(new Map(series)).toEqual(new Map([["710001", 1], ["710002", 1], ["other", 2]]));
  });
});
