import type pg from "pg";
import type { AnalyticsRow } from "../core/analytics/appender.js";
import { dayOf } from "../core/day.js";
import { COUNTER, type Counters } from "./quality.js";
import { PAGE_VIEW_TABLE } from "./registry.js";
import { markEmitted, type PageViewHalf, type PageViewState, recordPageViewHalf } from "./store.js";
import { clickhouseTime } from "../core/clickhouse.js";

/**
 * The `page_view` row of a view. The duration comes from the client's clocks
 * when both halves carry `client_time` (immune to delivery delays and to the
 * end arriving first), else from the server's; never negative.
 */
export function pageViewRow(state: PageViewState, paired: boolean): AnalyticsRow {
  let duration: number | null = null;
  if (paired && state.started_at !== null && state.ended_at !== null) {
    const [from, to] =
      state.start_client_time !== null && state.end_client_time !== null ? [state.start_client_time, state.end_client_time] : [state.started_at, state.ended_at];
    duration = Math.max(0, to.getTime() - from.getTime()) / 1000;
  }
  return {
    user_id: state.user_id,
    timestamp: clickhouseTime(state.started_at ?? state.ended_at ?? new Date()),
    page_view_id: state.page_view_id,
    page_type: state.page_type,
    duration_seconds: duration,
    paired,
  };
}

/**
 * Records page-view halves inside the caller's transaction and appends a
 * `page_view` row for every view that now has both halves and was not
 * emitted before. Halves are taken in key order (arrival order within one
 * view) so concurrent transactions lock views in the same order.
 */
export async function pairPageViews(
  tx: pg.ClientBase,
  halves: readonly PageViewHalf[],
  counters: Counters,
  append: (table: string, rows: AnalyticsRow[]) => Promise<void>,
): Promise<void> {
  if (halves.length === 0) return;
  const ordered = [...halves].sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : a.pageViewId.localeCompare(b.pageViewId)));
  const emitted: PageViewState[] = [];
  const done = new Set<string>();
  for (const half of ordered) {
    const state = await recordPageViewHalf(tx, half);
    const key = `${state.user_id}\u0000${state.page_view_id}`;
    const day = dayOf(half.at);
    if (state.emitted_at !== null || done.has(key)) {
      // The first end after the view was emitted unpaired: it came too late to pair.
      if (half.kind === "end" && state.paired === false && state.ends === 1) counters.add(day, PAGE_VIEW_TABLE, COUNTER.lateEnds);
      continue;
    }
    if (state.started_at !== null && state.ended_at !== null) {
      emitted.push(state);
      done.add(key);
      counters.add(day, PAGE_VIEW_TABLE, COUNTER.pageViewsPaired);
    }
  }
  await markEmitted(
    tx,
    emitted.map((state) => ({ userId: state.user_id, pageViewId: state.page_view_id })),
    true,
  );
  await append(
    PAGE_VIEW_TABLE,
    emitted.map((state) => pageViewRow(state, true)),
  );
}
