import type pg from "pg";
import { type AnalyticsAppender, analyticsStatement } from "../core/analytics/appender.js";
import type { Transaction } from "../core/postgres.js";
import { COUNTER, type CounterRow } from "./quality.js";

/** Something that runs SQL: the pool, or a client inside a transaction. */
type Sql = Pick<pg.ClientBase, "query">;

/** The pairing state of one page view as stored. */
export interface PageViewState {
  readonly user_id: string;
  readonly page_view_id: string;
  readonly page_type: string;
  readonly started_at: Date | null;
  readonly start_client_time: Date | null;
  readonly starts: number;
  readonly ended_at: Date | null;
  readonly end_client_time: Date | null;
  readonly ends: number;
  readonly emitted_at: Date | null;
  readonly paired: boolean | null;
}

/** One half of a page view, as it arrives. */
export interface PageViewHalf {
  readonly kind: "start" | "end";
  readonly userId: string;
  readonly pageViewId: string;
  readonly pageType: string;
  readonly at: Date;
  readonly clientTime: Date | undefined;
}

/** Upserts counter increments from `select` (day, event_type, counter, value). */
const UPSERT_COUNTERS = (select: string): string => `INSERT INTO ingest_quality AS q (day, event_type, counter, value) ${select}
  ON CONFLICT (day, event_type, counter) DO UPDATE SET value = q.value + EXCLUDED.value`;

/** One event as {@link storeEvents} takes it. */
export interface EventInput {
  /** The client's event id to claim (first occurrence in the group only), or null. */
  readonly claim: string | null;
  /** A later occurrence of an id already in the group: a duplicate whatever is stored. */
  readonly repeated: boolean;
  readonly sessionId: string | null;
  readonly seq: bigint | null;
  /** UTC day of the server timestamp, `YYYY-MM-DD`. */
  readonly day: string;
  /** Type name, which is also the analytics stream (ClickHouse table). */
  readonly eventType: string;
  /** The row for the type's table, as JSON text (`JSON.stringify`: one line). */
  readonly row: string;
}

export interface StoredEvents {
  /** Positions (0-based) of the events stored; the others were duplicates. */
  readonly fresh: ReadonlySet<number>;
  /** The counter increments the statement added, the `extra` ones included. */
  readonly increments: CounterRow[];
}

/**
 * Everything an ingest group does in one statement, so a group is one round
 * trip (and, outside a transaction, one commit):
 *
 * - `claimed`: client ids not seen before, inserted in sorted order so
 *   concurrent groups take index entries in one order;
 * - `fresh`: the events to store, in arrival order;
 * - `sessions`: each session's highest sequence number moves up; the row
 *   lock orders concurrent groups of one session, and `previous_max_seq`
 *   returns the number this group started from;
 * - `sequenced`: the highest number seen before each event (the session's
 *   previous one, or an earlier event of the group), from which a jump counts
 *   its missing numbers as gaps and a step back counts as out of order;
 * - `increments`: accepted, duplicates, gaps, out of order, plus `extra`
 *   (rejections counted since the last group), added to `ingest_quality` in
 *   sorted order;
 * - the rows of the fresh events go to the analytics stream, one chunk per type.
 */
const STORE_EVENTS = analyticsStatement(
  "ingest-store-events",
  (append) => `
WITH ev AS (
  SELECT * FROM ROWS FROM (unnest($1::uuid[], $2::boolean[], $3::text[], $4::bigint[], $5::date[], $6::text[]), string_to_table($7, E'\\n'))
    WITH ORDINALITY AS e(claim, repeated, session_id, seq, day, event_type, row, ord)
),
claimed AS (
  INSERT INTO ingest_event_ids (event_id)
  SELECT claim FROM ev WHERE claim IS NOT NULL ORDER BY claim
  ON CONFLICT (event_id) DO NOTHING
  RETURNING event_id
),
fresh AS (
  SELECT * FROM ev WHERE NOT repeated AND (claim IS NULL OR claim IN (SELECT event_id FROM claimed))
),
sessions AS (
  INSERT INTO ingest_sessions AS s (session_id, max_seq)
  SELECT session_id, max(seq) FROM fresh WHERE session_id IS NOT NULL AND seq IS NOT NULL
   GROUP BY session_id ORDER BY session_id
  ON CONFLICT (session_id) DO UPDATE
    SET previous_max_seq = s.max_seq, max_seq = GREATEST(s.max_seq, EXCLUDED.max_seq), updated_at = now()
  RETURNING session_id, previous_max_seq
),
sequenced AS (
  SELECT f.day, f.event_type, f.seq,
         GREATEST(s.previous_max_seq, coalesce(max(f.seq) OVER (
           PARTITION BY f.session_id ORDER BY f.ord ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)) AS highest
    FROM fresh f JOIN sessions s ON s.session_id = f.session_id
   WHERE f.seq IS NOT NULL
),
increments AS (
  SELECT day, event_type, '${COUNTER.accepted}' AS counter, count(*)::bigint AS value FROM fresh GROUP BY 1, 2
  UNION ALL
  SELECT day, event_type, '${COUNTER.duplicates}', count(*) FROM ev WHERE ord NOT IN (SELECT ord FROM fresh) GROUP BY 1, 2
  UNION ALL
  SELECT day, event_type, '${COUNTER.gaps}', sum(seq - highest - 1)::bigint FROM sequenced WHERE seq > highest + 1 GROUP BY 1, 2
  UNION ALL
  SELECT day, event_type, '${COUNTER.outOfOrder}', count(*) FROM sequenced WHERE seq <= highest GROUP BY 1, 2
  UNION ALL
  SELECT * FROM unnest($8::date[], $9::text[], $10::text[], $11::bigint[])
),
counted AS (
  ${UPSERT_COUNTERS("SELECT day, event_type, counter, sum(value) FROM increments GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")}
),
appended AS (
  ${append({ from: "fresh", stream: "event_type", line: "row", order: "ord" })}
)
SELECT array(SELECT ord::int - 1 FROM fresh ORDER BY ord) AS fresh,
       (SELECT coalesce(json_agg(json_build_object('day', to_char(day, 'YYYY-MM-DD'), 'eventType', event_type, 'counter', counter, 'value', value)), '[]')
          FROM increments) AS increments`,
);

