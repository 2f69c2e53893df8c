import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { EventSchema, SendBatchRequestSchema } from "../../gen/funnel/ingest/v1/ingest_pb.js";
import { QueryAnalyticsResponseSchema } from "../../gen/funnel/ops/v1/ops_pb.js";
import { PartnerSchema } from "../../gen/funnel/postback/v1/partner_pb.js";
import { MarkSeenResponseSchema } from "../../gen/funnel/seen/v1/seen_pb.js";
import { entry, findViolation, MAX_STRUCT_DEPTH } from "../../services/core/request-check.js";

const TOO_DEEP = `nested deeper than ${MAX_STRUCT_DEPTH} levels`;
const BAD_TIME = "not a valid time (0001-01-01 to 9999-12-31 UTC)";
const BAD_DURATION = "not a valid duration (at most 10,000 years either way)";

describe("the request check", () => {
  it("finds the first bad text of a message by its field path: nested, repeated, maps, oneofs and Struct data", () => {
    const batch = (data: Record<string, unknown>) =>
      create(SendBatchRequestSchema, { events: [{ event: "element_click", data: { ok: "fine" } }, { event: "element_click", data: data as never }] });
    expect(findViolation(SendBatchRequestSchema, batch({ page_type: "x", list: ["a", { deep: "b" }] }))).toBeUndefined();
    expect(findViolation(SendBatchRequestSchema, batch({ page_type: "a\u0000" }))).toEqual({ path: "events[1].data.page_type", reason: "contains a NUL character" });
    expect(findViolation(SendBatchRequestSchema, batch({ list: ["a", { deep: "\ud800" }] }))).toEqual({
      path: "events[1].data.list[1].deep",
      reason: "contains a lone surrogate (not valid Unicode)",
    });
    expect(findViolation(SendBatchRequestSchema, batch({ "bad\u0000key": 1 }))).toEqual({ path: "events[1].data", reason: "a key contains a NUL character" });
    expect(findViolation(SendBatchRequestSchema, batch({ "odd key": "\u0000" }))?.path).toBe('events[1].data["odd key"]');
    expect(findViolation(EventSchema, create(EventSchema, { event: "e", sessionId: "s\u0000" }))).toEqual({ path: "session_id", reason: "contains a NUL character" });
    // A skipped field is left to its handler; only top-level names are skipped.
    expect(findViolation(EventSchema, create(EventSchema, { event: "e", sessionId: "s\u0000" }), new Set(["session_id"]))).toBeUndefined();
    expect(findViolation(SendBatchRequestSchema, batch({ page_type: "a\u0000" }), new Set(["data"]))?.path).toBe("events[1].data.page_type");
    // A map of strings, and a oneof member inside a message.
    const partner = create(PartnerSchema, { id: "p", install: { enabled: true, urlTemplate: "https://x", headers: { "x-ok": "1", "x-bad": "\ud800" } } });
    expect(findViolation(PartnerSchema, partner)).toEqual({ path: "install.headers.x-bad", reason: "contains a lone surrogate (not valid Unicode)" });
    const response = create(MarkSeenResponseSchema, { identity: { kind: { case: "client", value: { userId: "u", boundUids: ["1", "2\u0000"] } } } });
    expect(findViolation(MarkSeenResponseSchema, response)).toEqual({ path: "identity.client.bound_uids[1]", reason: "contains a NUL character" });
  });

  it("names a bad map key at the map, and writes keys that do not read plainly quoted and shortened", () => {
    const partner = create(PartnerSchema, { id: "p", download: { headers: { "x-\u0000": "v" } } });
    expect(findViolation(PartnerSchema, partner)).toEqual({ path: "download.headers", reason: "a key contains a NUL character" });
    expect(entry("params", "utm_source")).toBe("params.utm_source");
    expect(entry("", "plain")).toBe("plain");
    expect(entry("params", "1st")).toBe('params["1st"]');
    expect(entry("params", 'a"b')).toBe('params["a\\"b"]');
    expect(entry("params", "k".repeat(100))).toBe(`params["${"k".repeat(64)}"]`);
  });

  it("refuses a Struct nested deeper than the limit at the field that holds it", () => {
    const nested = (levels: number) => {
      let data: Record<string, unknown> = { leaf: "x" };
      for (let i = 1; i < levels; i += 1) data = { d: data };
      return create(EventSchema, { event: "e", data: data as never });
    };
    expect(findViolation(EventSchema, nested(MAX_STRUCT_DEPTH))).toBeUndefined();
    expect(findViolation(EventSchema, nested(MAX_STRUCT_DEPTH + 1))).toEqual({ path: "data", reason: TOO_DEEP });
    expect(findViolation(EventSchema, nested(5_000))).toEqual({ path: "data", reason: TOO_DEEP });
    // Arrays count as levels too.
    let list: unknown = "x";
    for (let i = 0; i < MAX_STRUCT_DEPTH; i += 1) list = [list];
    expect(findViolation(EventSchema, create(EventSchema, { event: "e", data: { list } as never }))).toEqual({ path: "data", reason: TOO_DEEP });
  });

  it("walks ListValue rows as messages: their strings and their depth", () => {
    const rows = (values: unknown[]) => create(QueryAnalyticsResponseSchema, { rows: [{ values: [] }, { values: values.map(toValue) }] });
    expect(findViolation(QueryAnalyticsResponseSchema, rows(["a", 1, true, null, { k: ["v"] }]))).toBeUndefined();
    expect(findViolation(QueryAnalyticsResponseSchema, rows(["a", "b\u0000"]))).toEqual({ path: "rows[1][1]", reason: "contains a NUL character" });
    expect(findViolation(QueryAnalyticsResponseSchema, rows([{ "odd key": "\ud800" }]))).toEqual({ path: 'rows[1][0]["odd key"]', reason: "contains a lone surrogate (not valid Unicode)" });
    expect(findViolation(QueryAnalyticsResponseSchema, rows([{ "k\u0000": 1 }]))).toEqual({ path: "rows[1][0]", reason: "a key contains a NUL character" });
    let deep: unknown = "x";
    for (let i = 0; i < MAX_STRUCT_DEPTH; i += 1) deep = [deep];
    expect(findViolation(QueryAnalyticsResponseSchema, rows([deep]))).toEqual({ path: "rows[1]", reason: TOO_DEEP });
  });

  it("refuses times and durations the binary form carries but the JSON form cannot", () => {
    const at = (seconds: bigint, nanos = 0) => findViolation(EventSchema, create(EventSchema, { event: "e", clientTime: { seconds, nanos } }));
    expect(at(0n)).toBeUndefined();
    expect(at(-62_135_596_800n)).toBeUndefined();
    expect(at(253_402_300_799n, 999_999_999)).toBeUndefined();
    expect(at(-62_135_596_801n)).toEqual({ path: "client_time", reason: BAD_TIME });
    expect(at(253_402_300_800n)).toEqual({ path: "client_time", reason: BAD_TIME });
    expect(at(2n ** 62n)).toEqual({ path: "client_time", reason: BAD_TIME });
    expect(at(0n, -1)).toEqual({ path: "client_time", reason: BAD_TIME });
    expect(at(0n, 1_000_000_000)).toEqual({ path: "client_time", reason: BAD_TIME });

    const timeout = (seconds: bigint, nanos = 0) => findViolation(PartnerSchema, create(PartnerSchema, { id: "p", timeout: { seconds, nanos } }));
    expect(timeout(315_576_000_000n, 999_999_999)).toBeUndefined();
    expect(timeout(-315_576_000_000n, -999_999_999)).toBeUndefined();
    expect(timeout(315_576_000_001n)).toEqual({ path: "timeout", reason: BAD_DURATION });
    expect(timeout(-315_576_000_001n)).toEqual({ path: "timeout", reason: BAD_DURATION });
    // Seconds and nanos of opposite signs, and nanos beyond a second.
    expect(timeout(1n, -1)).toEqual({ path: "timeout", reason: BAD_DURATION });
    expect(timeout(-1n, 1)).toEqual({ path: "timeout", reason: BAD_DURATION });
    expect(timeout(0n, 1_000_000_000)).toEqual({ path: "timeout", reason: BAD_DURATION });
    const retry = create(PartnerSchema, { id: "p", retry: { maxDelay: { seconds: 1n, nanos: -5 } } });
    expect(findViolation(PartnerSchema, retry)).toEqual({ path: "retry.max_delay", reason: BAD_DURATION });
  });
});

/** A JSON value as a google.protobuf.Value in protobuf-es's message form. */
function toValue(value: unknown): Record<string, unknown> {
  if (value === null) return { kind: { case: "nullValue", value: 0 } };
  if (typeof value === "string") return { kind: { case: "stringValue", value } };
  if (typeof value === "number") return { kind: { case: "numberValue", value } };
  if (typeof value === "boolean") return { kind: { case: "boolValue", value } };
  if (Array.isArray(value)) return { kind: { case: "listValue", value: { values: value.map(toValue) } } };
  const fields = Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([key, inner]) => [key, toValue(inner)]));
  return { kind: { case: "structValue", value: { fields } } };
}
