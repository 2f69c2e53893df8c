import { type DescField, type DescMessage, type JsonValue, type Message, ScalarType } from "@bufbuild/protobuf";
import { type Duration, isWrapperDesc, type ListValue, type Struct, type Timestamp, type Value } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { textProblem } from "./text.js";

/**
 * The deepest nesting of objects and arrays a `google.protobuf.Struct`,
 * `Value` or `ListValue` field of a request may hold: `{"a": 1}` is one
 * level, `{"a": [1]}` two. Handlers walk such values recursively, and a
 * caller must not decide how deep.
 */
export const MAX_STRUCT_DEPTH = 32;

/** Messages nested deeper than any Funnel request has; it also bounds the walk's recursion. */
const MAX_MESSAGE_DEPTH = 64;

/** 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, a Timestamp's range in seconds. */
const MIN_TIMESTAMP_SECONDS = -62_135_596_800n;
const MAX_TIMESTAMP_SECONDS = 253_402_300_799n;
/** About 10,000 years, a Duration's range in seconds either way. */
const MAX_DURATION_SECONDS = 315_576_000_000n;
const MAX_NANOS = 999_999_999;

const BAD_TIME = "not a valid time (0001-01-01 to 9999-12-31 UTC)";
const BAD_DURATION = "not a valid duration (at most 10,000 years either way)";
const TOO_DEEP = `nested deeper than ${MAX_STRUCT_DEPTH} levels`;

/** What in a request no handler should see: where it is, and why. */
export interface Violation {
  /** The field's path from the message: `events[3].data.page_type`, `params.utm` (proto names); `request` for the whole. */
  readonly path: string;
  readonly reason: string;
}

type Fields = Readonly<Record<string, unknown>>;

const join = (path: string, name: string): string => (path === "" ? name : `${path}.${name}`);
const named = (path: string): string => (path === "" ? "request" : path);

const SIMPLE_KEY = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;

/** A map or Struct entry's path: `.key` when the key reads plainly, else `["key"]` (shortened). */
export const entry = (path: string, key: string): string => (SIMPLE_KEY.test(key) ? join(path, key) : `${path}[${JSON.stringify(key.slice(0, 64))}]`);

/**
 * Finds the first thing in `message` that no handler should see, walking it
 * by its descriptor once:
 *
 * - text Postgres would refuse ({@link textProblem}: a NUL, a lone
 *   surrogate) in string fields, repeated strings, map keys and values,
 *   wrappers, and the keys and strings of `Struct`, `Value` and `ListValue`;
 * - a `Struct`, `Value` or `ListValue` nested deeper than {@link MAX_STRUCT_DEPTH};
 * - a `Timestamp` outside 0001-01-01..9999-12-31 or a `Duration` beyond
 *   10,000 years (or with nanos out of range): the protobuf JSON form
 *   refuses these while parsing, the binary form carries them.
 *
 * `skip` names top-level fields not to walk (a handler checks them).
 * Returns undefined when the message is sound.
 */
export function findViolation(schema: DescMessage, message: Message, skip?: ReadonlySet<string>): Violation | undefined {
  return walkMessage(schema, message, "", 0, skip);
}

