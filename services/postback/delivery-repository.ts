import type { Attempt } from "../core/delivery/index.js";
import type pg from "pg";
import type { EventName } from "./partner.js";

/** Where a postback stands (the `status` column). */
export type DeliveryStatusName = "pending" | "retrying" | "delivered" | "dead" | "cancelled";
/** A row of `postbacks`: one postback to one partner. */
export interface DeliveryRow extends NewDelivery {
  readonly status: DeliveryStatusName;
  readonly attempts: number;
  readonly attemptBase: number;
  /** Replays so far (the `generation` column). */
  readonly replay: number;
  readonly lastHttpStatus: number | null;
  readonly lastError: string | null;
  readonly nextAttemptAt: Date | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  /** `created_at` in microseconds since the epoch: the exact page cursor. */
  readonly createdUs: number;
}

/** A row of `postback_deliveries`: one HTTP attempt, with the facts of its postback. */
export interface AttemptRow
  extends Pick<Attempt<DeliveryRow>, "attempt" | "method" | "url" | "httpStatus" | "responseBody" | "durationMs" | "error" | "outcome" | "attemptedAt"> {
  readonly deliveryId: string;
  readonly partnerId: string;
  readonly event: EventName;
  readonly stag: string;
  readonly clickId: string;
}

/** Selects postbacks for lists and replays; unset fields match all. */
export interface DeliveryFilter {
  readonly partnerId?: string;
  readonly event?: EventName;
  readonly status?: DeliveryStatusName;
  readonly from?: Date;
  readonly to?: Date;
  readonly stag?: string;
}

/** A new postback, as the recorder queues it. */
export interface NewDelivery {
  readonly id: string;
  readonly partnerId: string;
  readonly event: EventName;
  readonly stag: string;
  readonly clickId: string;
  readonly params: Readonly<Record<string, string>>;
  readonly userId: string;
  readonly deviceId: string;
  readonly occurredAt: Date;
}

const DELIVERY_COLUMNS = `id, partner_id AS "partnerId", event, stag, click_id AS "clickId", params, user_id AS "userId",
  device_id AS "deviceId", occurred_at AS "occurredAt", status, attempts, attempt_base AS "attemptBase", generation AS replay,
  last_http_status AS "lastHttpStatus", last_error AS "lastError", next_attempt_at AS "nextAttemptAt",
  created_at AS "createdAt", updated_at AS "updatedAt",
  (extract(epoch FROM created_at) * 1000000)::bigint AS "createdUs"`;

/** New postbacks, one per element of the arrays $1–$9; prepared, as the recorder runs it for every group. */
const INSERT_DELIVERIES = {
  name: "postback-insert-deliveries",
  text: `INSERT INTO postbacks (id, partner_id, event, stag, click_id, params, user_id, device_id, occurred_at)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::text[], $8::text[], $9::timestamptz[])`,
};

const GET_DELIVERIES = `SELECT ${DELIVERY_COLUMNS} FROM postbacks WHERE id = ANY($1::uuid[])`;

const ATTEMPTS_OF = `SELECT delivery_id AS "deliveryId", attempt, partner_id AS "partnerId", event, stag, click_id AS "clickId", method, url,
         http_status AS "httpStatus", response_body AS "responseBody", duration_ms AS "durationMs", error, outcome,
         attempted_at AS "attemptedAt"
    FROM postback_deliveries WHERE delivery_id = $1 ORDER BY attempt`;

/**
 * Moves postbacks on by their attempts, one per element of the arrays $1–$7,
 * the first of a repeated (id, generation, attempt) only, and only a postback
 * still open at the attempt before (see `DeliveryStore.recordAttempts` in
 * core/delivery, also for why the status test reads `(…) IS TRUE`). Returns
 * the 1-based positions of the attempts that moved their postback.
 */
const MOVE_DELIVERIES = `UPDATE postbacks p
    SET status = u.status, attempts = u.attempt, last_http_status = u.http_status, last_error = NULLIF(u.error, ''),
        next_attempt_at = u.next_at, updated_at = now()
   FROM (SELECT DISTINCT ON (id, generation, attempt) *
           FROM unnest($1::uuid[], $2::int[], $3::int[], $4::text[], $5::int[], $6::text[], $7::timestamptz[])
                WITH ORDINALITY AS x(id, generation, attempt, status, http_status, error, next_at, n)
          ORDER BY id, generation, attempt, n) u
  WHERE p.id = u.id AND p.generation = u.generation AND p.attempts = u.attempt - 1
    AND (p.status IN ('pending', 'retrying')) IS TRUE
  RETURNING u.n`;

