import { Code, ConnectError } from "@connectrpc/connect";
import type { ClickHouse } from "../core/clickhouse.js";

/** Largest statement taken, in bytes. */
const MAX_SQL_BYTES = 64 * 1024;
const MAX_ROWS = 10_000;
const DEFAULT_ROWS = 1_000;
/** ClickHouse stops a query after this long (`max_execution_time`). */
export const QUERY_SECONDS = 30;
/** Table functions that only make rows up, read nothing. */
const HARMLESS_TABLE_FUNCTIONS = new Set(["numbers", "numbers_mt", "zeros", "zeros_mt", "generate_series", "generateseries", "values"]);

/** The answer of a query: columns, their types and at most `maxRows` rows. */
export interface QueryResult {
  readonly columns: string[];
  readonly types: string[];
  readonly rows: unknown[][];
  readonly truncated: boolean;
  readonly rowsRead: number;
  readonly elapsedMs: number;
}

const invalid = (message: string): ConnectError => new ConnectError(message, Code.InvalidArgument);

/** An error ClickHouse answered (a server's exception or the embedded engine's), as opposed to not answering. */
function clickhouseMessage(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const fromServer = "code" in error && "type" in error;
  const fromEngine = error.constructor === Error && !/ECONNREFUSED|ECONNRESET|ETIMEDOUT|socket hang up|aborted/i.test(error.message);
  return fromServer || fromEngine ? error.message.replace(/\s+/g, " ").trim().slice(0, 500) : undefined;
}

/**
 * Runs read-only SELECTs for `OpsService/QueryAnalytics`. ClickHouse's
 * `readonly` setting stops writes but not table functions, and `file()`,
 * `url()` or `remote()` read the server's disk or the network: every
 * statement is first parsed by ClickHouse (`EXPLAIN AST`, which runs
 * nothing) and refused unless it is one SELECT whose functions name no table
 * function but the harmless ones, and sets no settings of its own.
 */
export function createAnalyticsQuery(clickhouse: ClickHouse) {
  let tableFunctions: Promise<Set<string>> | undefined;
  const knownTableFunctions = (): Promise<Set<string>> => {
    tableFunctions ??= clickhouse.client
      .query({ query: "SELECT name FROM system.table_functions", format: "JSONEachRow" })
      .then(async (result) => new Set((await result.json<{ name: string }>()).map((row) => row.name.toLowerCase())))
      .catch((error: unknown) => {
        tableFunctions = undefined;
        throw error;
      });
    return tableFunctions;
  };

  /** Refuses what is not one plain SELECT; the statement's AST as ClickHouse prints it, one node a line. */
  const check = async (sql: string, signal?: AbortSignal): Promise<void> => {
    let lines: string[];
    try {
      // The newline ends a trailing `--` comment before the FORMAT clause the client appends.
      const result = await clickhouse.client.query({ query: `EXPLAIN AST ${sql}\n`, format: "JSONEachRow", ...(signal !== undefined ? { abort_signal: signal } : {}) });
      // A server answers {"explain": line} per row; the embedded engine's connection gives the bare strings.
      lines = (await result.json<string | { explain?: string }>()).map((row) => (typeof row === "string" ? row : (row.explain ?? "")));
    } catch (error) {
      const message = clickhouseMessage(error);
      if (message !== undefined) throw invalid(`sql: ${message}`);
      throw error;
    }
    const top = lines[0]?.trim() ?? "";
    if (!/^Select(WithUnion|IntersectExcept)Query\b/.test(top)) throw invalid(`sql: only a SELECT is allowed, got ${top.split(" ")[0] ?? "nothing"}`);
    const refused = await knownTableFunctions();
    for (const line of lines) {
      const node = line.trim();
      if (node === "Set" || node.startsWith("Set ")) throw invalid("sql: a SETTINGS clause is not allowed");
      const name = /^Function (\S+)/.exec(node)?.[1];
      if (name !== undefined && refused.has(name.toLowerCase()) && !HARMLESS_TABLE_FUNCTIONS.has(name.toLowerCase())) {
        throw invalid(`sql: ${name}() is not allowed: it reads outside the stored tables`);
      }
    }
  };

  return {
    /** Checks and runs one SELECT; `invalid_argument` naming `sql` or `max_rows` for what is refused. */
    async run(sql: string, maxRowsAsked: number, signal?: AbortSignal): Promise<QueryResult> {
      if (sql.trim() === "") throw invalid("sql: required");
      if (Buffer.byteLength(sql) > MAX_SQL_BYTES) throw invalid(`sql: at most ${MAX_SQL_BYTES} bytes`);
      if (maxRowsAsked < 0 || maxRowsAsked > MAX_ROWS) throw invalid(`max_rows: 0 to ${MAX_ROWS}, got ${maxRowsAsked}`);
      const maxRows = maxRowsAsked === 0 ? DEFAULT_ROWS : maxRowsAsked;
      await check(sql, signal);
      const started = performance.now();
      let text: string;
      let summary: string | undefined;
      try {
        const result = await clickhouse.client.query({
          query: `${sql}\n`,
          format: "JSONCompactEachRowWithNamesAndTypes",
          clickhouse_settings: {
            readonly: "2",
            max_execution_time: QUERY_SECONDS,
            // ClickHouse stops at a whole block past this; the rows beyond are cut here.
            max_result_rows: String(maxRows + 1),
            result_overflow_mode: "break",
            // One answer on both engines: a server quotes them by default, the embedded engine does not.
            output_format_json_quote_64bit_integers: 1,
          },
          ...(signal !== undefined ? { abort_signal: signal } : {}),
        });
        text = await result.text();
        const header = result.response_headers["x-clickhouse-summary"];
        summary = Array.isArray(header) ? header[0] : header;
      } catch (error) {
        const message = clickhouseMessage(error);
        if (message !== undefined) throw invalid(`sql: ${message}`);
        throw error;
      }
      const [columns = [], types = [], ...rows] = text
        .split("\n")
        .filter((line) => line !== "")
        .map((line) => JSON.parse(line) as unknown[]);
      const rowsRead = summary !== undefined ? Number((JSON.parse(summary) as { read_rows?: string }).read_rows ?? 0) : 0;
      return {
        columns: columns.map(String),
        types: types.map(String),
        rows: rows.slice(0, maxRows),
        truncated: rows.length > maxRows,
        rowsRead: Number.isFinite(rowsRead) ? rowsRead : 0,
        elapsedMs: performance.now() - started,
      };
    },
  };
}
