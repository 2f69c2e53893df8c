import { jsonOf } from "../json.js";
import { QualityRowSchema } from "../../gen/funnel/ingest/v1/ingest_pb.js";
import { type Flags, printJson, stringFlag, UsageError, type CommandSet } from "../command.js";
import { table } from "../table.js";
import { parseDay } from "../../services/core/day.js";

function day(flags: Flags, name: string): string {
  const value = stringFlag(flags, name) ?? "";
  if (value !== "" && parseDay(value) === undefined) throw new UsageError(`--${name}: must be a day as YYYY-MM-DD, got "${value}"`);
  return value;
}

/** `funnel ingest …`: the IngestService's data-quality report. */
export const ingestCommands: CommandSet = {
  help: `  ingest quality [--from DAY] [--to DAY]
                                per UTC day and event type: accepted, rejected (by reason),
                                duplicates, seq gaps, page-view pairing (default: the last 7 days)`,
  options: { from: { type: "string" }, to: { type: "string" } },
  examples: [
    "funnel ingest quality",
    "funnel ingest quality --from 2026-01-01 --to 2026-01-07 --json",
  ],
  commands: {
    async "ingest quality"({ clients, flags, json, out }) {
      const { rows } = await clients.ingest.getQuality({ from: day(flags, "from"), to: day(flags, "to") });
      if (json) return printJson(out, rows.map((row) => jsonOf(QualityRowSchema, row)));
      if (rows.length === 0) return out("no ingest traffic in that range");
      out(
        table(
          ["day", "type", "accepted", "rejected", "duplicates", "gaps", "out of order", "page views"],
          rows.map((row) => {
            const rejected = Object.entries(row.rejected)
              .sort(([a], [b]) => a.localeCompare(b))
              .map(([reason, n]) => `${reason}=${n}`);
            const pageViews =
              row.eventType === "page_view"
                ? `paired=${row.pageViewsPaired} unpaired=${row.pageViewsUnpaired} unmatched_ends=${row.unmatchedEnds} late_ends=${row.lateEnds}`
                : "";
            return [
              row.day,
              row.eventType,
              String(row.accepted),
              rejected.length === 0 ? "0" : rejected.join(" "),
              String(row.duplicates),
              String(row.gaps),
              String(row.outOfOrder),
              pageViews,
            ];
          }),
        ),
      );
    },
  },
};
