/** One CSV record with the line it starts on (1-based). */
export interface CsvRecord {
  readonly line: number;
  readonly fields: readonly string[];
}

/** A CSV file that cannot be read; `line` is where the problem is. */
export class CsvError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(message);
    this.name = "CsvError";
  }
}

/**
 * The first characters that make a spreadsheet (Excel, LibreOffice, Google
 * Sheets) run a cell as a formula, as OWASP's CSV-injection guidance lists
 * them: `=`, `+`, `-`, `@`, TAB and CR. A cell of that shape after any number
 * of `'` gets one more `'` on writing and loses one on reading, so that the
 * guard is told apart from a value that itself starts with `'`: `=1` is
 * written `'=1`, `'=1` is written `''=1`, and `'abc` (no formula after the
 * quotes) is written and read as it is.
 */
const GUARDED = /^'*[=+\-@\t\r]/;
const GUARD_WRITTEN = /^'+[=+\-@\t\r]/;

/** The cell a spreadsheet shows as text: one `'` before a formula-like value. */
function guard(field: string): string {
  return GUARDED.test(field) ? `'${field}` : field;
}

/** The value of a cell, without the `'` that `guard` put before it. */
function unguard(field: string): string {
  return GUARD_WRITTEN.test(field) ? field.slice(1) : field;
}

/**
 * Reads RFC 4180 CSV: comma-separated fields, `"`-quoted fields may hold
 * commas, line breaks and doubled quotes; CRLF or LF line ends; a leading
 * byte-order mark is ignored (spreadsheets write one). Blank lines are skipped.
 * A cell `formatCsv` guarded against formula injection loses its guard: one
 * leading `'` before `'`s and a formula character.
 */
export function parseCsv(text: string): CsvRecord[] {
  const source = text.startsWith("\uFEFF") ? text.slice(1) : text;
  const records: CsvRecord[] = [];
  let fields: string[] = [];
  let field = "";
  let line = 1;
  let recordLine = 1;
  let i = 0;
  let quotedField = false;
  const endRecord = () => {
    fields.push(unguard(field));
    if (!(fields.length === 1 && fields[0] === "" && !quotedField)) records.push({ line: recordLine, fields });
    fields = [];
    field = "";
    quotedField = false;
  };
  while (i < source.length) {
    const char = source[i];
    if (char === '"' && field === "" && !quotedField) {
      quotedField = true;
      const start = line;
      i += 1;
      for (;;) {
        if (i >= source.length) throw new CsvError(start, "a quoted field is never closed");
        const c = source[i];
        if (c === '"') {
          if (source[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i += 1;
          break;
        }
        if (c === "\n") line += 1;
        field += c;
        i += 1;
      }
      const after = source[i];
      if (after !== undefined && after !== "," && after !== "\n" && after !== "\r") {
        throw new CsvError(line, "text after a closing quote; write a quote inside a quoted field as \"\"");
      }
      continue;
    }
    if (char === ",") {
      fields.push(unguard(field));
      field = "";
      quotedField = false;
      i += 1;
    } else if (char === "\r" || char === "\n") {
      endRecord();
      i += char === "\r" && source[i + 1] === "\n" ? 2 : 1;
      line += 1;
      recordLine = line;
    } else {
      if (quotedField) throw new CsvError(line, "text after a closing quote");
      field += char;
      i += 1;
    }
  }
  if (field !== "" || fields.length > 0 || quotedField) endRecord();
  return records;
}

function quote(value: string): string {
  const field = guard(value);
  // A guarded cell is always quoted, as OWASP advises, so no reader takes
  // anything after a separator inside it for a new cell.
  return field !== value || /[",\r\n]/.test(field) || field !== field.trim() ? `"${field.replaceAll('"', '""')}"` : field;
}

/**
 * Writes records as CSV with CRLF line ends, quoting only where needed and
 * guarding every formula-like cell with a leading `'` (see `GUARDED`).
 */
export function formatCsv(rows: readonly (readonly string[])[]): string {
  return rows.map((row) => row.map(quote).join(",")).join("\r\n") + "\r\n";
}