/** The attempts' log rows, one per element of the arrays $1–$14; an attempt logged already stays as it was. */
const LOG_ATTEMPTS = `INSERT INTO postback_deliveries (delivery_id, attempt, partner_id, event, stag, click_id, method, url, http_status,
                                 response_body, duration_ms, error, outcome, attempted_at)
  SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                       $9::int[], $10::bytea[], $11::float8[], $12::text[], $13::text[], $14::timestamptz[])
  ON CONFLICT DO NOTHING`;

const CANCEL_DELIVERY = `UPDATE postbacks SET status = 'cancelled', last_error = $3, next_attempt_at = NULL, updated_at = now()
  WHERE id = $1 AND generation = $2 AND (status IN ('pending', 'retrying')) IS TRUE`;

/** Replays the postbacks that `chosen` (a locking SELECT of ids) selects. */
const replayDeliveries = (chosen: string): string => `UPDATE postbacks
    SET status = 'pending', generation = generation + 1, attempt_base = attempts, next_attempt_at = NULL, last_error = NULL, updated_at = now()
  WHERE id IN (${chosen})
  RETURNING id, attempts, generation AS replay`;

const DELETE_FINISHED_DELIVERIES = `DELETE FROM postbacks WHERE id IN (
  SELECT id FROM postbacks WHERE created_at < $1 AND status IN ('delivered', 'dead', 'cancelled') ORDER BY created_at LIMIT $2)`;

const BACKLOG = `SELECT status, count(*)::int AS count, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS "oldestSeconds"
  FROM postbacks WHERE status IN ('pending', 'retrying') GROUP BY status`;

/** Builds the WHERE clause of a delivery filter, numbering parameters from `values.length + 1`. */
function whereOf(filter: DeliveryFilter, values: unknown[]): string {
  const conditions: string[] = [];
  const add = (sql: string, value: unknown) => {
    values.push(value);
    conditions.push(sql.replace("?", `$${values.length}`));
  };
  if (filter.partnerId !== undefined) add("partner_id = ?", filter.partnerId);
  if (filter.event !== undefined) add("event = ?", filter.event);
  if (filter.status !== undefined) add("status = ?", filter.status);
  if (filter.from !== undefined) add("created_at >= ?", filter.from);
  if (filter.to !== undefined) add("created_at < ?", filter.to);
  if (filter.stag !== undefined) add("stag = ?", filter.stag);
  return conditions.length === 0 ? "TRUE" : conditions.join(" AND ");
}

