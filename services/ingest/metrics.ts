import { counter, type Registry } from "../core/metrics.js";
import { COUNTER } from "./quality.js";
import type { CounterRow } from "./quality.js";

/**
 * Mirrors committed quality counters into Prometheus metrics, so `/metrics`
 * and `funnel ingest quality` count the same things (per process here,
 * summed over processes by Prometheus).
 */
export function createQualityMetrics(registry: Registry): (rows: readonly CounterRow[]) => void {
  const events = counter(registry, "funnel_ingest_events_total", "Ingest events by type and status (accepted, duplicate, rejected).", ["type", "status"]);
  const rejected = counter(registry, "funnel_ingest_rejected_total", "Rejected ingest events by type and reason.", ["type", "reason"]);
  const gaps = counter(registry, "funnel_ingest_seq_gaps_total", "Missing sequence numbers detected, by the type of the event that revealed them.", ["type"]);
  const outOfOrder = counter(registry, "funnel_ingest_out_of_order_total", "Events whose seq was not above their session's highest.", ["type"]);
  const pageViews = counter(registry, "funnel_ingest_page_views_total", "Page-view pairing outcomes (paired, unpaired, unmatched_end, late_end).", ["outcome"]);
  const outcomes: Record<string, string> = {
    [COUNTER.pageViewsPaired]: "paired",
    [COUNTER.pageViewsUnpaired]: "unpaired",
    [COUNTER.unmatchedEnds]: "unmatched_end",
    [COUNTER.lateEnds]: "late_end",
  };
  return (rows) => {
    for (const { eventType: type, counter: name, value } of rows) {
      if (name === COUNTER.accepted) events.inc({ type, status: "accepted" }, value);
      else if (name === COUNTER.duplicates) events.inc({ type, status: "duplicate" }, value);
      else if (name === COUNTER.gaps) gaps.inc({ type }, value);
      else if (name === COUNTER.outOfOrder) outOfOrder.inc({ type }, value);
      else if (name.startsWith("rejected:")) {
        events.inc({ type, status: "rejected" }, value);
        rejected.inc({ type, reason: name.slice("rejected:".length) }, value);
      } else if (outcomes[name] !== undefined) pageViews.inc({ outcome: outcomes[name] }, value);
    }
  };
}
