import type { DescField, DescMessage, JsonValue } from "@bufbuild/protobuf";
import type { Duration, ListValue, Struct, Timestamp, Value } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/**
 * The deepest nesting of objects and arrays a `google.protobuf.Struct`,
 * `Value` or `ListValue` field of a request may hold: `{"a": 1}` is one
 * level, `{"a": [1]}` two.
 */
export const MAX_STRUCT_DEPTH = 32;

const STRUCT = "google.protobuf.Struct";
const LIST_VALUE = "google.protobuf.ListValue";
const VALUE = "google.protobuf.Value";
const TIMESTAMP = "google.protobuf.Timestamp";
const DURATION = "google.protobuf.Duration";
const CHECKED_TYPES: ReadonlySet<string> = new Set([STRUCT, LIST_VALUE, VALUE, TIMESTAMP, DURATION]);

/** 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, a Timestamp's range in seconds. */
const MIN_TIMESTAMP_SECONDS = -62_135_596_800n;
const MAX_TIMESTAMP_SECONDS = 253_402_300_799n;
/** About 10,000 years, a Duration's range in seconds either way. */
const MAX_DURATION_SECONDS = 315_576_000_000n;
const MAX_NANOS = 999_999_999;

/** Whether a message of this type can hold a checked type anywhere inside it. */
function reachesChecked(desc: DescMessage, seen: Set<DescMessage>): boolean {
  if (CHECKED_TYPES.has(desc.typeName)) return true;
  if (seen.has(desc)) return false;
  seen.add(desc);
  return desc.fields.some((field) => field.message !== undefined && reachesChecked(field.message, seen));
}

/** Per message type, the fields worth walking: those that can hold a checked type. Worked out once per type. */
const walkedFields = new WeakMap<DescMessage, readonly DescField[]>();

function fieldsToWalk(desc: DescMessage): readonly DescField[] {
  let fields = walkedFields.get(desc);
  if (fields === undefined) {
    fields = desc.fields.filter((field) => field.message !== undefined && reachesChecked(field.message, new Set()));
    walkedFields.set(desc, fields);
  }
  return fields;
}

/** Whether plain JSON nests deeper than `levels` (a scalar nests 0 levels). */
function jsonTooDeep(value: JsonValue, levels: number): boolean {
  if (value === null || typeof value !== "object") return false;
  if (levels === 0) return true;
  return (Array.isArray(value) ? value : Object.values(value)).some((child) => jsonTooDeep(child, levels - 1));
}

/** Whether a Value message nests deeper than `levels`. */
function valueTooDeep(value: Value, levels: number): boolean {
  switch (value.kind.case) {
    case "structValue":
      return structTooDeep(value.kind.value, levels);
    case "listValue":
      return listTooDeep(value.kind.value, levels);
    default:
      return false;
  }
}

function structTooDeep(struct: Struct, levels: number): boolean {
  if (levels === 0) return true;
  return Object.values(struct.fields).some((value) => valueTooDeep(value, levels - 1));
}

function listTooDeep(list: ListValue, levels: number): boolean {
  if (levels === 0) return true;
  return list.values.some((value) => valueTooDeep(value, levels - 1));
}

function validTimestamp({ seconds, nanos }: Timestamp): boolean {
  return seconds >= MIN_TIMESTAMP_SECONDS && seconds <= MAX_TIMESTAMP_SECONDS && nanos >= 0 && nanos <= MAX_NANOS;
}

function validDuration({ seconds, nanos }: Duration): boolean {
  const sameSign = (seconds >= 0n && nanos >= 0) || (seconds <= 0n && nanos <= 0);
  return seconds >= -MAX_DURATION_SECONDS && seconds <= MAX_DURATION_SECONDS && Math.abs(nanos) <= MAX_NANOS && sameSign;
}

