import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { OpsService } from "../../gen/funnel/ops/v1/ops_pb.js";
import { DeliveryService } from "../../gen/funnel/postback/v1/delivery_pb.js";
import { SeenAdminService } from "../../gen/funnel/seen/v1/admin_pb.js";
import { TrackerService } from "../../gen/funnel/tracker/v1/tracker_pb.js";
import { definePaging, isIsoTime, isMicros, MAX_PAGE_SIZE } from "../../services/core/paging.js";
import { isUuid } from "../../services/core/validate.js";

// Two RPCs whose keys have the same shape: only the RPC name tells their tokens apart.
const postbacks = definePaging({ method: DeliveryService.method.listDeliveries, sizeField: "limit", defaultSize: 50, key: [isMicros, isUuid] });
const seenDeliveries = definePaging({ method: SeenAdminService.method.listDeliveries, sizeField: "limit", defaultSize: 100, key: [isMicros, isUuid] });
const trackers = definePaging({ method: TrackerService.method.listTrackers, sizeField: "page_size", defaultSize: 100, key: [isUuid] });

const ID = "0b6e4c1e-7a43-4c52-9a54-2f0f3c0a9d11";
const rows = (n: number) => Array.from({ length: n }, (_, i) => ({ us: String(1_764_720_000_000_000 + i), id: `${ID.slice(0, -2)}${String(i).padStart(2, "0")}` }));

/** The error a call throws, or a test failure when it does not throw. */
function thrown(call: () => unknown): ConnectError {
  try {
    call();
  } catch (error) {
    expect(error).toBeInstanceOf(ConnectError);
    return error as ConnectError;
  }
  throw new Error("expected the call to throw");
}

const tokenOf = (value: unknown) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
const POSTBACK_RPC = "funnel.postback.v1.DeliveryService.ListDeliveries";

describe("page size", () => {
  it("takes 0 as the RPC's default and 1 to the maximum as asked", () => {
    expect(postbacks.size(0)).toBe(50);
    expect(seenDeliveries.size(0)).toBe(100);
    expect(postbacks.size(1)).toBe(1);
    expect(postbacks.size(MAX_PAGE_SIZE)).toBe(MAX_PAGE_SIZE);
  });

  it.each([-1, MAX_PAGE_SIZE + 1, 2 ** 31 - 1, 1.5, Number.NaN])("refuses %s naming the size field", (size) => {
    const error = thrown(() => trackers.size(size));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toBe(`page_size: must be from 1 to ${MAX_PAGE_SIZE} (0 means 100), got ${size}`);
  });

  it("describes 0 as the RPC says", () => {
    const partners = definePaging({ method: TrackerService.method.listTrackers, sizeField: "page_size", defaultSize: 1_000_000, zeroMeans: "every match", key: [isUuid] });
    expect(thrown(() => partners.size(1001)).rawMessage).toMatch(/^page_size: must be from 1 to 1000 \(0 means every match\)/);
  });
});

