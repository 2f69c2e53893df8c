import { ScalarType, toJson, type DescEnum, type DescField, type DescMessage, type JsonObject, type JsonValue, type MessageShape } from "@bufbuild/protobuf";

/** 64-bit integer types, which proto3 JSON writes as strings. */
const INT64 = new Set([ScalarType.INT64, ScalarType.UINT64, ScalarType.SINT64, ScalarType.FIXED64, ScalarType.SFIXED64]);

/** An enum value as the tables print it: `DELIVERY_STATUS_DEAD` → `dead`. */
function enumWord(desc: DescEnum, value: JsonValue): JsonValue {
  if (typeof value !== "string") return value;
  // The shared prefix is given in lower case (`delivery_status_`).
  const word = value.toLowerCase();
  const prefix = desc.sharedPrefix ?? "";
  return word.startsWith(prefix) ? word.slice(prefix.length) : word;
}

function scalar(type: ScalarType, value: JsonValue): JsonValue {
  return INT64.has(type) && typeof value === "string" && Number.isSafeInteger(Number(value)) ? Number(value) : value;
}

/** Well-known types (Timestamp, Duration, Struct, …) keep their own JSON forms. */
const isWellKnown = (desc: DescMessage): boolean => desc.typeName.startsWith("google.protobuf.");

function message(desc: DescMessage, value: JsonValue): JsonValue {
  if (isWellKnown(desc) || value === null || typeof value !== "object" || Array.isArray(value)) return value;
  const result: JsonObject = { ...value };
  for (const field of desc.fields) {
    const current = result[field.jsonName];
    if (current !== undefined) result[field.jsonName] = fieldValue(field, current);
  }
  return result;
}

function single(kind: "scalar" | "enum" | "message", field: DescField, value: JsonValue): JsonValue {
  if (kind === "enum" && field.enum !== undefined) return enumWord(field.enum, value);
  if (kind === "message" && field.message !== undefined) return message(field.message, value);
  if (kind === "scalar" && field.scalar !== undefined) return scalar(field.scalar, value);
  return value;
}

function fieldValue(field: DescField, value: JsonValue): JsonValue {
  switch (field.fieldKind) {
    case "list":
      return Array.isArray(value) ? value.map((item) => single(field.listKind, field, item)) : value;
    case "map":
      return value !== null && typeof value === "object" && !Array.isArray(value)
        ? Object.fromEntries(Object.entries(value).map(([key, item]) => [key, single(field.mapKind, field, item)]))
        : value;
    default:
      return single(field.fieldKind, field, value);
  }
}

/**
 * A message as the CLI's `--json` prints it, the same shape everywhere: every field present
 * (zeros, empty strings and empty lists too), 64-bit integers as numbers while they fit, and
 * enum values as the lower-case words the tables print (`dead`, not `DELIVERY_STATUS_DEAD`).
 */
export function jsonOf<Desc extends DescMessage>(schema: Desc, value: MessageShape<Desc>): JsonValue {
  return message(schema, toJson(schema, value, { alwaysEmitImplicit: true }));
}
