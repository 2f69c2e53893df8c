import { type DescField, type DescMessage, type JsonValue, type Message, ScalarType } from "@bufbuild/protobuf";
import { isWrapperDesc, type ListValue, type Struct, type Value } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";

/**
 * Why Postgres would refuse `value` as text, or undefined when it takes it:
 * a NUL character (no text type holds one), a lone UTF-16 surrogate (it has
 * no UTF-8 form: `jsonb` refuses its `\ud800` escape, and a `text` parameter
 * silently becomes U+FFFD), or, when `maxLength` is given, more characters
 * (Unicode code points) than that.
 */
export function textProblem(value: string, maxLength?: number): string | undefined {
  if (value.includes("\u0000")) return "contains a NUL character";
  if (!value.isWellFormed()) return "contains a lone surrogate (not valid Unicode)";
  // Code units bound code points from above: count the latter only when needed.
  if (maxLength !== undefined && value.length > maxLength) {
    const length = [...value].length;
    if (length > maxLength) return `must have at most ${maxLength} characters, got ${length}`;
  }
  return undefined;
}

/**
 * Returns `value` when Postgres can store it as text ({@link textProblem});
 * otherwise throws an `invalid_argument` ConnectError `<field>: <reason>`.
 */
export function checkText(value: string, field: string, maxLength?: number): string {
  const problem = textProblem(value, maxLength);
  if (problem !== undefined) throw new ConnectError(`${field}: ${problem}`, Code.InvalidArgument);
  return value;
}

/** A text field that cannot be stored: where it is, and why. */
export interface TextViolation {
  /** The field's path from the message: `events[3].data.page_type`, `params.utm` (proto names). */
  readonly path: string;
  readonly reason: string;
}

/** Deeper nesting than any Funnel request has; it also bounds the walk's recursion. */
const MAX_DEPTH = 64;

const join = (path: string, name: string): string => (path === "" ? name : `${path}.${name}`);

const SIMPLE_KEY = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;

/** A map or Struct entry's path: `.key` when the key reads plainly, else `["key"]` (shortened). */
const entry = (path: string, key: string): string => (SIMPLE_KEY.test(key) ? join(path, key) : `${path}[${JSON.stringify(key.slice(0, 64))}]`);

/**
 * Finds the first text in `message` that Postgres would refuse
 * ({@link textProblem}), walking it by its descriptor: string fields,
 * repeated strings, map keys and values, nested messages, wrappers, and the
 * keys and string values of `google.protobuf.Struct`, `Value` and
 * `ListValue`. `skip` names top-level fields not to walk (their text is
 * checked elsewhere). Returns undefined when all of it can be stored.
 */
export function findBadText(schema: DescMessage, message: Message, skip?: ReadonlySet<string>): TextViolation | undefined {
  return walkMessage(schema, message, "", 0, skip);
}

type Fields = Readonly<Record<string, unknown>>;

const tooDeep = (path: string): TextViolation => ({ path: path === "" ? "request" : path, reason: `is nested more than ${MAX_DEPTH} levels deep` });

function walkMessage(schema: DescMessage, message: Fields, path: string, depth: number, skip?: ReadonlySet<string>): TextViolation | undefined {
  if (depth > MAX_DEPTH) return tooDeep(path);
  switch (schema.typeName) {
    case "google.protobuf.Struct":
      return walkStruct(message as unknown as Struct, path, depth);
    case "google.protobuf.Value":
      return walkValue(message as unknown as Value, path, depth);
    case "google.protobuf.ListValue":
      return walkList(message as unknown as ListValue, path, depth);
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

function walkField(field: DescField, value: unknown, path: string, depth: number): TextViolation | undefined {
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
function walkLocal(field: DescField, schema: DescMessage, value: unknown, path: string, depth: number): TextViolation | undefined {
  if (schema.typeName === "google.protobuf.Struct" && field.parent.typeName !== "google.protobuf.Value") return walkJson(value as JsonValue, path, depth);
  if (field.fieldKind === "message" && field.oneof === undefined && isWrapperDesc(schema)) return walkString(value, path);
  return walkMessage(schema, value as Fields, path, depth);
}

function walkJson(value: JsonValue, path: string, depth: number): TextViolation | undefined {
  if (depth > MAX_DEPTH) return tooDeep(path);
  if (typeof value === "string") return walkString(value, path);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i += 1) {
      const found = walkJson(value[i]!, `${path}[${i}]`, depth + 1);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (value === null || typeof value !== "object") return undefined;
  for (const [key, item] of Object.entries(value)) {
    const keyProblem = textProblem(key);
    if (keyProblem !== undefined) return { path: path === "" ? "request" : path, reason: `a key ${keyProblem}` };
    const found = walkJson(item, entry(path, key), depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

function walkString(value: unknown, path: string): TextViolation | undefined {
  if (typeof value !== "string") return undefined;
  const reason = textProblem(value);
  return reason === undefined ? undefined : { path, reason };
}

function walkStruct(struct: Struct, path: string, depth: number): TextViolation | undefined {
  for (const [key, value] of Object.entries(struct.fields)) {
    const keyProblem = textProblem(key);
    if (keyProblem !== undefined) return { path: path === "" ? "request" : path, reason: `a key ${keyProblem}` };
    const found = walkValue(value, entry(path, key), depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

function walkValue(value: Value, path: string, depth: number): TextViolation | undefined {
  if (depth > MAX_DEPTH) return tooDeep(path);
  switch (value.kind.case) {
    case "stringValue":
      return walkString(value.kind.value, path);
    case "structValue":
      return walkStruct(value.kind.value, path, depth);
    case "listValue":
      return walkList(value.kind.value, path, depth);
    default:
      return undefined;
  }
}

function walkList(list: ListValue, path: string, depth: number): TextViolation | undefined {
  for (let i = 0; i < list.values.length; i += 1) {
    const found = walkValue(list.values[i]!, `${path}[${i}]`, depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}