describe("page token", () => {
  it("continues after the last row of a page, and is empty on the last page", () => {
    const all = rows(5);
    const seen: string[] = [];
    let token = "";
    do {
      const after = postbacks.after(token);
      const from = after === undefined ? 0 : all.findIndex((row) => row.us === after[0] && row.id === after[1]) + 1;
      const page = postbacks.page(all.slice(from, from + 3), 2, (row) => [row.us, row.id]);
      expect(page.rows.length).toBeLessThanOrEqual(2);
      seen.push(...page.rows.map((row) => row.id));
      token = page.nextPageToken;
    } while (token !== "");
    expect(seen).toEqual(all.map((row) => row.id));
  });

  it("gives no token when the extra row is missing", () => {
    expect(postbacks.page(rows(2), 2, (row) => [row.us, row.id])).toEqual({ rows: rows(2), nextPageToken: "" });
    expect(postbacks.page([], 2, (row: { us: string; id: string }) => [row.us, row.id]).nextPageToken).toBe("");
  });

  it("is URL-safe", () => {
    const { nextPageToken } = postbacks.page(rows(3), 2, (row) => [row.us, row.id]);
    expect(nextPageToken).toMatch(/^[A-Za-z0-9_-]+$/);
  });

  const issued = postbacks.page(rows(3), 2, (row) => [row.us, row.id]).nextPageToken;
  /** A token as this RPC writes them (its version, name and the digest of no filters) with other key parts. */
  const [VERSION, RPC, NO_FILTERS] = JSON.parse(Buffer.from(issued, "base64url").toString()) as [number, string, string];
  const forged = (...key: unknown[]) => tokenOf([VERSION, RPC, NO_FILTERS, ...key]);
  const hostile: readonly (readonly [string, string])[] = [
    ["garbage", "garbage"],
    ["not base64url", "not a token!"],
    ["a NUL byte", "\u0000"],
    ["a NUL inside a key part", forged("1764720000000000", `${ID}\u0000`)],
    ["a NUL as a key part", forged("\u0000", ID)],
    ["a huge token", "A".repeat(1_000_000)],
    ["a huge key part", forged("1".repeat(100_000), ID)],
    ["another RPC's token of the same shape", seenDeliveries.page(rows(3), 2, (row) => [row.us, row.id]).nextPageToken],
    ["another RPC's token of another shape", trackers.page(rows(3), 2, (row) => [row.id]).nextPageToken],
    ["a token of the old dotted form", tokenOf(`1764720000000000.${ID}`)],
    ["another version", tokenOf([VERSION + 1, RPC, NO_FILTERS, "1764720000000000", ID])],
    ["the first version, without filters", tokenOf([1, POSTBACK_RPC, "1764720000000000", ID])],
    ["a number for the filters", tokenOf([VERSION, RPC, 7, "1764720000000000", ID])],
    ["too few key parts", forged("1764720000000000")],
    ["too many key parts", forged("1764720000000000", ID, ID)],
    ["a number for a key part", forged(1764720000000000, ID)],
    ["a key part that fails its check", forged("1764720000000000", "'; DROP TABLE x; --")],
    ["a negative time", forged("-1", ID)],
    ["JSON that is not an array", tokenOf({ 0: 1, 1: POSTBACK_RPC, length: 4 })],
    ["JSON null", tokenOf("null")],
    ["invalid UTF-8", Buffer.from([0xff, 0xfe, 0x5b, 0x31, 0x2c]).toString("base64url")],
    ["a truncated token", issued.slice(0, -3)],
  ];

  it.each(hostile)("refuses %s with invalid_argument naming page_token", (_, token) => {
    const error = thrown(() => postbacks.after(token));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toMatch(/^page_token: not a token this service issued for ListDeliveries;/);
    expect(error.rawMessage.length).toBeLessThan(200);
  });

  it("reads back exactly the key it wrote", () => {
    expect(postbacks.after(issued)).toEqual(["1764720000000001", rows(2)[1]?.id]);
    expect(postbacks.after("")).toBeUndefined();
  });

  it("continues only a listing with the same filters", () => {
    const filters = { partnerId: "acme", status: 3, from: new Date(0), seconds: 10n };
    const token = postbacks.page(rows(3), 2, (row) => [row.us, row.id], filters).nextPageToken;
    expect(postbacks.after(token, { ...filters })).toEqual(["1764720000000001", rows(2)[1]?.id]);
    for (const other of [undefined, { ...filters, partnerId: "other" }, { ...filters, seconds: 11n }]) {
      const error = thrown(() => postbacks.after(token, other));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toMatch(/^page_token: issued for a request with other filters;/);
    }
    expect(thrown(() => postbacks.after(issued, filters)).rawMessage).toMatch(/^page_token: issued for a request with other filters;/);
  });
});

describe("key part checks", () => {
  it("accept what the stores write and nothing else", () => {
    expect(isMicros("1764720000000000")).toBe(true);
    expect(isMicros("1e15")).toBe(false);
    expect(isMicros("1".repeat(18))).toBe(false);
    expect(isIsoTime(new Date(0).toISOString())).toBe(true);
    expect(isIsoTime("2026-13-45T99:99:99.999Z")).toBe(false);
    expect(isIsoTime("2026-12-03")).toBe(false);
  });

  it("tell jobs' tokens from postbacks'", () => {
    const jobs = definePaging({ method: OpsService.method.listJobs, sizeField: "limit", defaultSize: 50, key: [isMicros, isUuid] });
    const token = jobs.page(rows(2), 1, (row) => [row.us, row.id]).nextPageToken;
    expect(jobs.after(token)).toEqual(["1764720000000000", rows(1)[0]?.id]);
    expect(thrown(() => postbacks.after(token)).code).toBe(Code.InvalidArgument);
  });
});
