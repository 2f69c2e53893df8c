import { formatDuration, parseDuration } from "../core/duration.js";
import { parseCsv, CsvError, formatCsv } from "./csv.js";
import { EVENTS, newPartner, partnerProblems, type EventName, type EventPostback, type PartnerConfig } from "./partner.js";

/** The columns of the partner CSV, in order. */
export const CSV_COLUMNS = [
  "partner_id",
  "name",
  "enabled",
  "timeout",
  "max_attempts",
  "initial_delay",
  "max_delay",
  "download_policy",
  "skip_unattributed",
  "download_redirect_url",
  ...EVENTS.flatMap((event) => ["enabled", "method", "url", "body", "content_type", "headers"].map((part) => `${event}_${part}`)),
] as const;

/** The CSV column of an API field name, for error reports. */
function columnOf(field: string): string {
  const [head, tail] = field.split(".", 2);
  if (field === "id") return "partner_id";
  if (head === "retry") return tail ?? "";
  if (tail !== undefined && (EVENTS as readonly string[]).includes(head ?? "")) {
    return `${head}_${tail.replace("_template", "")}`;
  }
  return field;
}

/** One problem of an imported file. */
export interface RowProblem {
  readonly line: number;
  readonly partnerId: string;
  readonly column: string;
  readonly message: string;
}

