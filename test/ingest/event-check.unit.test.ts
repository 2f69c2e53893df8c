import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ElementClickSchema, EventSchema, PageViewStartSchema, RejectReason, VideoCompleteSchema } from "../../gen/funnel/ingest/v1/ingest_pb.js";
import { defineEventTypes, eventTypes } from "../../services/ingest/registry.js";
import { checkEvent, RejectedEvent } from "../../services/ingest/validation.js";

const MAX_EVENT_BYTES = 1_000;
const UUID = "0F8FAD5B-D9CB-469F-A165-70867728950E";
const event = (init: MessageInitShape<typeof EventSchema>) => create(EventSchema, init);
const click = { element_type: "movie", page_type: "home" };

/** The reason, type and message an event is rejected with. */
function rejection(init: MessageInitShape<typeof EventSchema>, size = 100): { reason: string; type: string; message: string } {
  try {
    checkEvent(event(init), eventTypes, size, MAX_EVENT_BYTES);
  } catch (error) {
    if (!(error instanceof RejectedEvent)) throw error;
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.toConnectError().rawMessage).toBe(error.message);
    return { reason: RejectReason[error.reason], type: error.eventType, message: error.message };
  }
  throw new Error("the event was accepted");
}

describe("checking one ingest event", () => {
  it("takes the data of a known type as its table's columns, and the envelope as given", () => {
    const checked = checkEvent(
      event({ event: "element_click", data: click, eventId: UUID, sessionId: "s-1", seq: 3n, clientTime: { seconds: 1_700_000_000n, nanos: 5_000_000 } }),
      eventTypes,
      100,
      MAX_EVENT_BYTES,
    );
    expect(checked).toMatchObject({ eventId: UUID.toLowerCase(), sessionId: "s-1", seq: 3n, columns: click });
    expect(checked.type.name).toBe("element_click");
    expect(checked.clientTime?.toISOString()).toBe("2023-11-14T22:13:20.005Z");
  });

  it("takes the typed form like the untyped one, with every field present", () => {
    const typed = checkEvent(event({ typed: { case: "videoComplete", value: create(VideoCompleteSchema, { videoId: "v" }) } }), eventTypes, 100, MAX_EVENT_BYTES);
    expect([typed.type.name, typed.columns]).toEqual(["video_complete", { video_id: "v", duration_total: false }]);
    const named = checkEvent(event({ event: "element_click", typed: { case: "elementClick", value: create(ElementClickSchema, { elementType: "a", pageType: "b" }) } }), eventTypes, 100, MAX_EVENT_BYTES);
    expect(named.columns).toEqual({ element_type: "a", page_type: "b" });
  });

  it("refuses an event over the size limit before reading it", () => {
    expect(rejection({ event: "element_click", data: click }, MAX_EVENT_BYTES + 1)).toEqual({
      reason: "TOO_LARGE",
      type: "element_click",
      message: `event: ${MAX_EVENT_BYTES + 1} bytes is over the limit of ${MAX_EVENT_BYTES} bytes per event`,
    });
  });

  it("names an unknown type and the known ones, quoting at most 64 characters of it", () => {
    expect(rejection({ event: "purchase", data: {} })).toEqual({
      reason: "UNKNOWN_TYPE",
      type: "unknown",
      message: 'event: unknown event type "purchase"; known types: element_click, page_view_start, page_view_end, quality_change, video_complete, search_filter',
    });
    expect(rejection({ event: "x".repeat(10_000), data: {} }).message).toMatch(new RegExp(`^event: unknown event type "${"x".repeat(64)}"; known types: `));
  });

  it("refuses a bad envelope as such, naming the field", () => {
    const envelope = (init: MessageInitShape<typeof EventSchema>) => {
      const { reason, message } = rejection({ event: "element_click", data: click, ...init });
      return `${reason}: ${message}`;
    };
    expect(envelope({ eventId: "42" })).toBe("INVALID_ENVELOPE: event_id: must be a UUID");
    expect(envelope({ sessionId: "" })).toBe("INVALID_ENVELOPE: session_id: must have 1 to 128 characters");
    expect(envelope({ sessionId: "s".repeat(129) })).toBe("INVALID_ENVELOPE: session_id: must have 1 to 128 characters");
    expect(envelope({ seq: 1n })).toBe("INVALID_ENVELOPE: seq: requires session_id");
    expect(envelope({ sessionId: "s", seq: 0n })).toBe("INVALID_ENVELOPE: seq: must be 1 or more, got 0");
    expect(envelope({ token: "a\u0000" })).toBe("INVALID_ENVELOPE: token: contains a NUL character");
    expect(envelope({ clientTime: { seconds: 2n ** 40n, nanos: 0 } })).toBe("INVALID_ENVELOPE: client_time: not a valid time (0001-01-01 to 9999-12-31 UTC)");
  });

  it("refuses both forms at once, or a typed member another type names", () => {
    const typedClick = { case: "elementClick" as const, value: create(ElementClickSchema, { elementType: "a", pageType: "b" }) };
    expect(rejection({ data: click, typed: typedClick })).toEqual({ reason: "INVALID_ENVELOPE", type: "element_click", message: "data: must be absent when element_click is set" });
    expect(rejection({ event: "video_complete", typed: typedClick })).toEqual({
      reason: "INVALID_ENVELOPE",
      type: "element_click",
      message: 'event: names "video_complete" but element_click is set',
    });
  });

  it("refuses bad data as such, under the path of the form it came in", () => {
    expect(rejection({ event: "element_click", data: { element_type: "movie" } })).toEqual({ reason: "INVALID_DATA", type: "element_click", message: "data.page_type: is required" });
    expect(rejection({ event: "element_click", data: { ...click, page_type: "a\u0000" } })).toMatchObject({ reason: "INVALID_DATA", message: "data.page_type: contains a NUL character" });
    expect(rejection({ event: "element_click", data: { ...click, extra: 1 } }).message).toBe("data.extra: unknown field");
    const start = create(PageViewStartSchema, { pageViewId: "nope", pageType: "home" });
    expect(rejection({ typed: { case: "pageViewStart", value: start } })).toEqual({
      reason: "INVALID_DATA",
      type: "page_view_start",
      message: 'page_view_start.page_view_id: must be a UUID, got "nope"',
    });
    expect(rejection({ typed: { case: "elementClick", value: create(ElementClickSchema, { elementType: "a", pageType: "" }) } }).message).toBe(
      "element_click.page_type: must not be empty",
    );
  });
});