/**
 * Stores a group of events in one statement (see {@link STORE_EVENTS}): on
 * the pool for its own commit, or inside a transaction that does more. The
 * analytics streamers are woken once it committed.
 */
export async function storeEvents(
  analytics: AnalyticsAppender,
  db: pg.Pool | Transaction,
  events: readonly EventInput[],
  extra: readonly CounterRow[],
): Promise<StoredEvents> {
  const { rows } = await analytics.run<{ fresh: number[]; increments: CounterRow[] }>(STORE_EVENTS, db, [
      events.map((event) => event.claim),
      events.map((event) => event.repeated),
      events.map((event) => event.sessionId),
      events.map((event) => (event.seq === null ? null : String(event.seq))),
      events.map((event) => event.day),
      events.map((event) => event.eventType),
      // One text, a row per line (JSON text never holds a raw newline): no array escaping.
      events.map((event) => event.row).join("\n"),
      extra.map((row) => row.day),
      extra.map((row) => row.eventType),
      extra.map((row) => row.counter),
      extra.map((row) => row.value),
  ]);
  const result = rows[0];
  if (result === undefined) throw new Error("storing events returned no row");
  return { fresh: new Set(result.fresh), increments: result.increments };
}

/**
 * Records one half of a page view and returns the view's state afterwards.
 * A repeated half keeps the first one's time; the start's page type wins.
 */
export async function recordPageViewHalf(tx: Sql, half: PageViewHalf): Promise<PageViewState> {
  const sql =
    half.kind === "start"
      ? `INSERT INTO ingest_page_views AS p (user_id, page_view_id, page_type, started_at, start_client_time, starts)
         VALUES ($1, $2, $3, $4, $5, 1)
         ON CONFLICT (user_id, page_view_id) DO UPDATE SET
           page_type = CASE WHEN p.started_at IS NULL THEN EXCLUDED.page_type ELSE p.page_type END,
           start_client_time = CASE WHEN p.started_at IS NULL THEN EXCLUDED.start_client_time ELSE p.start_client_time END,
           started_at = COALESCE(p.started_at, EXCLUDED.started_at),
           starts = p.starts + 1
         RETURNING *`
      : `INSERT INTO ingest_page_views AS p (user_id, page_view_id, page_type, ended_at, end_client_time, ends)
         VALUES ($1, $2, $3, $4, $5, 1)
         ON CONFLICT (user_id, page_view_id) DO UPDATE SET
           end_client_time = CASE WHEN p.ended_at IS NULL THEN EXCLUDED.end_client_time ELSE p.end_client_time END,
           ended_at = COALESCE(p.ended_at, EXCLUDED.ended_at),
           ends = p.ends + 1
         RETURNING *`;
  const { rows } = await tx.query<PageViewState>(sql, [half.userId, half.pageViewId, half.pageType, half.at, half.clientTime ?? null]);
  const state = rows[0];
  if (state === undefined) throw new Error("page view upsert returned no row");
  return state;
}

