import type pg from "pg";
import { analyticsStatement, type AnalyticsAppender } from "../../core/analytics/appender.js";
import type { Attempt } from "../../core/delivery/index.js";
import type { Transaction } from "../../core/postgres.js";

/** An api delivery with its integration's current settings (absent when removed). */
export interface DeliveryRow {
  readonly id: string;
  readonly integration: string;
  readonly tag: string;
  readonly itemId: string;
  readonly body: Record<string, unknown>;
  readonly status: "pending" | "delivered" | "dead" | "cancelled";
  readonly attempts: number;
  readonly attemptBase: number;
  readonly giveUpAt: Date;
  readonly enabled: boolean | null;
  readonly kind: "api" | "topic" | null;
  readonly url: string | null;
  readonly timeoutMs: number | null;
  readonly maxAttempts: number | null;
  readonly initialBackoffMs: number | null;
  readonly maxBackoffMs: number | null;
}

/** An api delivery as the admin API shows it. */
export interface DeliverySummary {
  readonly id: string;
  readonly integration: string;
  readonly tag: string;
  readonly itemId: string;
  readonly status: DeliveryRow["status"];
  readonly attempts: number;
  readonly lastError: string;
  readonly createdAt: Date;
  readonly nextAttemptAt: Date | null;
  readonly finishedAt: Date | null;
}

/** What {@link listDeliveries} selects; empty text and unset times match everything. */
export interface DeliveryListFilter {
  readonly integration: string;
  readonly status: string;
  readonly tag: string;
  readonly from?: Date;
  readonly to?: Date;
}

/** Where a page of deliveries ends: the last row's creation time (µs since the epoch) and id. */
export interface DeliveryCursor {
  readonly createdUs: string;
  readonly id: string;
}

/** One attempt of an api delivery, as the admin API shows it. */
export interface DeliveryAttempt {
  readonly attempt: number;
  readonly url: string;
  readonly httpStatus: number;
  readonly responseBody: string;
  readonly durationMs: number;
  readonly error: string;
  readonly outcome: string;
  readonly attemptedAt: Date;
}

/** The ClickHouse table (and analytics stream) of delivery attempts. */
const ATTEMPTS_STREAM = "seen_delivery_attempts";

// The statements that move a delivery on (cancel, replay, record) look it up by id and test
// its status as `(…) IS TRUE`: why, in docs/delivery.md#lookups-by-id.

/** Api deliveries $1 with their integration's current settings. */
const LOAD_DELIVERIES = `SELECT d.id::text AS id, d.integration, d.tag, d.item_id AS "itemId", d.body, d.status, d.attempts,
         d.attempt_base AS "attemptBase", d.give_up_at AS "giveUpAt",
         i.enabled, i.kind, i.url, i.timeout_ms AS "timeoutMs", i.max_attempts AS "maxAttempts",
         i.initial_backoff_ms AS "initialBackoffMs", i.max_backoff_ms AS "maxBackoffMs"
    FROM seen_deliveries d LEFT JOIN seen_integrations i ON i.name = d.integration
   WHERE d.id = ANY($1::uuid[])`;

/** Cancels delivery $1 with reason $3 if it is still pending at attempt $2. */
const CANCEL_DELIVERY = `UPDATE seen_deliveries SET status = 'cancelled', last_error = $3, finished_at = now()
   WHERE id = $1 AND (status = 'pending') IS TRUE AND attempts = $2`;

/** A new round of attempts for delivery $1 if it died at attempt $2. */
const REPLAY_DEAD_LETTER = `UPDATE seen_deliveries SET status = 'pending', attempt_base = attempts, finished_at = NULL
   WHERE id = $1 AND status = 'dead' AND attempts = $2`;

/**
 * Records attempts ($1, a JSON array; $2 their delivery ids) whose delivery
 * is still pending at the attempt before, moves those deliveries on and
 * appends their analytics lines to the attempts stream; returns the `n` of
 * each attempt recorded. Of the same attempt twice, the first (lowest `n`) counts.
 */
