import { useMemo, useState } from "preact/hooks";
import type { QualityRow } from "../../../gen/funnel/ingest/v1/ingest_pb.js";
import { api } from "../api.js";
import { useQuery } from "../query.js";
import { useLastDays } from "../series.js";
import { Chart, type ChartSeries } from "../ui/chart.js";
import { ErrorBanner, Field } from "../ui/common.js";
import { Table, type Column } from "../ui/table.js";

/** Per-day series of `value(row)` summed by `key(row)`, zero-filled over `days`. */
function perDay(rows: readonly QualityRow[], days: readonly string[], pick: (row: QualityRow) => [string, number][]): ChartSeries[] {
  const sums = new Map<string, Map<string, number>>();
  for (const row of rows) {
    for (const [key, value] of pick(row)) {
      if (value === 0) continue;
      const byDay = sums.get(key) ?? new Map<string, number>();
      byDay.set(row.day, (byDay.get(row.day) ?? 0) + value);
      sums.set(key, byDay);
    }
  }
  return [...sums.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([label, byDay]) => ({ label, values: days.map((d) => byDay.get(d) ?? 0) }));
}

const QUALITY_COLUMNS: readonly Column<QualityRow>[] = [
  { header: "Day", cell: (r) => r.day },
  { header: "Type", rowHeader: true, cell: (r) => r.eventType },
  { header: "Accepted", cell: (r) => r.accepted.toString() },
  {
    header: "Rejected",
    cell: (r) =>
      Object.entries(r.rejected)
        .map(([reason, n]) => `${reason} ${n.toString()}`)
        .join(", ") || "0",
  },
  { header: "Duplicates", cell: (r) => r.duplicates.toString() },
  { header: "Gaps", cell: (r) => r.gaps.toString() },
  { header: "Out of order", cell: (r) => r.outOfOrder.toString() },
  { header: "Paired", cell: (r) => r.pageViewsPaired.toString() },
  { header: "Unpaired", cell: (r) => r.pageViewsUnpaired.toString() },
  { header: "Unmatched ends", cell: (r) => r.unmatchedEnds.toString() },
  { header: "Late ends", cell: (r) => r.lateEnds.toString() },
];

/** Ingest quality per UTC day and event type: accepted, rejected by reason, duplicates, gaps, page-view pairing. */
export function QualityPage() {
  const [span, setSpan] = useState(7);
  const { days, times } = useLastDays(span);
  const quality = useQuery({
    key: ["quality", span, days[0]],
    fn: (signal) => api.ingest.getQuality({ from: days[0] ?? "", to: days[days.length - 1] ?? "" }, { signal }),
    refetchMs: 60_000,
    keepPrevious: true,
  });
  const rows = quality.data?.rows ?? [];
  const charts = useMemo(
    () => ({
      accepted: perDay(rows, days, (r) => (r.eventType === "page_view" && r.accepted === 0n ? [] : [[r.eventType, Number(r.accepted)]])),
      rejected: perDay(rows, days, (r) => Object.entries(r.rejected).map(([reason, n]) => [reason, Number(n)])),
      order: perDay(rows, days, (r) => [
        ["duplicates", Number(r.duplicates)],
        ["gaps", Number(r.gaps)],
        ["out of order", Number(r.outOfOrder)],
      ]),
      pairing: perDay(rows, days, (r) => [
        ["paired", Number(r.pageViewsPaired)],
        ["unpaired", Number(r.pageViewsUnpaired)],
        ["unmatched ends", Number(r.unmatchedEnds)],
        ["late ends", Number(r.lateEnds)],
      ]),
    }),
    [rows, days],
  );
  return (
    <section>
      <div class="section-head">
        <h1>Ingest quality</h1>
        <Field label="Days">
          {(id) => (
            <select id={id} value={String(span)} onChange={(e) => setSpan(Number(e.currentTarget.value))}>
              <option value="7">Last 7 days</option>
              <option value="30">Last 30 days</option>
              <option value="90">Last 90 days</option>
            </select>
          )}
        </Field>
      </div>
      <ErrorBanner error={quality.error ?? undefined} />
      <div class="charts">
        <Chart title="Accepted events per day by type" times={times} series={charts.accepted} bars />
        <Chart title="Rejected events per day by reason" times={times} series={charts.rejected} bars />
        <Chart title="Duplicates, gaps and late events per day" times={times} series={charts.order} bars />
        <Chart title="Page-view pairing per day" times={times} series={charts.pairing} bars />
      </div>
      <h2>By day and type</h2>
      <div class="scroll">
        <Table caption="Ingest quality by day and type" columns={QUALITY_COLUMNS} rows={rows} rowKey={(r) => `${r.day}/${r.eventType}`} empty={quality.data !== undefined ? "No ingest traffic in this range." : undefined} />
      </div>
    </section>
  );
}
