import { toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { limitFlag, printJson, UsageError, type CommandSet } from "../command.js";
import { table } from "../table.js";

/** `funnel sql "SELECT …"`: OpsService/QueryAnalytics, a read-only look at the ClickHouse tables. */
export const sqlCommands: CommandSet = {
  help: `  sql "SELECT …" [--limit N]    one read-only SELECT on ClickHouse (at most N rows, default 1000)`,
  options: { limit: { type: "string" } },
  examples: [
    `funnel sql "SELECT outcome, count() FROM funnel.postback_deliveries GROUP BY outcome"`,
    `funnel sql "SELECT * FROM funnel.tracker_events ORDER BY date_time DESC" --limit 10 --json`,
  ],
  commands: {
    async sql({ clients, args, flags, json, out }) {
      if (args.length !== 1 || args[0] === undefined) throw new UsageError('sql: expected one quoted statement, e.g. funnel sql "SELECT 1"');
      const res = await clients.ops.queryAnalytics({ sql: args[0], maxRows: limitFlag(flags) });
      const rows = res.rows.map((row) => row.values.map((value) => toJson(ValueSchema, value)));
      if (json) return printJson(out, { database: res.database, columns: res.columns, types: res.types, rows, truncated: res.truncated });
      const cell = (value: unknown) => (typeof value === "string" ? value : JSON.stringify(value));
      if (res.columns.length > 0) out(table(res.columns, rows.map((row) => row.map(cell))));
      out(`${rows.length} row${rows.length === 1 ? "" : "s"}${res.truncated ? " (more were cut: raise --limit, up to 10000)" : ""}, ${res.elapsedMs.toFixed(0)} ms`);
    },
  },
};