/** The value of a field in a message of protobuf-es's plain shape (a oneof member sits under its group). */
function fieldValue(message: Record<string, unknown>, field: DescField): unknown {
  if (field.oneof === undefined) return message[field.localName];
  const selected = message[field.oneof.localName] as { case?: string; value?: unknown } | undefined;
  return selected?.case === field.localName ? selected.value : undefined;
}

/** What is wrong with `item` (of type `desc`, found at `path`), if anything. */
function problemIn(desc: DescMessage, item: unknown, path: string): string | undefined {
  const tooDeep = `${path}: nested deeper than ${MAX_STRUCT_DEPTH} levels`;
  switch (desc.typeName) {
    case STRUCT:
      // A Struct field holds plain JSON (protobuf-es's representation); inside a Value it is a message.
      if ((item as { $typeName?: string }).$typeName === STRUCT) return structTooDeep(item as Struct, MAX_STRUCT_DEPTH) ? tooDeep : undefined;
      return jsonTooDeep(item as JsonValue, MAX_STRUCT_DEPTH) ? tooDeep : undefined;
    case LIST_VALUE:
      return listTooDeep(item as ListValue, MAX_STRUCT_DEPTH) ? tooDeep : undefined;
    case VALUE:
      return valueTooDeep(item as Value, MAX_STRUCT_DEPTH) ? tooDeep : undefined;
    case TIMESTAMP:
      return validTimestamp(item as Timestamp) ? undefined : `${path}: not a valid time (0001-01-01 to 9999-12-31 UTC)`;
    case DURATION:
      return validDuration(item as Duration) ? undefined : `${path}: not a valid duration (at most 10,000 years either way)`;
    default:
      return problemInFields(desc, item as Record<string, unknown>, `${path}.`);
  }
}

function problemInFields(desc: DescMessage, message: Record<string, unknown>, prefix: string): string | undefined {
  for (const field of fieldsToWalk(desc)) {
    const value = fieldValue(message, field);
    const type = field.message;
    if (value === undefined || type === undefined) continue;
    const name = `${prefix}${field.name}`;
    let found: string | undefined;
    if (field.fieldKind === "list") {
      (value as unknown[]).some((item, index) => (found = problemIn(type, item, `${name}[${index}]`)) !== undefined);
    } else if (field.fieldKind === "map") {
      Object.entries(value as Record<string, unknown>).some(([key, item]) => (found = problemIn(type, item, `${name}.${key}`)) !== undefined);
    } else {
      found = problemIn(type, value, name);
    }
    if (found !== undefined) return found;
  }
  return undefined;
}

function assertSound(desc: DescMessage, message: unknown): void {
  const problem = problemInFields(desc, message as Record<string, unknown>, "");
  if (problem !== undefined) throw new ConnectError(problem, Code.InvalidArgument);
}

async function* soundEach<T>(desc: DescMessage, messages: AsyncIterable<T>): AsyncIterable<T> {
  for await (const message of messages) {
    assertSound(desc, message);
    yield message;
  }
}

/**
 * Refuses requests whose well-known types hold what handlers should never
 * see, as `invalid_argument` naming the field:
 *
 * - a `Struct`, `Value` or `ListValue` nested deeper than
 *   {@link MAX_STRUCT_DEPTH}: handlers walk such values recursively, and a
 *   caller must not decide how deep;
 * - a `Timestamp` outside 0001-01-01..9999-12-31 or a `Duration` beyond
 *   10,000 years (or with nanos out of range): the protobuf JSON form refuses
 *   these while parsing, the binary form carries them, and dates built from
 *   them are invalid.
 *
 * Message types that hold none of these pass untouched.
 */
export function createWellKnownTypesInterceptor(): Interceptor {
  return (next) => (req) => {
    const desc = req.method.input;
    if (fieldsToWalk(desc).length === 0) return next(req);
    if (!req.stream) {
      assertSound(desc, req.message);
      return next(req);
    }
    return next({ ...req, message: soundEach(desc, req.message) });
  };
}