/** Marks page views as emitted (their page_view row is appended in the same transaction). */
export async function markEmitted(tx: Sql, views: readonly { userId: string; pageViewId: string }[], paired: boolean): Promise<void> {
  if (views.length === 0) return;
  await tx.query(
    `UPDATE ingest_page_views p SET emitted_at = now(), paired = $3
       FROM unnest($1::text[], $2::uuid[]) AS v(user_id, page_view_id)
      WHERE p.user_id = v.user_id AND p.page_view_id = v.page_view_id`,
    [views.map((view) => view.userId), views.map((view) => view.pageViewId), paired],
  );
}

/**
 * Takes up to `limit` starts that waited longer than the timeout for their
 * end and marks them emitted unpaired. SKIP LOCKED: a view being paired right
 * now is left to its transaction, and sweeps in several workers never take
 * the same view.
 */
export async function takeTimedOutStarts(tx: Sql, timeoutSeconds: number, limit: number): Promise<PageViewState[]> {
  const { rows } = await tx.query<PageViewState>(
    `UPDATE ingest_page_views p SET emitted_at = now(), paired = false
       FROM (SELECT user_id, page_view_id FROM ingest_page_views
              WHERE emitted_at IS NULL AND ended_at IS NULL AND started_at < now() - make_interval(secs => $1)
              ORDER BY started_at LIMIT $2 FOR UPDATE SKIP LOCKED) due
      WHERE p.user_id = due.user_id AND p.page_view_id = due.page_view_id
      RETURNING p.*`,
    [timeoutSeconds, limit],
  );
  return rows;
}

/** Marks up to `limit` ends that waited longer than the timeout for a start as counted; returns how many. */
export async function takeUnmatchedEnds(tx: Sql, timeoutSeconds: number, limit: number): Promise<number> {
  const { rowCount } = await tx.query(
    `UPDATE ingest_page_views p SET unmatched_counted = true
       FROM (SELECT user_id, page_view_id FROM ingest_page_views
              WHERE started_at IS NULL AND NOT unmatched_counted AND ended_at < now() - make_interval(secs => $1)
              ORDER BY ended_at LIMIT $2 FOR UPDATE SKIP LOCKED) due
      WHERE p.user_id = due.user_id AND p.page_view_id = due.page_view_id`,
    [timeoutSeconds, limit],
  );
  return rowCount ?? 0;
}

/** Adds counter increments; sorted so concurrent transactions lock counter rows in one order. */
export async function addCounters(tx: Sql, rows: readonly CounterRow[]): Promise<void> {
  if (rows.length === 0) return;
  const sorted = [...rows].sort((a, b) => a.day.localeCompare(b.day) || a.eventType.localeCompare(b.eventType) || a.counter.localeCompare(b.counter));
  await tx.query(UPSERT_COUNTERS("SELECT * FROM unnest($1::date[], $2::text[], $3::text[], $4::bigint[])"), [
    sorted.map((row) => row.day),
    sorted.map((row) => row.eventType),
    sorted.map((row) => row.counter),
    sorted.map((row) => row.value),
  ]);
}

/** The counters of the days from `from` to `to` (inclusive). */
export async function readCounters(pool: Sql, from: string, to: string): Promise<CounterRow[]> {
  const { rows } = await pool.query<{ day: string; event_type: string; counter: string; value: string }>(
    `SELECT to_char(day, 'YYYY-MM-DD') AS day, event_type, counter, value FROM ingest_quality
      WHERE day BETWEEN $1::date AND $2::date ORDER BY day, event_type, counter`,
    [from, to],
  );
  return rows.map((row) => ({ day: row.day, eventType: row.event_type, counter: row.counter, value: Number(row.value) }));
}

/**
 * Deletes state past its retention, at most `limit` rows per table per call:
 * event ids and idle sessions older than `days`, page views emitted (or ends
 * that never met their start) more than `days` ago.
 */
export async function deleteExpired(pool: Sql, days: number, limit: number): Promise<number> {
  const statements = [
    `DELETE FROM ingest_event_ids WHERE event_id IN (
       SELECT event_id FROM ingest_event_ids WHERE received_at < now() - make_interval(days => $1) LIMIT $2)`,
    `DELETE FROM ingest_sessions WHERE session_id IN (
       SELECT session_id FROM ingest_sessions WHERE updated_at < now() - make_interval(days => $1) LIMIT $2)`,
    `DELETE FROM ingest_page_views WHERE (user_id, page_view_id) IN (
       SELECT user_id, page_view_id FROM ingest_page_views WHERE emitted_at < now() - make_interval(days => $1) LIMIT $2)`,
    `DELETE FROM ingest_page_views WHERE (user_id, page_view_id) IN (
       SELECT user_id, page_view_id FROM ingest_page_views WHERE started_at IS NULL AND ended_at < now() - make_interval(days => $1) LIMIT $2)`,
  ];
  let deleted = 0;
  for (const sql of statements) deleted += (await pool.query(sql, [days, limit])).rowCount ?? 0;
  return deleted;
}
