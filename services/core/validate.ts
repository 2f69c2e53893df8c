import {
  type DescField,
  type DescMessage,
  fromJson,
  getOption,
  hasOption,
  type JsonValue,
  type MessageShape,
  ScalarType,
} from "@bufbuild/protobuf";
import { FeatureSet_FieldPresence } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { field as fieldRules, type FieldRules } from "../../gen/funnel/validate/v1/validate_pb.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `value` is a UUID in its canonical textual form. */
export const isUuid = (value: string): boolean => UUID.test(value);

const INT_RANGES: Partial<Record<ScalarType, readonly [bigint, bigint]>> = {
  [ScalarType.INT32]: [-(2n ** 31n), 2n ** 31n - 1n],
  [ScalarType.SINT32]: [-(2n ** 31n), 2n ** 31n - 1n],
  [ScalarType.SFIXED32]: [-(2n ** 31n), 2n ** 31n - 1n],
  [ScalarType.UINT32]: [0n, 2n ** 32n - 1n],
  [ScalarType.FIXED32]: [0n, 2n ** 32n - 1n],
  [ScalarType.INT64]: [-(2n ** 63n), 2n ** 63n - 1n],
  [ScalarType.SINT64]: [-(2n ** 63n), 2n ** 63n - 1n],
  [ScalarType.SFIXED64]: [-(2n ** 63n), 2n ** 63n - 1n],
  [ScalarType.UINT64]: [0n, 2n ** 64n - 1n],
  [ScalarType.FIXED64]: [0n, 2n ** 64n - 1n],
};

/** The scalar types the validator (and the ClickHouse table generator) understands. */
export const SUPPORTED_SCALARS: ReadonlySet<ScalarType> = new Set([
  ScalarType.STRING,
  ScalarType.BOOL,
  ScalarType.DOUBLE,
  ScalarType.FLOAT,
  ...(Object.keys(INT_RANGES).map(Number) as ScalarType[]),
]);

/** Rules by field: reading an option decodes it, and descriptors never change. */
const rulesCache = new WeakMap<DescField, { readonly rules: FieldRules; readonly declared: boolean }>();

function cachedRules(field: DescField): { readonly rules: FieldRules; readonly declared: boolean } {
  let entry = rulesCache.get(field);
  if (entry === undefined) {
    entry = { rules: getOption(field, fieldRules), declared: hasOption(field, fieldRules) };
    rulesCache.set(field, entry);
  }
  return entry;
}

/** The declared rules of a field; empty rules when it declares none. */
export function rulesOf(field: DescField): FieldRules {
  return cachedRules(field).rules;
}

/** True when the field may be absent and then reads as unset rather than zero. */
export const hasExplicitPresence = (field: DescField): boolean => field.presence === FeatureSet_FieldPresence.EXPLICIT;

/**
 * Checks that every field of `schema` is a scalar or a repeated scalar of a
 * supported type: flat messages map one-to-one onto JSON objects and onto
 * table columns. Throws naming the first field that is not.
 */
export function assertFlatMessage(schema: DescMessage): void {
  for (const field of schema.fields) {
    const scalar = field.fieldKind === "scalar" || (field.fieldKind === "list" && field.listKind === "scalar") ? field.scalar : undefined;
    if (scalar === undefined || !SUPPORTED_SCALARS.has(scalar)) {
      throw new Error(`${schema.typeName}.${field.name}: only scalar fields (string, bool, integers, float, double) and repeated scalars are supported`);
    }
    if (field.oneof !== undefined) {
      throw new Error(`${schema.typeName}.${field.name}: oneof fields are not supported`);
    }
  }
}

const invalid = (path: string, reason: string): ConnectError => new ConnectError(`${path}: ${reason}`, Code.InvalidArgument);

function describeJson(value: JsonValue): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `${typeof value} ${JSON.stringify(value).slice(0, 40)}`;
}

