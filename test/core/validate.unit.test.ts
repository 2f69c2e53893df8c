import { Code, ConnectError } from "@connectrpc/connect";
import type { DescMessage, JsonValue } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  ElementClickSchema,
  EventSchema,
  PageViewSchema,
  PageViewStartSchema,
  QualityChangeSchema,
  SearchFilterSchema,
  VideoCompleteSchema,
} from "../../gen/funnel/ingest/v1/ingest_pb.js";
import { assertFlatMessage, isUuid, parseMessage } from "../../services/core/validate.js";

/** The invalid_argument message `parseMessage` refuses `json` with. */
function refusal(schema: DescMessage, json: JsonValue | undefined): string {
  try {
    parseMessage(schema, json, "data");
  } catch (error) {
    if (error instanceof ConnectError && error.code === Code.InvalidArgument) return error.rawMessage;
    throw error;
  }
  throw new Error(`accepted ${JSON.stringify(json)}`);
}

const UUID = "0f8fad5b-d9cb-469f-a165-70867728950e";

describe("event data against its message and declared rules", () => {
  it("parses a valid object by proto or JSON names, null meaning absent for optional fields", () => {
    expect(parseMessage(ElementClickSchema, { element_type: "movie", page_type: "home" }, "data")).toMatchObject({ elementType: "movie", pageType: "home" });
    expect(parseMessage(ElementClickSchema, { elementType: "movie", pageType: "😀".repeat(64) }, "data")).toMatchObject({ elementType: "movie" });
    expect(parseMessage(QualityChangeSchema, { video_id: "v", old_quality: 720, new_quality: 10_000 }, "data")).toMatchObject({ oldQuality: 720, newQuality: 10_000 });
    expect(parseMessage(VideoCompleteSchema, { video_id: "v", duration_total: false }, "data")).toMatchObject({ durationTotal: false });
    expect(parseMessage(SearchFilterSchema, { search_query: "", filters: "" }, "data")).toMatchObject({ searchQuery: "" });
    expect(parseMessage(PageViewSchema, { page_view_id: UUID.toUpperCase(), duration_seconds: null, paired: true }, "data")).toMatchObject({ paired: true });
    expect(parseMessage(PageViewSchema, { duration_seconds: 1.5 }, "data").durationSeconds).toBe(1.5);
  });

  it("refuses what is not an object, naming the path", () => {
    expect(refusal(ElementClickSchema, undefined)).toBe("data: must be an object, got nothing");
    expect(refusal(ElementClickSchema, null)).toBe("data: must be an object, got null");
    expect(refusal(ElementClickSchema, [])).toBe("data: must be an object, got an array");
    expect(refusal(ElementClickSchema, "movie")).toBe('data: must be an object, got string "movie"');
  });

  it("refuses unknown keys, a field given twice, and a missing required field, naming it", () => {
    expect(refusal(ElementClickSchema, { element_type: "a", page_type: "b", colour: "red" })).toBe("data.colour: unknown field");
    expect(refusal(ElementClickSchema, { element_type: "a", elementType: "a", page_type: "b" })).toBe("data.element_type: given twice (by its proto and its JSON name)");
    expect(refusal(ElementClickSchema, { element_type: "a" })).toBe("data.page_type: is required");
    expect(refusal(ElementClickSchema, { element_type: "a", page_type: null })).toBe("data.page_type: is required");
    expect(refusal(VideoCompleteSchema, { video_id: "v" })).toBe("data.duration_total: is required");
  });

  it("checks strings: type, length in characters, UUID form", () => {
    expect(refusal(ElementClickSchema, { element_type: 5, page_type: "b" })).toBe("data.element_type: must be a string, got number 5");
    expect(refusal(ElementClickSchema, { element_type: {}, page_type: "b" })).toBe("data.element_type: must be a string, got an object");
    expect(refusal(ElementClickSchema, { element_type: "", page_type: "b" })).toBe("data.element_type: must not be empty");
    expect(refusal(ElementClickSchema, { element_type: "a", page_type: "x".repeat(65) })).toBe("data.page_type: must have at most 64 characters, got 65");
    expect(refusal(SearchFilterSchema, { search_query: "q".repeat(1_025), filters: "" })).toBe("data.search_query: must have at most 1024 characters, got 1025");
    expect(refusal(PageViewStartSchema, { page_view_id: "not-a-uuid", page_type: "b" })).toBe('data.page_view_id: must be a UUID, got "not-a-uuid"');
    expect(refusal(PageViewStartSchema, { page_view_id: `${UUID}x`.repeat(3), page_type: "b" })).toBe(`data.page_view_id: must be a UUID, got ${JSON.stringify(`${UUID}x`.repeat(3).slice(0, 40))}`);
  });

  it("checks integers: whole numbers of the field's type within the declared bounds", () => {
    const quality = (old_quality: JsonValue) => refusal(QualityChangeSchema, { video_id: "v", old_quality, new_quality: 1 });
    expect(quality(0)).toBe("data.old_quality: must be at least 1, got 0");
    expect(quality(10_001)).toBe("data.old_quality: must be at most 10000, got 10001");
    expect(quality(1.5)).toBe("data.old_quality: must be an integer, got number 1.5");
    expect(quality("720")).toBe('data.old_quality: must be an integer, got string "720"');
    expect(quality(2 ** 31)).toBe("data.old_quality: is out of range for int32");
    expect(quality(2 ** 53 + 2)).toBe("data.old_quality: must be an integer, got number 9007199254740994");
    expect(quality(true)).toBe("data.old_quality: must be an integer, got boolean true");
  });

  it("checks booleans and doubles by their JSON type", () => {
    expect(refusal(VideoCompleteSchema, { video_id: "v", duration_total: "true" })).toBe('data.duration_total: must be true or false, got string "true"');
    expect(refusal(VideoCompleteSchema, { video_id: "v", duration_total: 1 })).toBe("data.duration_total: must be true or false, got number 1");
    expect(refusal(PageViewSchema, { duration_seconds: "1.5" })).toBe('data.duration_seconds: must be a number, got string "1.5"');
  });

  it("takes only flat messages, naming the first field that is not", () => {
    for (const schema of [ElementClickSchema, QualityChangeSchema, PageViewSchema]) expect(() => assertFlatMessage(schema)).not.toThrow();
    expect(() => assertFlatMessage(EventSchema)).toThrow(/^funnel\.ingest\.v1\.Event\.\w+: only scalar fields \(string, bool, integers, float, double\) and repeated scalars are supported$/);
  });

  it("knows a UUID in any case, and nothing else", () => {
    expect(isUuid(UUID)).toBe(true);
    expect(isUuid(UUID.toUpperCase())).toBe(true);
    for (const text of ["", UUID.replaceAll("-", ""), `{${UUID}}`, ` ${UUID}`, `${UUID}\n`, UUID.replace("0", "g")]) expect(isUuid(text), text).toBe(false);
  });
});
