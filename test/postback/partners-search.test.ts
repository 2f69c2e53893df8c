import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../services/app.js";
import { postbackClients, testPartner, type PostbackClients } from "../support/postback-clients.js";
import { startTestApp } from "../support/stores.js";

const failure = (promise: Promise<unknown>) => promise.then(() => undefined, (e: unknown) => ConnectError.from(e));

describe("PartnerService.ListPartners search and pages", () => {
  let app: App;
  let api: PostbackClients;

  beforeAll(async () => {
    app = await startTestApp({ roles: ["api"] });
    api = postbackClients(app.url);
    const rows = [
      ["acme", "Acme Ads", true],
      ["acme-2", "Second", false],
      ["beta", "Beta 100%", true],
      ["gamma", "Gamma_net", true],
      ["delta", "ACME reseller", true],
    ] as const;
    for (const [id, name, enabled] of rows) {
      await api.partners.createPartner({ partner: testPartner(id, "https://p.example/i?c={stag_clickID}", { name, enabled }) });
    }
  });
  afterAll(async () => {
    await app?.stop();
  });

  const ids = (res: { partners: { id: string }[] }) => res.partners.map((p) => p.id);

  it("still lists every partner by id without a page size", async () => {
    const all = await api.partners.listPartners({});
    expect(ids(all)).toEqual(["acme", "acme-2", "beta", "delta", "gamma"]);
    expect(all.nextPageToken).toBe("");
    expect(all.totalCount).toBe(5n);
  });

  it("pages through the matches of a query on id or name, any case, with their total", async () => {
    const first = await api.partners.listPartners({ query: "AcMe", pageSize: 2 });
    expect(ids(first)).toEqual(["acme", "acme-2"]);
    expect(first.totalCount).toBe(3n);
    expect(first.nextPageToken).not.toBe("");
    const second = await api.partners.listPartners({ query: "AcMe", pageSize: 2, pageToken: first.nextPageToken });
    expect(ids(second)).toEqual(["delta"]);
    expect(second.nextPageToken).toBe("");
    expect(second.totalCount).toBe(3n);
    expect(ids(await api.partners.listPartners({ query: "acme", enabled: false }))).toEqual(["acme-2"]);
    expect(ids(await api.partners.listPartners({ enabled: true, pageSize: 1000 }))).toEqual(["acme", "beta", "delta", "gamma"]);
  });

  it("takes % and _ in a query as themselves", async () => {
    expect(ids(await api.partners.listPartners({ query: "%", pageSize: 10 }))).toEqual(["beta"]);
    expect(ids(await api.partners.listPartners({ query: "_", pageSize: 10 }))).toEqual(["gamma"]);
    expect((await api.partners.listPartners({ query: "nothing like it", pageSize: 10 })).totalCount).toBe(0n);
  });

  it("refuses a bad page token, page size or query naming the field", async () => {
    const cases: [Parameters<typeof api.partners.listPartners>[0], RegExp][] = [
      [{ pageToken: "not a token!" }, /^page_token: not a token this service issued/],
      [{ pageToken: Buffer.from("a b").toString("base64url") }, /^page_token: not a token this service issued/],
      [{ pageSize: 1001 }, /^page_size: must be from 1 to 1000 \(0 means every match\), got 1001/],
      [{ query: "x".repeat(201) }, /^query: at most 200 characters/],
    ];
    for (const [req, message] of cases) {
      const error = await failure(api.partners.listPartners(req));
      expect(error?.code).toBe(Code.InvalidArgument);
      expect(error?.rawMessage).toMatch(message);
    }
    expect((await failure(postbackClients(app.url, "").partners.listPartners({ pageSize: 1 })))?.code).toBe(Code.Unauthenticated);
  });
});
