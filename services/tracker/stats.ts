import { clickhouseTime, type ClickHouse } from "../core/clickhouse.js";
import { DAY_MS, DAY_PATTERN, dayOf, parseDay } from "../core/day.js";

/** An inclusive time range, to the millisecond. */
export interface StatsRange {
  readonly from: Date;
  readonly to: Date;
}

/** A bad range parameter: the message names the field and the reason. */
export class RangeParameterError extends Error {}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

/**
 * Reads one end of a range: a UTC day (`YYYY-MM-DD`, meaning its first or last
 * millisecond) or an RFC 3339 timestamp.
 */
function parseBound(name: string, raw: string | undefined, end: "start" | "end"): Date {
  if (raw === undefined || raw === "") throw new RangeParameterError(`${name}: required (YYYY-MM-DD or an RFC 3339 timestamp)`);
  if (DAY_PATTERN.test(raw)) {
    const start = parseDay(raw);
    if (start === undefined) throw new RangeParameterError(`${name}: "${raw}" is not a calendar day`);
    return new Date(end === "start" ? start : start + DAY_MS - 1);
  }
  if (RFC3339.test(raw)) {
    const date = new Date(raw);
    if (!Number.isNaN(date.getTime())) return date;
  }
  throw new RangeParameterError(`${name}: "${raw.slice(0, 64)}" is not a day (YYYY-MM-DD) or an RFC 3339 timestamp`);
}

/** Parses `from`/`to` into an inclusive range; throws {@link RangeParameterError}. */
export function parseRange(from: string | undefined, to: string | undefined): StatsRange {
  const range = { from: parseBound("from", from, "start"), to: parseBound("to", to, "end") };
  if (range.to < range.from) throw new RangeParameterError(`to: ${to} is before from (${from})`);
  if (range.from.getUTCFullYear() < 1970 || range.to.getUTCFullYear() > 2299) {
    throw new RangeParameterError("from/to: must lie between 1970 and 2299");
  }
  return range;
}

/** Counts a tracker's hits in a range, per UTC day (days without hits left out). */
export async function countHits(
  clickhouse: ClickHouse,
  trackerId: string,
  range: StatsRange,
  signal?: AbortSignal,
): Promise<{ total: number; days: { date: string; count: number }[] }> {
  // The `date` condition lets the primary index (tracker_id, date, …) skip
  // every other day; the `date_time` one trims the first and last day.
  const result = await clickhouse.client.query({
    query: `SELECT toString(date) AS day, count() AS hits FROM ${clickhouse.database}.tracker_events
             WHERE tracker_id = {tracker:UUID}
               AND date BETWEEN {fromDay:Date} AND {toDay:Date}
               AND date_time BETWEEN {from:DateTime64(3, 'UTC')} AND {to:DateTime64(3, 'UTC')}
             GROUP BY date ORDER BY date`,
    query_params: {
      tracker: trackerId,
      fromDay: dayOf(range.from),
      toDay: dayOf(range.to),
      from: clickhouseTime(range.from),
      to: clickhouseTime(range.to),
    },
    format: "JSONEachRow",
    ...(signal !== undefined ? { abort_signal: signal } : {}),
  });
  const days = (await result.json<{ day: string; hits: string | number }>()).map((row) => ({ date: row.day, count: Number(row.hits) }));
  return { total: days.reduce((sum, day) => sum + day.count, 0), days };
}
