import type pg from "pg";
import { Metric } from "../../gen/funnel/ops/v1/ops_pb.js";
import { clickhouseTime, type ClickHouse } from "../core/clickhouse.js";
import { dayOf, parseDay } from "../core/day.js";
import { eventTypes } from "../ingest/registry.js";
import { readCounters } from "../ingest/store.js";

/** What `GetTimeSeries` counts, validated. */
export interface SeriesQuery {
  readonly metric: Metric;
  readonly from: Date;
  readonly to: Date;
  readonly stepSeconds: number;
  readonly partnerId: string;
  readonly integration: string;
  readonly trackerId: string;
  readonly eventType: string;
}

/** One key's count per bucket. */
export interface CountSeries {
  readonly key: string;
  readonly values: number[];
  readonly total: number;
}

/** Buckets (their starts, oldest first) and the series counted in them. */
export interface SeriesResult {
  readonly buckets: Date[];
  readonly series: CountSeries[];
}

/** A ClickHouse source: the rows to count, their time column and what splits them into series. */
interface Source {
  readonly table: string;
  readonly time: string;
  readonly key: string;
  /** Extra conditions, with the query parameters they use. */
  readonly where: string[];
}

function sourcesOf(query: SeriesQuery): Source[] {
  const partner = query.partnerId !== "" ? ["partner_id = {partner:String}"] : [];
  switch (query.metric) {
    case Metric.INGEST_EVENTS:
      return [...eventTypes.keys()]
        .filter((name) => query.eventType === "" || name === query.eventType)
        .map((name) => ({ table: name, time: "timestamp", key: `'${name}'`, where: [] }));
    case Metric.POSTBACK_ATTEMPTS:
      return [{ table: "postback_deliveries", time: "attempted_at", key: "outcome", where: partner }];
    case Metric.POSTBACK_EVENTS:
      return [{ table: "postback_events", time: "recorded_at", key: "outcome", where: partner }];
    case Metric.SEEN_ATTEMPTS:
      return [{ table: "seen_delivery_attempts", time: "attempted_at", key: "outcome", where: query.integration !== "" ? ["integration = {integration:String}"] : [] }];
    case Metric.TRACKER_HITS:
      return [{ table: "tracker_events", time: "date_time", key: "'hits'", where: query.trackerId !== "" ? ["tracker_id = {tracker:UUID}"] : [] }];
    default:
      throw new Error(`no ClickHouse source for metric ${query.metric}`);
  }
}

/** Metrics that `series_per_minute` counts per minute and key (migration 0011), by their name there. */
const ROLLED_UP: ReadonlyMap<Metric, string> = new Map([
  [Metric.POSTBACK_ATTEMPTS, "postback_attempts"],
  [Metric.POSTBACK_EVENTS, "postback_events"],
  [Metric.SEEN_ATTEMPTS, "seen_attempts"],
  [Metric.TRACKER_HITS, "tracker_hits"],
]);

/** The per-minute rollup answers a query with no filter and a step of whole minutes. */
function rollupOf(query: SeriesQuery): string | undefined {
  const filtered = query.partnerId !== "" || query.integration !== "" || query.trackerId !== "";
  return filtered || query.stepSeconds % 60 !== 0 ? undefined : ROLLED_UP.get(query.metric);
}

/** Start (Unix seconds) of the bucket holding `at`: multiples of the step since the epoch, as toStartOfInterval makes them. */
const bucketOf = (at: Date, stepSeconds: number): number => Math.floor(at.getTime() / 1000 / stepSeconds) * stepSeconds;

