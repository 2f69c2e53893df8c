import { useMemo, useState } from "preact/hooks";
import type { QualityRow } from "../../../gen/funnel/ingest/v1/ingest_pb.js";
import { api } from "../api.js";
import { useQuery } from "../query.js";
import { Chart, type ChartSeries } from "../ui/chart.js";
import { ErrorBanner, Field } from "../ui/common.js";

const DAY_MS = 86_400_000;

function isoDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

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

/** Ingest quality per UTC day and event type: accepted, rejected by reason, duplicates, gaps, page-view pairing. */
export function QualityPage() {
  const [span, setSpan] = useState(7);
  const today = Math.floor(Date.now() / DAY_MS) * DAY_MS;
  const days = useMemo(() => Array.from({ length: span }, (_, i) => isoDay(today - (span - 1 - i) * DAY_MS)), [span, today]);
  const quality = useQuery({
    key: ["quality", span, days[0]],
    fn: (signal) => api.ingest.getQuality({ from: days[0] ?? "", to: days[days.length - 1] ?? "" }, { signal }),
    refetchMs: 60_000,
    keepPrevious: true,
  });
  const rows = quality.data?.rows ?? [];
  const charts = useMemo(() => {
    const times = days.map((d) => Date.parse(`${d}T00:00:00Z`) / 1000);
    return {
      times,
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
    };
  }, [rows, days]);
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
        <Chart title="Accepted events per day by type" times={charts.times} series={charts.accepted} bars />
        <Chart title="Rejected events per day by reason" times={charts.times} series={charts.rejected} bars />
        <Chart title="Duplicates, gaps and late events per day" times={charts.times} series={charts.order} bars />
        <Chart title="Page-view pairing per day" times={charts.times} series={charts.pairing} bars />
      </div>
      <h2>By day and type</h2>
      <div class="scroll">
        <table>
          <thead>
            <tr>
              <th scope="col">Day</th>
              <th scope="col">Type</th>
              <th scope="col">Accepted</th>
              <th scope="col">Rejected</th>
              <th scope="col">Duplicates</th>
              <th scope="col">Gaps</th>
              <th scope="col">Out of order</th>
              <th scope="col">Paired</th>
              <th scope="col">Unpaired</th>
              <th scope="col">Unmatched ends</th>
              <th scope="col">Late ends</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={`${r.day}/${r.eventType}`}>
                <td>{r.day}</td>
                <th scope="row">{r.eventType}</th>
                <td>{r.accepted.toString()}</td>
                <td>
                  {Object.entries(r.rejected)
                    .map(([reason, n]) => `${reason} ${n.toString()}`)
                    .join(", ") || "0"}
                </td>
                <td>{r.duplicates.toString()}</td>
                <td>{r.gaps.toString()}</td>
                <td>{r.outOfOrder.toString()}</td>
                <td>{r.pageViewsPaired.toString()}</td>
                <td>{r.pageViewsUnpaired.toString()}</td>
                <td>{r.unmatchedEnds.toString()}</td>
                <td>{r.lateEnds.toString()}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {rows.length === 0 && quality.data !== undefined ? <p class="muted">No ingest traffic in this range.</p> : null}
    </section>
  );
}