/** Checks one scalar value against its type and rules. */
function checkScalar(scalar: ScalarType, rules: FieldRules, value: JsonValue, path: string): void {
  switch (scalar) {
    case ScalarType.STRING: {
      if (typeof value !== "string") throw invalid(path, `must be a string, got ${describeJson(value)}`);
      const length = [...value].length;
      if (rules.minLen !== undefined && length < rules.minLen) {
        throw invalid(path, rules.minLen === 1 ? "must not be empty" : `must have at least ${rules.minLen} characters, got ${length}`);
      }
      if (rules.maxLen !== undefined && length > rules.maxLen) throw invalid(path, `must have at most ${rules.maxLen} characters, got ${length}`);
      if (rules.uuid && !isUuid(value)) throw invalid(path, `must be a UUID, got ${JSON.stringify(value.slice(0, 40))}`);
      if (rules.pattern !== undefined && !new RegExp(`^(?:${rules.pattern})$`, "u").test(value)) {
        throw invalid(path, `must match /${rules.pattern}/`);
      }
      return;
    }
    case ScalarType.BOOL:
      if (typeof value !== "boolean") throw invalid(path, `must be true or false, got ${describeJson(value)}`);
      return;
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      if (typeof value !== "number" || !Number.isFinite(value)) throw invalid(path, `must be a number, got ${describeJson(value)}`);
      return;
    default: {
      const range = INT_RANGES[scalar];
      if (range === undefined) throw invalid(path, "has an unsupported type");
      const is64 = range[1] > 2n ** 32n;
      let integer: bigint;
      if (typeof value === "number" && Number.isSafeInteger(value)) integer = BigInt(value);
      else if (is64 && typeof value === "string" && /^-?\d{1,20}$/.test(value)) integer = BigInt(value);
      else throw invalid(path, `must be an integer, got ${describeJson(value)}`);
      if (integer < range[0] || integer > range[1]) throw invalid(path, `is out of range for ${ScalarType[scalar].toLowerCase()}`);
      if (rules.min !== undefined && integer < rules.min) throw invalid(path, `must be at least ${rules.min}, got ${integer}`);
      if (rules.max !== undefined && integer > rules.max) throw invalid(path, `must be at most ${rules.max}, got ${integer}`);
    }
  }
}

/**
 * Parses a JSON object into a message of `schema`, enforcing the type of every
 * field and the `funnel.validate.v1.field` rules declared in the `.proto`:
 * unknown keys, missing required keys, ill-typed and out-of-range values fail
 * with an `invalid_argument` ConnectError naming `path.field`. Keys may use the
 * proto name (`page_type`) or the JSON name (`pageType`); null means absent.
 * The message must be flat (see {@link assertFlatMessage}).
 */
export function parseMessage<Desc extends DescMessage>(schema: Desc, json: JsonValue | undefined, path: string): MessageShape<Desc> {
  if (json === undefined || json === null || typeof json !== "object" || Array.isArray(json)) {
    throw invalid(path, `must be an object, got ${json === undefined ? "nothing" : describeJson(json)}`);
  }
  const fields = new Map<string, DescField>();
  for (const field of schema.fields) {
    fields.set(field.name, field);
    fields.set(field.jsonName, field);
  }
  const seen = new Set<DescField>();
  for (const [key, value] of Object.entries(json)) {
    const field = fields.get(key);
    if (field === undefined) throw invalid(`${path}.${key}`, "unknown field");
    if (seen.has(field)) throw invalid(`${path}.${field.name}`, "given twice (by its proto and its JSON name)");
    seen.add(field);
    if (value === null) continue;
    const rules = rulesOf(field);
    const at = `${path}.${field.name}`;
    if (field.fieldKind === "list") {
      if (!Array.isArray(value)) throw invalid(at, `must be an array, got ${describeJson(value)}`);
      value.forEach((item, index) => checkScalar(field.scalar as ScalarType, rules, item, `${at}[${index}]`));
    } else if (field.fieldKind === "scalar") {
      checkScalar(field.scalar, rules, value, at);
    } else {
      throw invalid(at, "has an unsupported type");
    }
  }
  for (const field of schema.fields) {
    const { declared, rules } = cachedRules(field);
    if (!declared || !rules.required) continue;
    const value = json[field.name] ?? json[field.jsonName];
    if (value === undefined || value === null) throw invalid(`${path}.${field.name}`, "is required");
  }
  return fromJson(schema, json);
}