function walkMessage(schema: DescMessage, message: Fields, path: string, depth: number, skip?: ReadonlySet<string>): Violation | undefined {
  if (depth > MAX_MESSAGE_DEPTH) return { path: named(path), reason: `nested deeper than ${MAX_MESSAGE_DEPTH} messages` };
  switch (schema.typeName) {
    case "google.protobuf.Struct":
      return walkStruct(message as unknown as Struct, path, 0, path);
    case "google.protobuf.Value":
      return walkValue(message as unknown as Value, path, 0, path);
    case "google.protobuf.ListValue":
      return walkList(message as unknown as ListValue, path, 0, path);
    case "google.protobuf.Timestamp":
      return validTimestamp(message as unknown as Timestamp) ? undefined : { path: named(path), reason: BAD_TIME };
    case "google.protobuf.Duration":
      return validDuration(message as unknown as Duration) ? undefined : { path: named(path), reason: BAD_DURATION };
  }
  for (const field of schema.fields) {
    if (skip?.has(field.name) === true) continue;
    const value = fieldValue(field, message);
    if (value === undefined) continue;
    const found = walkField(field, value, join(path, field.name), depth);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** The field's value, or undefined when unset (a oneof member not chosen included). */
function fieldValue(field: DescField, message: Fields): unknown {
  if (field.oneof === undefined) return message[field.localName];
  const chosen = message[field.oneof.localName] as { case?: string; value?: unknown } | undefined;
  return chosen?.case === field.localName ? chosen.value : undefined;
}

function walkField(field: DescField, value: unknown, path: string, depth: number): Violation | undefined {
  switch (field.fieldKind) {
    case "scalar":
      return field.scalar === ScalarType.STRING ? walkString(value, path) : undefined;
    case "enum":
      return undefined;
    case "message":
      return walkLocal(field, field.message, value, path, depth + 1);
    case "list": {
      const items = value as readonly unknown[];
      for (let i = 0; i < items.length; i += 1) {
        const at = `${path}[${i}]`;
        const found =
          field.listKind === "message"
            ? walkLocal(field, field.message, items[i], at, depth + 1)
            : field.listKind === "scalar" && field.scalar === ScalarType.STRING
              ? walkString(items[i], at)
              : undefined;
        if (found !== undefined) return found;
      }
      return undefined;
    }
    case "map": {
      for (const [key, item] of Object.entries(value as Fields)) {
        const keyProblem = field.mapKey === ScalarType.STRING ? textProblem(key) : undefined;
        if (keyProblem !== undefined) return { path, reason: `a key ${keyProblem}` };
        const at = entry(path, key);
        const found =
          field.mapKind === "message"
            ? walkLocal(field, field.message, item, at, depth + 1)
            : field.mapKind === "scalar" && field.scalar === ScalarType.STRING
              ? walkString(item, at)
              : undefined;
        if (found !== undefined) return found;
      }
      return undefined;
    }
  }
}

/**
 * Walks a message-typed value in its local representation: protobuf-es keeps
 * a `Struct` field (outside `Value`) as a plain JSON object, and a singular
 * wrapper field outside a oneof as its scalar.
 */
function walkLocal(field: DescField, schema: DescMessage, value: unknown, path: string, depth: number): Violation | undefined {
  if (schema.typeName === "google.protobuf.Struct" && field.parent.typeName !== "google.protobuf.Value") return walkJson(value as JsonValue, path, 0, path);
  if (field.fieldKind === "message" && field.oneof === undefined && isWrapperDesc(schema)) return walkString(value, path);
  return walkMessage(schema, value as Fields, path, depth);
}

function walkString(value: unknown, path: string): Violation | undefined {
  if (typeof value !== "string") return undefined;
  const reason = textProblem(value);
  return reason === undefined ? undefined : { path, reason };
}

/**
 * The Struct family, in both of protobuf-es's forms (plain JSON, and
 * messages inside a `Value`). `levels` counts the objects and arrays around
 * `value`; a value too deep is reported at `root`, the field that holds it.
 */
function walkJson(value: JsonValue, path: string, levels: number, root: string): Violation | undefined {
  if (typeof value === "string") return walkString(value, path);
  if (value === null || typeof value !== "object") return undefined;
  if (levels >= MAX_STRUCT_DEPTH) return { path: named(root), reason: TOO_DEEP };
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i += 1) {
      const found = walkJson(value[i]!, `${path}[${i}]`, levels + 1, root);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  for (const [key, item] of Object.entries(value)) {
    const keyProblem = textProblem(key);
    if (keyProblem !== undefined) return { path: named(path), reason: `a key ${keyProblem}` };
    const found = walkJson(item, entry(path, key), levels + 1, root);
    if (found !== undefined) return found;
  }
  return undefined;
}

function walkStruct(struct: Struct, path: string, levels: number, root: string): Violation | undefined {
  if (levels >= MAX_STRUCT_DEPTH) return { path: named(root), reason: TOO_DEEP };
  for (const [key, value] of Object.entries(struct.fields)) {
    const keyProblem = textProblem(key);
    if (keyProblem !== undefined) return { path: named(path), reason: `a key ${keyProblem}` };
    const found = walkValue(value, entry(path, key), levels + 1, root);
    if (found !== undefined) return found;
  }
  return undefined;
}

function walkValue(value: Value, path: string, levels: number, root: string): Violation | undefined {
  switch (value.kind.case) {
    case "stringValue":
      return walkString(value.kind.value, path);
    case "structValue":
      return walkStruct(value.kind.value, path, levels, root);
    case "listValue":
      return walkList(value.kind.value, path, levels, root);
    default:
      return undefined;
  }
}

function walkList(list: ListValue, path: string, levels: number, root: string): Violation | undefined {
  if (levels >= MAX_STRUCT_DEPTH) return { path: named(root), reason: TOO_DEEP };
  for (let i = 0; i < list.values.length; i += 1) {
    const found = walkValue(list.values[i]!, `${path}[${i}]`, levels + 1, root);
    if (found !== undefined) return found;
  }
  return undefined;
}

function validTimestamp({ seconds, nanos }: Timestamp): boolean {
  return seconds >= MIN_TIMESTAMP_SECONDS && seconds <= MAX_TIMESTAMP_SECONDS && nanos >= 0 && nanos <= MAX_NANOS;
}

function validDuration({ seconds, nanos }: Duration): boolean {
  const sameSign = (seconds >= 0n && nanos >= 0) || (seconds <= 0n && nanos <= 0);
  return seconds >= -MAX_DURATION_SECONDS && seconds <= MAX_DURATION_SECONDS && Math.abs(nanos) <= MAX_NANOS && sameSign;
}

/**
 * Request fields a module's handler checks itself with {@link findViolation},
 * one item at a time, so that a bad item fails alone instead of failing the
 * whole call. Keyed by method (`funnel.ingest.v1.IngestService/SendBatch`):
 * the top-level field names so checked, or `"all"` when the handler checks
 * the whole request.
 */
export type HandlerChecks = Readonly<Record<string, "all" | readonly string[]>>;

/**
 * Refuses, before any handler runs, a request holding what no handler should
 * see ({@link findViolation}): `invalid_argument` with `<field path>:
 * <reason>`. Nothing of the request is stored, and it never joins a group
 * commit where it would fail other callers' writes. A server-streaming
 * request is checked as it is read. Fields in `handled` are left to their handlers.
 */
export function createRequestCheckInterceptor(handled: HandlerChecks = {}): Interceptor {
  const skipped = new Map(Object.entries(handled).map(([method, fields]) => [method, fields === "all" ? "all" : new Set(fields)] as const));
  return (next) => async (req) => {
    const skip = skipped.get(`${req.service.typeName}/${req.method.name}`);
    if (skip === "all") return next(req);
    const check = (message: Message): void => {
      const violation = findViolation(req.method.input, message, skip);
      if (violation !== undefined) throw new ConnectError(`${violation.path}: ${violation.reason}`, Code.InvalidArgument);
    };
    if (!req.stream) {
      check(req.message);
      return next(req);
    }
    const messages = req.message;
    return next({
      ...req,
      message: (async function* checked() {
        for await (const message of messages) {
          check(message);
          yield message;
        }
      })(),
    });
  };
}
