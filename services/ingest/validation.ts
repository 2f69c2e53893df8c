import { type JsonObject, type JsonValue, toJson } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { type Event, EventSchema, RejectReason } from "../../gen/funnel/ingest/v1/ingest_pb.js";
import { findViolation } from "../core/request-check.js";
import { isUuid, parseMessage } from "../core/validate.js";
import { type EventType, type EventTypes, TYPED_MEMBERS } from "./registry.js";
import type { AcceptedEvent } from "./writer.js";
import { clickhouseTime } from "../core/clickhouse.js";

/** The type name counters use for events whose type is not known. */
export const UNKNOWN_TYPE = "unknown";

/** Whether a violation's path lies in the event's fields (`data…` or a typed member), not in its envelope. */
const inData = (path: string): boolean => {
  const head = /^[a-z_]+/.exec(path)?.[0];
  return head === "data" || [...TYPED_MEMBERS.values()].some((field) => field.name === head);
};

/**
 * The event's type name and its fields as JSON (proto names, every field
 * present), from whichever form it came in. `path` is where its fields are
 * named in errors: `data`, or the typed member's name.
 */
function eventFields(event: Event, reject: (reason: RejectReason, message: string) => RejectedEvent): { name: string; fields: JsonValue | undefined; path: string } {
  if (event.typed.case === undefined) return { name: event.event, fields: event.data, path: "data" };
  const member = TYPED_MEMBERS.get(event.typed.case);
  if (member?.message === undefined) throw new Error(`Event.typed.${event.typed.case}: not a member of the typed oneof`);
  if (event.data !== undefined) throw reject(RejectReason.INVALID_ENVELOPE, `data: must be absent when ${member.name} is set`);
  if (event.event !== "" && event.event !== member.name) {
    throw reject(RejectReason.INVALID_ENVELOPE, `event: names ${JSON.stringify(event.event.slice(0, 64))} but ${member.name} is set`);
  }
  // The typed message goes through the same JSON checks as `data`: one set of rules, one set of messages.
  const fields = toJson(member.message, event.typed.value, { useProtoFieldName: true, alwaysEmitImplicit: true });
  return { name: member.name, fields, path: member.name };
}

/**
 * Why an event cannot be stored, with what the quality counters need. Not a
 * ConnectError subclass: ConnectError's `instanceof` matches any ConnectError,
 * so a subclass could not be told apart; {@link toConnectError} makes the one
 * the caller sees.
 */
export class RejectedEvent extends Error {
  constructor(
    message: string,
    readonly code: Code,
    readonly reason: RejectReason,
    readonly eventType: string,
  ) {
    super(message);
    this.name = "RejectedEvent";
  }

  toConnectError(): ConnectError {
    return new ConnectError(this.message, this.code);
  }
}

/** An event whose shape is valid; identity still to be resolved. */
export interface CheckedEvent {
  readonly type: EventType;
  readonly eventId: string | undefined;
  readonly sessionId: string | undefined;
  readonly seq: bigint | undefined;
  readonly clientTime: Date | undefined;
  /** The data fields as table columns (proto names, every field present). */
  readonly columns: JsonObject;
}

/**
 * Checks one event against its type: size, text Postgres can store (every
 * field, the data's keys and values included), known type, envelope fields,
 * and the data against the type's message and declared rules. `size` is the
 * event's size in bytes.
 */
export function checkEvent(event: Event, types: EventTypes, size: number, maxEventBytes: number): CheckedEvent {
  const typedAs = event.typed.case !== undefined ? TYPED_MEMBERS.get(event.typed.case)?.name : undefined;
  const type = types.get(typedAs ?? event.event);
  const typeName = type?.name ?? UNKNOWN_TYPE;
  const reject = (reason: RejectReason, message: string) => new RejectedEvent(message, Code.InvalidArgument, reason, typeName);
  if (size > maxEventBytes) throw reject(RejectReason.TOO_LARGE, `event: ${size} bytes is over the limit of ${maxEventBytes} bytes per event`);
  // Checked here rather than for the whole request, so a bad event of a batch fails alone.
  const violation = findViolation(EventSchema, event);
  if (violation !== undefined) {
    throw reject(inData(violation.path) ? RejectReason.INVALID_DATA : RejectReason.INVALID_ENVELOPE, `${violation.path}: ${violation.reason}`);
  }
  const { name, fields, path } = eventFields(event, reject);
  if (type === undefined) {
    const shown = JSON.stringify(name.slice(0, 64));
    throw reject(RejectReason.UNKNOWN_TYPE, `event: unknown event type ${shown}; known types: ${[...types.keys()].join(", ")}`);
  }
  if (event.eventId !== undefined && !isUuid(event.eventId)) throw reject(RejectReason.INVALID_ENVELOPE, "event_id: must be a UUID");
  if (event.sessionId !== undefined && (event.sessionId.length === 0 || event.sessionId.length > 128)) {
    throw reject(RejectReason.INVALID_ENVELOPE, "session_id: must have 1 to 128 characters");
  }
  if (event.seq !== undefined) {
    if (event.sessionId === undefined) throw reject(RejectReason.INVALID_ENVELOPE, "seq: requires session_id");
    if (event.seq < 1n) throw reject(RejectReason.INVALID_ENVELOPE, `seq: must be 1 or more, got ${event.seq}`);
  }
  let columns: JsonObject;
  try {
    const data = parseMessage(type.data, fields, path);
    columns = toJson(type.data, data, { useProtoFieldName: true, alwaysEmitImplicit: true }) as JsonObject;
  } catch (error) {
    if (error instanceof ConnectError && error.code === Code.InvalidArgument) throw reject(RejectReason.INVALID_DATA, error.rawMessage);
    throw error;
  }
  return {
    type,
    eventId: event.eventId?.toLowerCase(),
    sessionId: event.sessionId,
    seq: event.seq,
    clientTime: event.clientTime !== undefined ? timestampDate(event.clientTime) : undefined,
    columns,
  };
}

/**
 * Completes a checked event with its identity and the server's time and id.
 * `anonymousId` is the tracker pixel's id of the browser, when it came with
 * the request (see `anonymousIdOf` in service.ts).
 */
export function acceptEvent(checked: CheckedEvent, userId: string, now: Date, anonymousId?: string): AcceptedEvent {
  const eventId = checked.eventId ?? crypto.randomUUID();
  const columns = checked.columns;
  return {
    type: checked.type,
    eventId,
    clientEventId: checked.eventId !== undefined,
    userId,
    timestamp: now,
    sessionId: checked.sessionId,
    seq: checked.seq,
    row: {
      event_id: eventId,
      user_id: userId,
      timestamp: clickhouseTime(now),
      client_time: checked.clientTime !== undefined ? clickhouseTime(checked.clientTime) : null,
      session_id: checked.sessionId ?? "",
      seq: checked.seq !== undefined ? String(checked.seq) : null,
      anonymous_id: anonymousId ?? null,
      ...columns,
    },
    pageView:
      checked.type.pageView !== undefined
        ? {
            kind: checked.type.pageView,
            userId,
            pageViewId: (columns.page_view_id as string).toLowerCase(),
            pageType: columns.page_type as string,
            at: now,
            clientTime: checked.clientTime,
          }
        : undefined,
  };
}
