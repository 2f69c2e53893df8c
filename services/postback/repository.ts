import type { Attempt } from "../core/delivery/index.js";
import { withTransaction } from "../core/postgres.js";
import type pg from "pg";
import type { EventName, PartnerConfig, StoredPartner } from "./partner.js";

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

/** Ledger codes of the events that happen once per stag. */
const LEDGER_CODE: Readonly<Record<EventName, string>> = { download: "d", install: "i", authorization: "a" };

const DELIVERY_COLUMNS = `id, partner_id AS "partnerId", event, stag, click_id AS "clickId", params, user_id AS "userId",
  device_id AS "deviceId", occurred_at AS "occurredAt", status, attempts, attempt_base AS "attemptBase", generation AS replay,
  last_http_status AS "lastHttpStatus", last_error AS "lastError", next_attempt_at AS "nextAttemptAt",
  created_at AS "createdAt", updated_at AS "updatedAt",
  (extract(epoch FROM created_at) * 1000000)::bigint AS "createdUs"`;

interface PartnerRecord {
  id: string;
  name: string;
  enabled: boolean;
  config: Omit<PartnerConfig, "id" | "name" | "enabled">;
  created_at: Date;
  updated_at: Date;
}

const PARTNER_COLUMNS = "id, name, enabled, config, created_at, updated_at";

