import type pg from "pg";

/** Something that runs SQL: the pool, or a client inside a transaction. */
type Sql = Pick<pg.ClientBase, "query">;

/** One quality counter increment. */
export interface CounterRow {
  readonly day: string;
  readonly eventType: string;
  readonly counter: string;
  readonly value: number;
}

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

/**
 * Records client event ids; returns those not seen before. Inserted in sorted
 * order so concurrent transactions lock index entries in the same order.
 */
export async function claimEventIds(tx: Sql, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const { rows } = await tx.query<{ event_id: string }>(
    `INSERT INTO ingest_event_ids (event_id)
     SELECT id FROM unnest($1::uuid[]) AS id ORDER BY id
     ON CONFLICT (event_id) DO NOTHING
     RETURNING event_id`,
    [ids],
  );
  return new Set(rows.map((row) => row.event_id));
}

/**
 * Locks the sessions (creating missing ones at 0) and returns the highest
 * sequence number each has seen. The no-op update takes the row lock, so two
 * transactions never compute gaps from the same stale number.
 */
export async function lockSessions(tx: Sql, sessionIds: readonly string[]): Promise<Map<string, bigint>> {
  if (sessionIds.length === 0) return new Map();
  const { rows } = await tx.query<{ session_id: string; max_seq: string }>(
    `INSERT INTO ingest_sessions AS s (session_id, max_seq)
     SELECT id, 0 FROM unnest($1::text[]) AS id ORDER BY id
     ON CONFLICT (session_id) DO UPDATE SET max_seq = s.max_seq
     RETURNING session_id, max_seq`,
    [[...sessionIds].sort()],
  );
  return new Map(rows.map((row) => [row.session_id, BigInt(row.max_seq)]));
}

/** Stores each session's new highest sequence number (rows locked by {@link lockSessions}). */
export async function saveSessions(tx: Sql, maxima: ReadonlyMap<string, bigint>): Promise<void> {
  if (maxima.size === 0) return;
  await tx.query(
    `UPDATE ingest_sessions s SET max_seq = GREATEST(s.max_seq, m.max_seq), updated_at = now()
       FROM unnest($1::text[], $2::bigint[]) AS m(session_id, max_seq)
      WHERE s.session_id = m.session_id`,
    [[...maxima.keys()], [...maxima.values()].map(String)],
  );
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
  await tx.query(
    `INSERT INTO ingest_quality AS q (day, event_type, counter, value)
     SELECT * FROM unnest($1::date[], $2::text[], $3::text[], $4::bigint[])
     ON CONFLICT (day, event_type, counter) DO UPDATE SET value = q.value + EXCLUDED.value`,
    [sorted.map((row) => row.day), sorted.map((row) => row.eventType), sorted.map((row) => row.counter), sorted.map((row) => row.value)],
  );
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
