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
 * Reads RFC 4180 CSV: comma-separated fields, `"`-quoted fields may hold
 * commas, line breaks and doubled quotes; CRLF or LF line ends; a leading
 * byte-order mark is ignored (spreadsheets write one). Blank lines are skipped.
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
    fields.push(field);
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
      fields.push(field);
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

function quote(field: string): string {
  return /[",\r\n]/.test(field) || field !== field.trim() ? `"${field.replaceAll('"', '""')}"` : field;
}

/** Writes records as CSV with CRLF line ends, quoting only where needed. */
export function formatCsv(rows: readonly (readonly string[])[]): string {
  return rows.map((row) => row.map(quote).join(",")).join("\r\n") + "\r\n";
}
