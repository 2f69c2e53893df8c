import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../services/app.js";
import { createPartnerDirectory } from "../../services/postback/partner-directory.js";
import { partnerFromProto } from "../../services/postback/partner-proto.js";
import { createPartnerRepository } from "../../services/postback/partner-repository.js";
import { testPartner } from "../support/postback-clients.js";
import { startTestApp } from "../support/stores.js";

describe("the partner directory", () => {
  let app: App;
  beforeAll(async () => {
    app = await startTestApp({ roles: ["api"] });
  });
  afterAll(async () => {
    await app?.stop();
  });

  it("sees every change made elsewhere and compiles again only the partners that changed", async () => {
    const repository = createPartnerRepository(app.pool);
    for (const id of ["dir-a", "dir-b"]) await repository.insertPartner(partnerFromProto(testPartner(id, "https://d.example/i?c={stag_clickID}")));
    // Checked against Postgres at every call.
    const directory = createPartnerDirectory(repository, 0);
    const a = await directory.get("dir-a");
    expect(a?.config.name).toBe("Partner dir-a");
    expect(await directory.get("dir-a")).toBe(a);

    // Another process changes one partner, adds one and removes none: only the changed one is new.
    await app.pool.query("UPDATE postback_partners SET name = 'Renamed', updated_at = now() WHERE id = 'dir-b'");
    await repository.insertPartner(partnerFromProto(testPartner("dir-c", "https://d.example/i?c={stag_clickID}")));
    expect((await directory.get("dir-b"))?.config.name).toBe("Renamed");
    expect((await directory.get("dir-c"))?.config.id).toBe("dir-c");
    expect(await directory.get("dir-a")).toBe(a);

    // A write in this process forgets what was read, yet keeps the unchanged partners' templates.
    directory.invalidate();
    expect(await directory.get("dir-a")).toBe(a);

    await app.pool.query("DELETE FROM postback_partners WHERE id = 'dir-a'");
    expect(await directory.get("dir-a")).toBeUndefined();
  });
});
