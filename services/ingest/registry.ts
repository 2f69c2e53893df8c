import type { DescField, DescMessage } from "@bufbuild/protobuf";
import {
  ElementClickSchema,
  EventSchema,
  PageViewEndSchema,
  PageViewStartSchema,
  QualityChangeSchema,
  SearchFilterSchema,
  VideoCompleteSchema,
} from "../../gen/funnel/ingest/v1/ingest_pb.js";
import { assertFlatMessage } from "../core/validate.js";

/** One event type: its name (also its ClickHouse table) and the message its `data` must match. */
export interface EventType {
  readonly name: string;
  readonly data: DescMessage;
  /** Page-view halves are paired into `page_view` rows; their message has `page_view_id` and `page_type`. */
  readonly pageView?: "start" | "end";
}

/** Event types by name. */
export type EventTypes = ReadonlyMap<string, EventType>;

/** The table of paired page views. */
export const PAGE_VIEW_TABLE = "page_view";

/** Columns the service adds to every event row; a data field may not use these names. */
export const ENVELOPE_COLUMNS = ["event_id", "user_id", "timestamp", "client_time", "session_id", "seq", "anonymous_id", "inserted_at"] as const;

/**
 * The members of `Event.typed` (the typed form of an event) by their local
 * name (`elementClick`); each is named after its event type.
 */
export const TYPED_MEMBERS: ReadonlyMap<string, DescField> = new Map(
  (EventSchema.oneofs.find((oneof) => oneof.name === "typed")?.fields ?? []).map((field) => [field.localName, field]),
);

/**
 * Checks and indexes event types: names are table names, data messages are
 * flat and do not reuse the envelope's column names, page-view halves carry
 * the fields pairing needs, and a member of `Event.typed` named after a type
 * holds that type's message.
 */
export function defineEventTypes(types: readonly EventType[]): EventTypes {
  const byName = new Map<string, EventType>();
  for (const type of types) {
    if (!/^[a-z][a-z0-9_]{0,62}$/.test(type.name) || type.name === PAGE_VIEW_TABLE || type.name === "unknown") {
      throw new Error(`event type "${type.name}": must be a lower-case table name other than ${PAGE_VIEW_TABLE} and unknown`);
    }
    if (byName.has(type.name)) throw new Error(`event type "${type.name}" is defined twice`);
    assertFlatMessage(type.data);
    for (const field of type.data.fields) {
      if ((ENVELOPE_COLUMNS as readonly string[]).includes(field.name)) {
        throw new Error(`event type "${type.name}": field ${field.name} clashes with a column every event table has`);
      }
    }
    if (type.pageView !== undefined && !["page_view_id", "page_type"].every((name) => type.data.fields.some((field) => field.name === name))) {
      throw new Error(`event type "${type.name}": a page-view half needs page_view_id and page_type fields`);
    }
    const member = [...TYPED_MEMBERS.values()].find((field) => field.name === type.name);
    if (member !== undefined && member.message?.typeName !== type.data.typeName) {
      throw new Error(`event type "${type.name}": Event.typed.${member.name} holds ${member.message?.typeName ?? "no message"}, not ${type.data.typeName}`);
    }
    byName.set(type.name, type);
  }
  return byName;
}

/**
 * Every event type Funnel takes. Adding one: a message in ingest.proto and
 * its member of `Event.typed`, one line here, then
 * `npm run ingest:migration -- NAME` (see docs/ingest.md).
 */
export const eventTypes: EventTypes = defineEventTypes([
  { name: "element_click", data: ElementClickSchema },
  { name: "page_view_start", data: PageViewStartSchema, pageView: "start" },
  { name: "page_view_end", data: PageViewEndSchema, pageView: "end" },
  { name: "quality_change", data: QualityChangeSchema },
  { name: "video_complete", data: VideoCompleteSchema },
  { name: "search_filter", data: SearchFilterSchema },
]);