const RECORD_ATTEMPTS = analyticsStatement(
  "seen-record-attempts",
  (append) => `WITH input AS (
    SELECT DISTINCT ON (delivery_id, attempt) *
      FROM jsonb_to_recordset($1::jsonb) AS x(n int, delivery_id uuid, attempt int, integration text, url text, http_status int,
           response_body text, duration_ms float8, error text, outcome text, attempted_at timestamptz, next_attempt_at timestamptz, line text)
     ORDER BY delivery_id, attempt, n
  ),
  moved AS (
    UPDATE seen_deliveries d
       SET attempts = i.attempt, last_error = i.error,
           status = CASE i.outcome WHEN 'delivered' THEN 'delivered' WHEN 'dead' THEN 'dead' ELSE 'pending' END,
           next_attempt_at = i.next_attempt_at,
           finished_at = CASE WHEN i.outcome = 'retry' THEN NULL ELSE i.attempted_at END
      FROM input i
     WHERE d.id = i.delivery_id AND d.id = ANY($2::uuid[]) AND (d.status = 'pending') IS TRUE AND d.attempts = i.attempt - 1
    RETURNING i.*
  ),
  -- Only this statement moves a delivery's attempts on, under its row
  -- lock, so an attempt it moved has no row here yet.
  logged AS (
    INSERT INTO seen_delivery_attempts (delivery_id, attempt, integration, url, http_status, response_body, duration_ms, error, outcome, attempted_at)
    SELECT delivery_id, attempt, integration, url, http_status, response_body, duration_ms, error, outcome, attempted_at FROM moved ORDER BY n
  ),
  appended AS (
    ${append({ from: "moved", stream: `'${ATTEMPTS_STREAM}'`, line: "line", order: "n" })}
  )
  SELECT n FROM moved`,
);

/** Pending api deliveries per integration, and the age of the oldest. */
const BACKLOG = `SELECT integration, count(*)::int AS pending, extract(epoch FROM now() - min(created_at))::float8 AS "oldestSeconds"
    FROM seen_deliveries WHERE status = 'pending' GROUP BY integration`;

const DELIVERY_COUNTS = `SELECT count(*) FILTER (WHERE status = 'pending')::int AS pending, count(*) FILTER (WHERE status = 'dead')::int AS dead
    FROM seen_deliveries WHERE integration = $1`;

const SUMMARY = `id::text AS id, integration, tag, item_id AS "itemId", status, attempts, last_error AS "lastError",
  created_at AS "createdAt", next_attempt_at AS "nextAttemptAt", finished_at AS "finishedAt"`;

/** A page of api deliveries, newest first: filters $1 to $5 (see {@link DeliveryListFilter}), after the cursor ($6, $7), $8 rows. */
const LIST_DELIVERIES = `SELECT ${SUMMARY}, (extract(epoch FROM created_at) * 1000000)::bigint::text AS "createdUs" FROM seen_deliveries
   WHERE ($1 = '' OR integration = $1) AND ($2 = '' OR status = $2) AND ($3 = '' OR tag = $3)
     AND ($4::timestamptz IS NULL OR created_at >= $4) AND ($5::timestamptz IS NULL OR created_at < $5)
     AND ($6::bigint IS NULL OR (created_at, id) < ('epoch'::timestamptz + $6 * interval '1 microsecond', $7::uuid))
   ORDER BY created_at DESC, id DESC LIMIT $8`;

const DELIVERY_SUMMARIES = `SELECT ${SUMMARY} FROM seen_deliveries WHERE id = ANY($1::uuid[])`;

const DELIVERY_ATTEMPTS = `SELECT attempt, url, coalesce(http_status, 0) AS "httpStatus", response_body AS "responseBody", duration_ms AS "durationMs",
         error, outcome, attempted_at AS "attemptedAt"
    FROM seen_delivery_attempts WHERE delivery_id = $1 ORDER BY attempt`;

const withoutNul = (text: string): string => text.replaceAll("\u0000", "\uFFFD");

/** Loads api deliveries with their integration's current settings. */
export async function loadDeliveries(db: pg.Pool, ids: readonly string[]): Promise<DeliveryRow[]> {
  const { rows } = await db.query<DeliveryRow>({ name: "seen-deliveries", text: LOAD_DELIVERIES, values: [ids] });
  return rows;
}