/** Headers as one cell: `Name: value` lines, the way a spreadsheet cell holds them. */
const formatHeaders = (headers: Readonly<Record<string, string>>): string =>
  Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}`)
    .join("\n");

function parseHeaders(cell: string, problem: (message: string) => void): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of cell.split(/\r?\n/)) {
    if (line.trim() === "") continue;
    const colon = line.indexOf(":");
    if (colon <= 0) {
      problem(`"${line}" is not "Name: value"`);
      continue;
    }
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  return headers;
}

/** Writes partners as CSV, one row each. */
export function partnersToCsv(partners: readonly PartnerConfig[]): string {
  const rows = partners.map((p) => [
    p.id,
    p.name,
    String(p.enabled),
    formatDuration(p.timeoutMs),
    String(p.retry.maxAttempts),
    formatDuration(p.retry.initialDelayMs),
    formatDuration(p.retry.maxDelayMs),
    p.downloadPolicy,
    String(p.skipUnattributed),
    p.downloadRedirectUrl,
    ...EVENTS.flatMap((event) => {
      const e = p.events[event];
      return [String(e.enabled), e.method, e.urlTemplate, e.bodyTemplate, e.contentType, formatHeaders(e.headers)];
    }),
  ]);
  return formatCsv([[...CSV_COLUMNS], ...rows]);
}

/**
 * Reads a partner CSV. Returns every row's partner and every problem of every
 * row; the caller applies nothing unless `problems` is empty.
 */
export function partnersFromCsv(text: string): { partners: { line: number; partner: PartnerConfig }[]; problems: RowProblem[] } {
  const problems: RowProblem[] = [];
  let records;
  try {
    records = parseCsv(text);
  } catch (error) {
    if (error instanceof CsvError) return { partners: [], problems: [{ line: error.line, partnerId: "", column: "", message: error.message }] };
    throw error;
  }
  const [header, ...rows] = records;
  if (header === undefined) return { partners: [], problems: [{ line: 1, partnerId: "", column: "", message: "the file is empty; the first row must name the columns" }] };
  const names = header.fields.map((name) => name.trim().toLowerCase());
  const known = new Set<string>(CSV_COLUMNS);
  for (const name of names) {
    if (!known.has(name)) problems.push({ line: header.line, partnerId: "", column: name, message: `unknown column; known columns: ${CSV_COLUMNS.join(", ")}` });
  }
  if (!names.includes("partner_id")) problems.push({ line: header.line, partnerId: "", column: "partner_id", message: "the header row has no partner_id column" });
  if (new Set(names).size !== names.length) problems.push({ line: header.line, partnerId: "", column: "", message: "a column is named twice" });
  if (problems.length > 0) return { partners: [], problems };

  const partners: { line: number; partner: PartnerConfig }[] = [];
  const seen = new Map<string, number>();
  for (const row of rows) {
    const cell = (column: string): string | undefined => {
      const index = names.indexOf(column);
      return index === -1 ? undefined : (row.fields[index] ?? "");
    };
    const id = (cell("partner_id") ?? "").trim();
    const rowProblems: RowProblem[] = [];
    const problem = (column: string, message: string) => rowProblems.push({ line: row.line, partnerId: id, column, message });
    if (row.fields.length !== names.length) problem("", `has ${row.fields.length} fields, the header has ${names.length}`);
    const base = newPartner(id);
    const text = (column: string, fallback: string) => cell(column)?.trim() || fallback;
    const bool = (column: string, fallback: boolean): boolean => {
      const raw = cell(column)?.trim().toLowerCase() ?? "";
      if (raw === "") return fallback;
      if (["true", "yes", "1", "y"].includes(raw)) return true;
      if (["false", "no", "0", "n"].includes(raw)) return false;
      problem(column, `"${raw}" is not true or false`);
      return fallback;
    };
    const duration = (column: string, fallback: number): number => {
      const raw = cell(column)?.trim() ?? "";
      if (raw === "") return fallback;
      const ms = parseDuration(raw);
      if (ms === undefined) problem(column, `"${raw}" is not a duration such as 10s, 500ms or 1h`);
      return ms ?? fallback;
    };
    const integer = (column: string, fallback: number): number => {
      const raw = cell(column)?.trim() ?? "";
      if (raw === "") return fallback;
      if (!/^\d+$/.test(raw)) problem(column, `"${raw}" is not a whole number`);
      return /^\d+$/.test(raw) ? Number(raw) : fallback;
    };
    const event = (name: EventName): EventPostback => {
      const method = text(`${name}_method`, "GET").toUpperCase();
      if (method !== "GET" && method !== "POST") problem(`${name}_method`, `"${method}" is not GET or POST`);
      const bodyTemplate = cell(`${name}_body`) ?? "";
      return {
        enabled: bool(`${name}_enabled`, false),
        urlTemplate: text(`${name}_url`, ""),
        method: method === "POST" ? "POST" : "GET",
        bodyTemplate,
        contentType: text(`${name}_content_type`, bodyTemplate !== "" ? "application/json" : ""),
        headers: parseHeaders(cell(`${name}_headers`) ?? "", (message) => problem(`${name}_headers`, message)),
      };
    };
    const policy = text("download_policy", "every").toLowerCase();
    if (policy !== "every" && policy !== "once") problem("download_policy", `"${policy}" is not every or once`);
    const initialDelayMs = duration("initial_delay", base.retry.initialDelayMs);
    const partner: PartnerConfig = {
      id,
      name: text("name", id),
      enabled: bool("enabled", true),
      events: { download: event("download"), install: event("install"), authorization: event("authorization") },
      timeoutMs: duration("timeout", base.timeoutMs),
      retry: {
        maxAttempts: integer("max_attempts", base.retry.maxAttempts),
        initialDelayMs,
        maxDelayMs: duration("max_delay", Math.max(base.retry.maxDelayMs, initialDelayMs)),
      },
      downloadPolicy: policy === "once" ? "once" : "every",
      skipUnattributed: bool("skip_unattributed", false),
      downloadRedirectUrl: text("download_redirect_url", ""),
    };
    for (const found of partnerProblems(partner)) problem(columnOf(found.field), found.message);
    const earlier = seen.get(id);
    if (id !== "" && earlier !== undefined) problem("partner_id", `"${id}" is already on line ${earlier}`);
    seen.set(id, row.line);
    problems.push(...rowProblems);
    partners.push({ line: row.line, partner });
  }
  return { partners, problems };
}
