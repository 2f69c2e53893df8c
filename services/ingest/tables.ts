import { type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";
import { PageViewSchema } from "../../gen/funnel/ingest/v1/ingest_pb.js";
import { hasExplicitPresence, rulesOf } from "../core/validate.js";
import { PAGE_VIEW_TABLE, type EventType } from "./registry.js";

/** One ClickHouse column. */
export interface Column {
  readonly name: string;
  readonly type: string;
  /** A DEFAULT expression, when ClickHouse fills the column. */
  readonly default?: string;
}

const TIME = "DateTime64(3, 'UTC')";

/** Columns of every event table, before the data fields. */
export const ENVELOPE: readonly Column[] = [
  { name: "event_id", type: "UUID" },
  { name: "user_id", type: "String" },
  { name: "timestamp", type: TIME },
  { name: "client_time", type: `Nullable(${TIME})` },
  { name: "session_id", type: "String" },
  { name: "seq", type: "Nullable(Int64)" },
  // The tracker pixel's `user_id` cookie, when a browser on a listed origin sent it: joins events to pixel hits.
  { name: "anonymous_id", type: "Nullable(UUID)" },
];

/** When the row reached ClickHouse: the stream's lag is `inserted_at - timestamp`. */
const INSERTED_AT: Column = { name: "inserted_at", type: TIME, default: "now64(3)" };

const SCALAR_TYPES: Partial<Record<ScalarType, string>> = {
  [ScalarType.STRING]: "String",
  [ScalarType.BOOL]: "Bool",
  [ScalarType.DOUBLE]: "Float64",
  [ScalarType.FLOAT]: "Float32",
  [ScalarType.INT32]: "Int32",
  [ScalarType.SINT32]: "Int32",
  [ScalarType.SFIXED32]: "Int32",
  [ScalarType.UINT32]: "UInt32",
  [ScalarType.FIXED32]: "UInt32",
  [ScalarType.INT64]: "Int64",
  [ScalarType.SINT64]: "Int64",
  [ScalarType.SFIXED64]: "Int64",
  [ScalarType.UINT64]: "UInt64",
  [ScalarType.FIXED64]: "UInt64",
};

/** The column type of one field: UUID-checked strings are `UUID`, `optional` fields `Nullable`, repeated ones `Array`. */
function columnType(field: DescField): string {
  const scalar = field.fieldKind === "scalar" || (field.fieldKind === "list" && field.listKind === "scalar") ? field.scalar : undefined;
  const base = scalar === ScalarType.STRING && rulesOf(field).uuid ? "UUID" : scalar !== undefined ? SCALAR_TYPES[scalar] : undefined;
  if (base === undefined) throw new Error(`${field.parent.typeName}.${field.name}: no ClickHouse type for this field`);
  if (field.fieldKind === "list") return `Array(${base})`;
  return hasExplicitPresence(field) ? `Nullable(${base})` : base;
}

/** The columns derived from a flat message, in field order, named like the proto fields. */
export function messageColumns(schema: DescMessage): Column[] {
  return schema.fields.map((field) => ({ name: field.name, type: columnType(field) }));
}

function createTable(table: string, columns: readonly Column[], orderBy: string, source: string): string {
  const width = Math.max(...columns.map((column) => column.name.length));
  const lines = columns.map((column) => `  ${column.name.padEnd(width)} ${column.type}${column.default !== undefined ? ` DEFAULT ${column.default}` : ""}`);
  return `-- ${source}
CREATE TABLE IF NOT EXISTS {db}.${table} (
${lines.join(",\n")}
) ENGINE = MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY ${orderBy}
SETTINGS non_replicated_deduplication_window = 10000;
`;
}

/** Every column of an event type's table: the envelope, the data fields, `inserted_at`. */
export function eventColumns(type: EventType): Column[] {
  return [...ENVELOPE, ...messageColumns(type.data), INSERTED_AT];
}

/** The `CREATE TABLE` of one event type, derived from its data message. */
export function eventTableSql(type: EventType): string {
  return createTable(type.name, eventColumns(type), "(toDate(timestamp), user_id, timestamp)", `${type.name}: events of type ${type.name}, fields from ${type.data.typeName}.`);
}

/** Every column of the `page_view` table: user and start time, then the fields of `PageView`. */
export function pageViewColumns(): Column[] {
  return [{ name: "user_id", type: "String" }, { name: "timestamp", type: TIME }, ...messageColumns(PageViewSchema), INSERTED_AT];
}

/** The `CREATE TABLE` of the paired page views. */
export function pageViewTableSql(): string {
  return createTable(
    PAGE_VIEW_TABLE,
    pageViewColumns(),
    "(toDate(timestamp), user_id, page_view_id)",
    `${PAGE_VIEW_TABLE}: page-view starts paired with their ends, fields from ${PageViewSchema.typeName}.`,
  );
}

/**
 * A ClickHouse migration adding the envelope column `name` (one of
 * {@link ENVELOPE}) to the existing tables of `types`, in its place among
 * the envelope's columns.
 */
export function addColumnSql(types: readonly EventType[], name: string): string {
  const index = ENVELOPE.findIndex((column) => column.name === name);
  const column = ENVELOPE[index];
  if (column === undefined || index === 0) throw new Error(`${name}: not an envelope column after the first (${ENVELOPE.slice(1).map((c) => c.name).join(", ")})`);
  const after = ENVELOPE[index - 1]?.name ?? "";
  const header = `-- Generated by \`npm run ingest:migration -- --column ${name}\`: the envelope column ${name} on every event table.
`;
  return [header, ...types.map((type) => `ALTER TABLE {db}.${type.name} ADD COLUMN IF NOT EXISTS ${name} ${column.type} AFTER ${after};\n`)].join("");
}

/** A ClickHouse migration creating the tables of `types` (and `page_view` when asked). */
export function migrationSql(types: readonly EventType[], withPageView: boolean): string {
  const header = `-- Generated by \`npm run ingest:migration\` from the event messages in proto/funnel/ingest/v1/ingest.proto.
-- Every table is fed by the analytics stream, hence MergeTree with a deduplication window.
`;
  return [header, ...types.map(eventTableSql), ...(withPageView ? [pageViewTableSql()] : [])].join("\n");
}