/** Cancels a pending delivery with `reason`; false when it moved on from `attempts`. */
export async function cancelDelivery(db: pg.Pool, id: string, attempts: number, reason: string): Promise<boolean> {
  const { rowCount } = await db.query(CANCEL_DELIVERY, [id, attempts, reason]);
  return (rowCount ?? 0) > 0;
}

/**
 * Replays a dead delivery whose last job was redriven from the dead-letter
 * queue: a new round of attempts. False when it is no longer that job's.
 */
export async function replayDeadLetter(db: pg.Pool, id: string, attempts: number): Promise<boolean> {
  const { rowCount } = await db.query(REPLAY_DEAD_LETTER, [id, attempts]);
  return (rowCount ?? 0) > 0;
}

/**
 * Records attempts of one group commit, moves their deliveries on and
 * appends the analytics rows (`lines`, one JSON object per attempt) of those
 * recorded, with one statement: in `db`'s transaction, or committing by
 * itself on the pool (see `DeliveryStore.recordAttempts` in core/delivery);
 * `analytics` wakes the streamers once it committed. Returns whether each
 * attempt was recorded.
 */
export async function recordAttempts(
  analytics: Pick<AnalyticsAppender, "run">,
  db: pg.Pool | Transaction,
  attempts: readonly Attempt<DeliveryRow>[],
  lines: readonly string[],
): Promise<boolean[]> {
  const { rows } = await analytics.run<{ n: number }>(RECORD_ATTEMPTS, db, [
    JSON.stringify(
      attempts.map((attempt, n) => ({
        n,
        delivery_id: attempt.delivery.id,
        attempt: attempt.attempt,
        integration: attempt.delivery.row.integration,
        url: attempt.url,
        http_status: attempt.httpStatus,
        // Postgres text cannot hold NUL (a consumer may answer with one); one bad row would fail the group.
        response_body: withoutNul(attempt.responseBody.toString("utf8")),
        duration_ms: attempt.durationMs,
        error: withoutNul(attempt.error),
        outcome: attempt.outcome,
        attempted_at: attempt.attemptedAt,
        next_attempt_at: attempt.nextAttemptAt,
        line: lines[n],
      })),
    ),
    // The same ids as an array: the planner sees how few rows to look up by key.
    attempts.map((attempt) => attempt.delivery.id),
  ]);
  const recorded = new Set(rows.map((row) => row.n));
  return attempts.map((_, n) => recorded.has(n));
}

/** Pending api deliveries per integration, and the age of the oldest, for metrics. */
export async function deliveryBacklog(db: pg.Pool): Promise<{ integration: string; pending: number; oldestSeconds: number }[]> {
  const { rows } = await db.query<{ integration: string; pending: number; oldestSeconds: number }>(BACKLOG);
  return rows;
}

/** Pending and dead api deliveries of one integration. */
export async function deliveryCounts(db: pg.Pool, integration: string): Promise<{ pending: number; dead: number }> {
  const { rows } = await db.query<{ pending: number; dead: number }>(DELIVERY_COUNTS, [integration]);
  return rows[0] ?? { pending: 0, dead: 0 };
}

/** Api deliveries, newest first, of one integration and in one status (each optional). */
export async function listDeliveries(db: pg.Pool, filter: DeliveryListFilter, limit: number, after?: DeliveryCursor): Promise<(DeliverySummary & DeliveryCursor)[]> {
  const { rows } = await db.query<DeliverySummary & DeliveryCursor>(LIST_DELIVERIES, [
    filter.integration,
    filter.status,
    filter.tag,
    filter.from ?? null,
    filter.to ?? null,
    after?.createdUs ?? null,
    after?.id ?? null,
    limit,
  ]);
  return rows;
}

/** Api deliveries by id; ids that name none are left out. */
export async function deliverySummaries(db: pg.Pool, ids: readonly string[]): Promise<DeliverySummary[]> {
  const { rows } = await db.query<DeliverySummary>(DELIVERY_SUMMARIES, [ids]);
  return rows;
}

/** Every attempt of one api delivery that Postgres keeps, oldest first. */
export async function deliveryAttempts(db: pg.Pool, id: string): Promise<DeliveryAttempt[]> {
  const { rows } = await db.query<DeliveryAttempt>(DELIVERY_ATTEMPTS, [id]);
  return rows;
}