/** Lays counts of (bucket, key) into one zero-filled series per key. */
function arrange(query: SeriesQuery, rows: readonly { bucket: number; key: string; n: number }[]): SeriesResult {
  const first = bucketOf(query.from, query.stepSeconds);
  const last = bucketOf(new Date(query.to.getTime() - 1), query.stepSeconds);
  const count = (last - first) / query.stepSeconds + 1;
  const buckets = Array.from({ length: count }, (_, i) => new Date((first + i * query.stepSeconds) * 1000));
  const byKey = new Map<string, number[]>();
  for (const row of rows) {
    const index = (row.bucket - first) / query.stepSeconds;
    if (!Number.isInteger(index) || index < 0 || index >= count) continue;
    let values = byKey.get(row.key);
    if (values === undefined) byKey.set(row.key, (values = new Array<number>(count).fill(0)));
    values[index] = (values[index] ?? 0) + row.n;
  }
  const series = [...byKey]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, values]) => ({ key, values, total: values.reduce((sum, n) => sum + n, 0) }));
  return { buckets, series };
}

/**
 * Counts rows per `toStartOfInterval(time, INTERVAL step SECOND)` bucket and
 * key in ClickHouse: from the per-minute rollup when it can answer, else from
 * the tables themselves, each filtered on its time column, which the monthly
 * partitions (and for ingest tables the sorting key's date) narrow.
 */
async function countInClickHouse(clickhouse: ClickHouse, query: SeriesQuery, signal: AbortSignal | undefined): Promise<SeriesResult> {
  const rollup = rollupOf(query);
  const sources = sourcesOf(query);
  if (sources.length === 0) return arrange(query, []);
  const parts = rollup !== undefined
    ? [
        `SELECT toUnixTimestamp(toStartOfInterval(minute, INTERVAL {step:UInt32} SECOND)) AS bucket, toString(key) AS key, sum(n) AS n
           FROM ${clickhouse.database}.series_per_minute
          WHERE metric = {rollup:String} AND minute >= toStartOfMinute({from:DateTime64(3, 'UTC')}) AND minute < {to:DateTime64(3, 'UTC')}
          GROUP BY bucket, key`,
      ]
    : sources.map(
    (source) =>
      `SELECT toUnixTimestamp(toStartOfInterval(${source.time}, INTERVAL {step:UInt32} SECOND)) AS bucket, toString(${source.key}) AS key, count() AS n
         FROM ${clickhouse.database}.${source.table}
        WHERE ${[`${source.time} >= {from:DateTime64(3, 'UTC')}`, `${source.time} < {to:DateTime64(3, 'UTC')}`, ...source.where].join(" AND ")}
        GROUP BY bucket, key`,
  );
  const result = await clickhouse.client.query({
    query: parts.join("\nUNION ALL\n"),
    query_params: {
      step: query.stepSeconds,
      from: clickhouseTime(query.from),
      to: clickhouseTime(query.to),
      partner: query.partnerId,
      integration: query.integration,
      tracker: query.trackerId === "" ? "00000000-0000-0000-0000-000000000000" : query.trackerId,
      rollup: rollup ?? "",
    },
    format: "JSONEachRow",
    ...(signal !== undefined ? { abort_signal: signal } : {}),
  });
  const rows = await result.json<{ bucket: number | string; key: string; n: number | string }>();
  return arrange(query, rows.map((row) => ({ bucket: Number(row.bucket), key: row.key, n: Number(row.n) })));
}

/** Rejections per reason from the daily quality counters (Postgres), in buckets of whole days. */
async function countRejections(pool: pg.Pool, query: SeriesQuery): Promise<SeriesResult> {
  const counters = await readCounters(pool, dayOf(query.from), dayOf(query.to.getTime() - 1));
  const rows = counters.flatMap((row) => {
    if (!row.counter.startsWith("rejected:") || (query.eventType !== "" && row.eventType !== query.eventType)) return [];
    return [{ bucket: bucketOf(new Date(parseDay(row.day)!), query.stepSeconds), key: row.counter.slice("rejected:".length), n: row.value }];
  });
  return arrange(query, rows);
}

/** Counts `query.metric` per bucket: ClickHouse for event rows, Postgres for the daily ingest counters. */
export function countSeries(deps: { clickhouse: ClickHouse; pool: pg.Pool }, query: SeriesQuery, signal?: AbortSignal): Promise<SeriesResult> {
  return query.metric === Metric.INGEST_REJECTED ? countRejections(deps.pool, query) : countInClickHouse(deps.clickhouse, query, signal);
}