describe("event types", () => {
  it("refuse names that are no table name, twice-defined types and fields the envelope owns", () => {
    expect(() => defineEventTypes([{ name: "Purchase", data: ElementClickSchema }])).toThrow('event type "Purchase": must be a lower-case table name other than page_view and unknown');
    expect(() => defineEventTypes([{ name: "page_view", data: ElementClickSchema }])).toThrow(/must be a lower-case table name other than page_view and unknown/);
    expect(() => defineEventTypes([{ name: "unknown", data: ElementClickSchema }])).toThrow(/other than page_view and unknown/);
    expect(() => defineEventTypes([{ name: "a", data: ElementClickSchema }, { name: "a", data: ElementClickSchema }])).toThrow('event type "a" is defined twice');
    expect(() => defineEventTypes([{ name: "clicks", data: ElementClickSchema, pageView: "start" }])).toThrow('event type "clicks": a page-view half needs page_view_id and page_type fields');
    expect(() => defineEventTypes([{ name: "element_click", data: VideoCompleteSchema }])).toThrow(
      'event type "element_click": Event.typed.element_click holds funnel.ingest.v1.ElementClick, not funnel.ingest.v1.VideoComplete',
    );
    expect(() => defineEventTypes([{ name: "events", data: EventSchema }])).toThrow(/^funnel\.ingest\.v1\.Event\.\w+: only scalar fields/);
  });
});