const toPartner = (row: PartnerRecord): StoredPartner => ({
  ...row.config,
  id: row.id,
  name: row.name,
  enabled: row.enabled,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

const partnerValues = (partner: PartnerConfig): unknown[] => {
  const { id, name, enabled, ...config } = partner;
  return [id, name, enabled, JSON.stringify(config)];
};

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

/** Every SQL statement of the postback service. */
export function createPostbackRepository(pool: pg.Pool) {
  return {
    /** Runs `work` in a transaction on one pooled connection. */
    transaction: <T>(work: (tx: pg.PoolClient) => Promise<T>): Promise<T> => withTransaction(pool, work),

    // Partners.

    async listPartners(db: pg.Pool | pg.ClientBase = pool): Promise<StoredPartner[]> {
      const { rows } = await db.query<PartnerRecord>(`SELECT ${PARTNER_COLUMNS} FROM postback_partners ORDER BY id`);
      return rows.map(toPartner);
    },

    /**
     * One page of partners by id after `after`, those whose id or name
     * contains `query` (any case) and, when set, with that `enabled`; with
     * the number of matches over every page.
     */
    async searchPartners(filter: { query: string; enabled?: boolean; after: string; limit: number }): Promise<{ partners: StoredPartner[]; total: number }> {
      const pattern = `%${filter.query.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      const where = "($1 = '%%' OR id ILIKE $1 OR name ILIKE $1) AND ($2::boolean IS NULL OR enabled = $2)";
      const [page, count] = await Promise.all([
        pool.query<PartnerRecord>(`SELECT ${PARTNER_COLUMNS} FROM postback_partners WHERE ${where} AND id > $3 ORDER BY id LIMIT $4`, [pattern, filter.enabled ?? null, filter.after, filter.limit]),
        pool.query<{ total: number }>(`SELECT count(*)::int AS total FROM postback_partners WHERE ${where}`, [pattern, filter.enabled ?? null]),
      ]);
      return { partners: page.rows.map(toPartner), total: count.rows[0]?.total ?? 0 };
    },

    /** Changes whenever a partner is added, changed or removed: their count and a sum of hashes of each id and update time. */
    async partnersVersion(): Promise<string> {
      const { rows } = await pool.query<{ version: string }>(
        "SELECT count(*) || ':' || coalesce(sum(hashtext(id || '/' || updated_at::text)), 0) AS version FROM postback_partners",
      );
      return rows[0]?.version ?? "";
    },

    async getPartner(id: string): Promise<StoredPartner | undefined> {
      const { rows } = await pool.query<PartnerRecord>(`SELECT ${PARTNER_COLUMNS} FROM postback_partners WHERE id = $1`, [id]);
      return rows[0] === undefined ? undefined : toPartner(rows[0]);
    },

    /** Inserts a partner; undefined when the id is taken. */
    async insertPartner(partner: PartnerConfig): Promise<StoredPartner | undefined> {
      const { rows } = await pool.query<PartnerRecord>(
        `INSERT INTO postback_partners (id, name, enabled, config) VALUES ($1, $2, $3, $4)
         ON CONFLICT (id) DO NOTHING RETURNING ${PARTNER_COLUMNS}`,
        partnerValues(partner),
      );
      return rows[0] === undefined ? undefined : toPartner(rows[0]);
    },

    /** Replaces a partner's configuration; undefined when there is no such partner. */
    async updatePartner(partner: PartnerConfig): Promise<StoredPartner | undefined> {
      const { rows } = await pool.query<PartnerRecord>(
        `UPDATE postback_partners SET name = $2, enabled = $3, config = $4, updated_at = now() WHERE id = $1 RETURNING ${PARTNER_COLUMNS}`,
        partnerValues(partner),
      );
      return rows[0] === undefined ? undefined : toPartner(rows[0]);
    },

    async upsertPartner(tx: pg.ClientBase, partner: PartnerConfig): Promise<void> {
      await tx.query(
        `INSERT INTO postback_partners (id, name, enabled, config) VALUES ($1, $2, $3, $4)
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, enabled = EXCLUDED.enabled, config = EXCLUDED.config, updated_at = now()`,
        partnerValues(partner),
      );
    },

    /** Deletes partners by id; returns the ids that existed. */
    async deletePartners(ids: readonly string[], db: pg.Pool | pg.ClientBase = pool): Promise<string[]> {
      const { rows } = await db.query<{ id: string }>("DELETE FROM postback_partners WHERE id = ANY($1) RETURNING id", [ids]);
      return rows.map((row) => row.id);
    },

    /** Serialises imports: a second import waits for the first to commit. */
    async lockPartners(tx: pg.ClientBase): Promise<void> {
      await tx.query("LOCK TABLE postback_partners IN SHARE ROW EXCLUSIVE MODE");
    },

    // Events.

    /** Writes the ledger row of a once-only event; false when the stag already had it. */
    async claimOnce(tx: pg.ClientBase, stag: string, event: EventName): Promise<boolean> {
      const { rowCount } = await tx.query("INSERT INTO postback_ledger (stag, event) VALUES ($1, $2) ON CONFLICT DO NOTHING", [stag, LEDGER_CODE[event]]);
      return rowCount === 1;
    },

    /** Stores a download (the latest one of a stag wins) until `expiresAt`. */
    async storeDownload(tx: pg.ClientBase, stag: string, params: Readonly<Record<string, string>>, occurredAt: Date, expiresAt: Date): Promise<void> {
      await tx.query(
        `INSERT INTO postback_downloads (stag, params, occurred_at, expires_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (stag) DO UPDATE SET params = EXCLUDED.params, occurred_at = EXCLUDED.occurred_at, expires_at = EXCLUDED.expires_at
         WHERE postback_downloads.occurred_at <= EXCLUDED.occurred_at`,
        [stag, JSON.stringify(params), occurredAt, expiresAt],
      );
    },

    /** The parameters of the stag's download, if one is stored and its window covers `at`. */
    async findDownload(tx: pg.ClientBase, stag: string, at: Date): Promise<Record<string, string> | undefined> {
      const { rows } = await tx.query<{ params: Record<string, string> }>(
        "SELECT params FROM postback_downloads WHERE stag = $1 AND expires_at >= $2",
        [stag, at],
      );
      return rows[0]?.params;
    },

    async insertDelivery(tx: pg.ClientBase, delivery: NewDelivery): Promise<void> {
      await tx.query(
        `INSERT INTO postbacks (id, partner_id, event, stag, click_id, params, user_id, device_id, occurred_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
        [delivery.id, delivery.partnerId, delivery.event, delivery.stag, delivery.clickId, JSON.stringify(delivery.params), delivery.userId, delivery.deviceId, delivery.occurredAt],
      );
    },

    // Deliveries.

    async getDeliveries(ids: readonly string[]): Promise<DeliveryRow[]> {
      const { rows } = await pool.query<DeliveryRow>(`SELECT ${DELIVERY_COLUMNS} FROM postbacks WHERE id = ANY($1::uuid[])`, [ids]);
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
      const { rows } = await pool.query<AttemptRow>(
        `SELECT delivery_id AS "deliveryId", attempt, partner_id AS "partnerId", event, stag, click_id AS "clickId", method, url,
                http_status AS "httpStatus", response_body AS "responseBody", duration_ms AS "durationMs", error, outcome,
                attempted_at AS "attemptedAt"
           FROM postback_deliveries WHERE delivery_id = $1 ORDER BY attempt`,
        [id],
      );
      return rows;
    },

    /**
     * Records attempts and moves their postbacks on, in the caller's
     * transaction (see `DeliveryStore.recordAttempts` in core/delivery, also
     * for why the status test reads `(…) IS TRUE`). Returns whether each
     * attempt was recorded.
     */
    async recordAttempts(tx: pg.ClientBase, results: readonly Attempt<DeliveryRow>[]): Promise<boolean[]> {
      const status = (result: Attempt<DeliveryRow>): DeliveryStatusName => (result.outcome === "retry" ? "retrying" : result.outcome);
      const { rows } = await tx.query<{ n: string }>(
        `UPDATE postbacks p
            SET status = u.status, attempts = u.attempt, last_http_status = u.http_status, last_error = NULLIF(u.error, ''),
                next_attempt_at = u.next_at, updated_at = now()
           FROM (SELECT DISTINCT ON (id, generation, attempt) *
                   FROM unnest($1::uuid[], $2::int[], $3::int[], $4::text[], $5::int[], $6::text[], $7::timestamptz[])
                        WITH ORDINALITY AS x(id, generation, attempt, status, http_status, error, next_at, n)
                  ORDER BY id, generation, attempt, n) u
          WHERE p.id = u.id AND p.generation = u.generation AND p.attempts = u.attempt - 1
            AND (p.status IN ('pending', 'retrying')) IS TRUE
          RETURNING u.n`,
        [
          results.map((r) => r.delivery.id),
          results.map((r) => r.delivery.replay),
          results.map((r) => r.attempt),
          results.map(status),
          results.map((r) => r.httpStatus),
          results.map((r) => r.error),
          results.map((r) => r.nextAttemptAt),
        ],
      );
      // WITH ORDINALITY counts from 1.
      const moved = new Set(rows.map((row) => Number(row.n) - 1));
      const recorded = results.map((_, index) => moved.has(index));
      const logged = results.filter((_, index) => moved.has(index));
      if (logged.length === 0) return recorded;
      await tx.query(
        `INSERT INTO postback_deliveries (delivery_id, attempt, partner_id, event, stag, click_id, method, url, http_status,
                                          response_body, duration_ms, error, outcome, attempted_at)
         SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                              $9::int[], $10::bytea[], $11::float8[], $12::text[], $13::text[], $14::timestamptz[])
         ON CONFLICT DO NOTHING`,
        [
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
        ],
      );
      return recorded;
    },

    /** Marks a postback cancelled (partner or event disabled, partner removed) unless it moved on. */
    async cancelDelivery(id: string, replay: number, reason: string): Promise<boolean> {
      const { rowCount } = await pool.query(
        `UPDATE postbacks SET status = 'cancelled', last_error = $3, next_attempt_at = NULL, updated_at = now()
          WHERE id = $1 AND generation = $2 AND (status IN ('pending', 'retrying')) IS TRUE`,
        [id, replay, reason],
      );
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
      const { rows } = await tx.query<{ id: string; attempts: number; replay: number }>(
        `UPDATE postbacks SET status = 'pending', generation = generation + 1, attempt_base = attempts, next_attempt_at = NULL,
                last_error = NULL, updated_at = now()
          WHERE id IN (${chosen})
          RETURNING id, attempts, generation AS replay`,
        values,
      );
      return rows;
    },

    // Housekeeping.

    /** Deletes up to `batch` downloads whose attribution window has passed. */
    async deleteExpiredDownloads(batch: number): Promise<number> {
      const { rowCount } = await pool.query(
        "DELETE FROM postback_downloads WHERE stag IN (SELECT stag FROM postback_downloads WHERE expires_at < now() LIMIT $1)",
        [batch],
      );
      return rowCount ?? 0;
    },

    /** Deletes up to `batch` finished postbacks (with their attempts) created before `before`. */
    async deleteFinishedDeliveries(before: Date, batch: number): Promise<number> {
      const { rowCount } = await pool.query(
        `DELETE FROM postbacks WHERE id IN (
           SELECT id FROM postbacks WHERE created_at < $1 AND status IN ('delivered', 'dead', 'cancelled') ORDER BY created_at LIMIT $2)`,
        [before, batch],
      );
      return rowCount ?? 0;
    },

    /** Unfinished postbacks by status, with the age of the oldest, for metrics. */
    async backlog(): Promise<{ status: string; count: number; oldestSeconds: number }[]> {
      const { rows } = await pool.query<{ status: string; count: number; oldestSeconds: number }>(
        `SELECT status, count(*)::int AS count, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS "oldestSeconds"
           FROM postbacks WHERE status IN ('pending', 'retrying') GROUP BY status`,
      );
      return rows;
    },
  };
}

export type PostbackRepository = ReturnType<typeof createPostbackRepository>;