/** The statements on postbacks (`postbacks`) and their attempts (`postback_deliveries`). */
export function createDeliveryRepository(pool: pg.Pool) {
  return {

    /** Stores new postbacks, pending, in the caller's transaction. */
    async insertDeliveries(tx: pg.ClientBase, deliveries: readonly NewDelivery[]): Promise<void> {
      if (deliveries.length === 0) return;
      await tx.query({
        ...INSERT_DELIVERIES,
        values: [
          deliveries.map((d) => d.id),
          deliveries.map((d) => d.partnerId),
          deliveries.map((d) => d.event),
          deliveries.map((d) => d.stag),
          deliveries.map((d) => d.clickId),
          deliveries.map((d) => JSON.stringify(d.params)),
          deliveries.map((d) => d.userId),
          deliveries.map((d) => d.deviceId),
          deliveries.map((d) => d.occurredAt),
        ],
      });
    },

    async getDeliveries(ids: readonly string[]): Promise<DeliveryRow[]> {
      const { rows } = await pool.query<DeliveryRow>(GET_DELIVERIES, [ids]);
      return rows;
    },

    /** Newest first; `after` is the last row of the previous page. */
    async listDeliveries(filter: DeliveryFilter, limit: number, after?: { createdUs: number; id: string }): Promise<DeliveryRow[]> {
      const values: unknown[] = [];
      let where = whereOf(filter, values);
      if (after !== undefined) {
        values.push(after.createdUs, after.id);
        where += ` AND (created_at, id) < ('epoch'::timestamptz + $${values.length - 1} * interval '1 microsecond', $${values.length}::uuid)`;
      }
      values.push(limit);
      const { rows } = await pool.query<DeliveryRow>(
        `SELECT ${DELIVERY_COLUMNS} FROM postbacks WHERE ${where} ORDER BY created_at DESC, id DESC LIMIT $${values.length}`,
        values,
      );
      return rows;
    },

    async attemptsOf(id: string): Promise<AttemptRow[]> {
      const { rows } = await pool.query<AttemptRow>(ATTEMPTS_OF, [id]);
      return rows;
    },

    /**
     * Records attempts and moves their postbacks on, in the caller's
     * transaction (see `DeliveryStore.recordAttempts` in core/delivery).
     * Returns whether each attempt was recorded.
     */
    async recordAttempts(tx: pg.ClientBase, results: readonly Attempt<DeliveryRow>[]): Promise<boolean[]> {
      const status = (result: Attempt<DeliveryRow>): DeliveryStatusName => (result.outcome === "retry" ? "retrying" : result.outcome);
      const { rows } = await tx.query<{ n: string }>(MOVE_DELIVERIES, [
        results.map((r) => r.delivery.id),
        results.map((r) => r.delivery.replay),
        results.map((r) => r.attempt),
        results.map(status),
        results.map((r) => r.httpStatus),
        results.map((r) => r.error),
        results.map((r) => r.nextAttemptAt),
      ]);
      // WITH ORDINALITY counts from 1.
      const moved = new Set(rows.map((row) => Number(row.n) - 1));
      const recorded = results.map((_, index) => moved.has(index));
      const logged = results.filter((_, index) => moved.has(index));
      if (logged.length === 0) return recorded;
      await tx.query(LOG_ATTEMPTS, [
        logged.map((r) => r.delivery.id),
        logged.map((r) => r.attempt),
        logged.map((r) => r.delivery.row.partnerId),
        logged.map((r) => r.delivery.row.event),
        logged.map((r) => r.delivery.row.stag),
        logged.map((r) => r.delivery.row.clickId),
        logged.map((r) => r.method),
        logged.map((r) => r.url),
        logged.map((r) => r.httpStatus),
        logged.map((r) => r.responseBody),
        logged.map((r) => r.durationMs),
        logged.map((r) => r.error),
        logged.map((r) => r.outcome),
        logged.map((r) => r.attemptedAt),
      ]);
      return recorded;
    },

    /** Marks a postback cancelled (partner or event disabled, partner removed) unless it moved on. */
    async cancelDelivery(id: string, replay: number, reason: string): Promise<boolean> {
      const { rowCount } = await pool.query(CANCEL_DELIVERY, [id, replay, reason]);
      return rowCount === 1;
    },

    /**
     * Replays the listed postbacks, or up to `limit` matching the filter,
     * oldest first: pending again, with a fresh budget, one replay more.
     */
    async replayDeliveries(
      tx: pg.ClientBase,
      selection: { ids: readonly string[] } | { filter: DeliveryFilter; limit: number },
    ): Promise<{ id: string; attempts: number; replay: number }[]> {
      const values: unknown[] = [];
      let chosen: string;
      if ("ids" in selection) {
        values.push(selection.ids);
        chosen = "SELECT id FROM postbacks WHERE id = ANY($1::uuid[]) FOR UPDATE";
      } else {
        const where = whereOf(selection.filter, values);
        values.push(selection.limit);
        chosen = `SELECT id FROM postbacks WHERE ${where} ORDER BY created_at LIMIT $${values.length} FOR UPDATE`;
      }
      const { rows } = await tx.query<{ id: string; attempts: number; replay: number }>(replayDeliveries(chosen), values);
      return rows;
    },

    /** Deletes up to `batch` finished postbacks (with their attempts) created before `before`. */
    async deleteFinishedDeliveries(before: Date, batch: number): Promise<number> {
      const { rowCount } = await pool.query(DELETE_FINISHED_DELIVERIES, [before, batch]);
      return rowCount ?? 0;
    },

    /** Unfinished postbacks by status, with the age of the oldest, for metrics. */
    async backlog(): Promise<{ status: string; count: number; oldestSeconds: number }[]> {
      const { rows } = await pool.query<{ status: string; count: number; oldestSeconds: number }>(BACKLOG);
      return rows;
    },
  };
}

export type DeliveryRepository = ReturnType<typeof createDeliveryRepository>;
