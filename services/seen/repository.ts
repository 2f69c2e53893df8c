import { appendFrom } from "../core/analytics/appender.js";
import type { Attempt } from "../core/delivery/index.js";
import { withTransaction } from "../core/postgres.js";
import type pg from "pg";
import type { Integration, IntegrationInput } from "./integration.js";
import type { IdentityKind } from "./identity.js";

/** The NOTIFY channel of topic feeds; the payload is the topic. */
export const TOPICS_CHANNEL = "funnel_seen_topics";

/** A mark stored (or found) by {@link SeenRepository.mark}. */
export interface MarkResult {
  readonly created: boolean;
  readonly firstSeenAt: Date;
  /** Api deliveries created with the mark (none when it already existed). */
  readonly deliveryIds: readonly string[];
}

export interface MarkInput {
  readonly identityKey: string;
  readonly tag: string;
  readonly itemId: string;
  readonly kind: IdentityKind;
  /** The identity's delivered ids. */
  readonly identity: Record<string, unknown>;
  readonly now: Date;
}

interface MarkRow {
  readonly tag: string;
  readonly itemId: string;
  readonly firstSeenAt: Date;
  readonly expiresAt: Date;
  readonly id: string;
}

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

const SUMMARY = `id::text AS id, integration, tag, item_id AS "itemId", status, attempts, last_error AS "lastError",
  created_at AS "createdAt", next_attempt_at AS "nextAttemptAt", finished_at AS "finishedAt"`;

/** What `listDeliveries` selects; empty text and unset times match everything. */
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

/** A topic with its consumers' positions. */
export interface TopicSummary {
  readonly topic: string;
  readonly integrations: string[];
  readonly retentionSeconds: number;
  readonly messages: number;
  readonly oldestAt: Date | null;
  readonly newestAt: Date | null;
  /** Times arrive as JSON text. */
  readonly consumers: { name: string; ackedAt: string; lagMessages: number; oldestUnackedAt: string | null }[];
}

export interface TopicMessageRow {
  readonly txId: string;
  readonly seq: string;
  readonly messageId: string;
  readonly tag: string;
  readonly itemId: string;
  readonly kind: IdentityKind;
  readonly identity: Record<string, unknown>;
  readonly seenAt: Date;
}

/** A topic position: the (transaction id, sequence) of the last message taken. */
export interface Position {
  readonly txId: string;
  readonly seq: string;
}

export const START: Position = { txId: "0", seq: "0" };

interface IntegrationRecord {
  name: string;
  tags: string[];
  enabled: boolean;
  kind: "api" | "topic";
  url: string | null;
  timeout_ms: number | null;
  max_attempts: number | null;
  initial_backoff_ms: number | null;
  max_backoff_ms: number | null;
  topic: string | null;
  topic_retention_seconds: string | null;
  created_at: Date;
  updated_at: Date;
}

function toIntegration(row: IntegrationRecord): Integration {
  const common = { name: row.name, tags: row.tags, enabled: row.enabled, createdAt: row.created_at, updatedAt: row.updated_at };
  if (row.kind === "api") {
    return {
      ...common,
      delivery: {
        kind: "api",
        api: {
          url: row.url ?? "",
          timeoutMs: row.timeout_ms ?? 0,
          maxAttempts: row.max_attempts ?? 0,
          initialBackoffMs: row.initial_backoff_ms ?? 0,
          maxBackoffMs: row.max_backoff_ms ?? 0,
        },
      },
    };
  }
  return { ...common, delivery: { kind: "topic", topic: { topic: row.topic ?? "", retentionMs: Number(row.topic_retention_seconds ?? 0) * 1000 } } };
}

function integrationValues(input: IntegrationInput): unknown[] {
  const api = input.delivery.kind === "api" ? input.delivery.api : undefined;
  const topic = input.delivery.kind === "topic" ? input.delivery.topic : undefined;
  return [
    input.name,
    input.tags,
    input.enabled,
    input.delivery.kind,
    api?.url ?? null,
    api?.timeoutMs ?? null,
    api?.maxAttempts ?? null,
    api?.initialBackoffMs ?? null,
    api?.maxBackoffMs ?? null,
    topic?.topic ?? null,
    topic === undefined ? null : Math.round(topic.retentionMs / 1000),
  ];
}

/** Retention of `tag` in seconds: its own, or the default ($n). */
const retentionOf = (tagSql: string, defaultParam: string): string =>
  `COALESCE((SELECT t.retention_seconds FROM seen_tags t WHERE t.tag = ${tagSql}), ${defaultParam}::bigint)`;

/**
 * The api request body of mark `c`, one format per
 * identity kind: `kind`, `tag`, `id`, `seen_at` (ISO 8601, UTC, ms) and the
 * kind's ids (see `deliveredIdentity`). `delivery_id` is added when sent.
 */
const DELIVERY_BODY = `jsonb_build_object('kind', c.kind, 'tag', c.tag, 'id', c.item_id,
                         'seen_at', to_char(c.first_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')) || c.identity`;

/** The ClickHouse table (and analytics stream) of delivery attempts. */
const ATTEMPTS_STREAM = "seen_delivery_attempts";

const withoutNul = (text: string): string => text.replaceAll("\u0000", "\uFFFD");

/** The Seen SQL, in one place. */
export function createSeenRepository(pool: pg.Pool) {
  return {
    /** Runs `work` in a transaction on one pooled connection. */
    transaction: <T>(work: (tx: pg.PoolClient) => Promise<T>): Promise<T> => withTransaction(pool, work),

    /**
     * Stores the marks of one group commit with one statement (and reads the
     * retained ones among them with a second): each mark unless one is
     * retained and, with a new mark, its api deliveries and
     * topic messages (with their NOTIFY), built from the stored mark. A mark
     * past its tag's retention but not yet cleaned up is renewed as new. The
     * same (identity, tag, id) twice in `inputs` is stored once: the first
     * creates it, the others find it. Marks are inserted in key order, so two
     * groups sharing keys lock them in the same order and one waits for the
     * other instead of deadlocking; concurrent duplicates serialize on the
     * unique key. The statement's results are matched to the inputs here, by
     * key (joining them in SQL made the planner loop over every pair).
     * Returns one result per input.
     */
    async markMany(tx: pg.PoolClient, inputs: readonly MarkInput[], defaultRetentionSeconds: number): Promise<MarkResult[]> {
      const keyOf = (identityKey: string, tag: string, itemId: string): string => JSON.stringify([identityKey, tag, itemId]);
      const firstOf = new Map<string, number>();
      inputs.forEach((input, i) => {
        const key = keyOf(input.identityKey, input.tag, input.itemId);
        if (!firstOf.has(key)) firstOf.set(key, i);
      });
      const unique = [...firstOf.values()].map((i) => inputs[i]!);
      const { rows } = await tx.query<{
        marks: { id: string; identity_key: string; tag: string; item_id: string; first_seen_at: string }[] | null;
        deliveries: { id: string; mark_id: string }[] | null;
      }>({
        name: "seen-mark-many",
        text: `WITH input AS (
           SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(identity_key text, tag text, item_id text, kind text, identity jsonb, at timestamptz)
         ),
         marks AS (
           INSERT INTO seen_marks AS m (identity_key, tag, item_id, kind, identity, first_seen_at)
           SELECT identity_key, tag, item_id, kind, identity, at FROM input
            ORDER BY identity_key, tag, item_id
           ON CONFLICT (identity_key, tag, item_id) DO UPDATE
             SET id = gen_random_uuid(), kind = EXCLUDED.kind, identity = EXCLUDED.identity, first_seen_at = EXCLUDED.first_seen_at
             WHERE m.first_seen_at <= EXCLUDED.first_seen_at - ${retentionOf("EXCLUDED.tag", "$2")} * interval '1 second'
           RETURNING m.id, m.identity_key, m.tag, m.item_id, m.kind, m.identity, m.first_seen_at
         ),
         api AS (
           INSERT INTO seen_deliveries (id, mark_id, integration, tag, item_id, body, give_up_at)
           SELECT gen_random_uuid(), c.id, i.name, c.tag, c.item_id, ${DELIVERY_BODY},
                  c.first_seen_at + ${retentionOf("c.tag", "$2")} * interval '1 second'
             FROM marks c JOIN seen_integrations i ON i.enabled AND i.kind = 'api' AND i.tags @> ARRAY[c.tag]
            ORDER BY c.identity_key, c.tag, c.item_id, i.name
           RETURNING id, mark_id
         ),
         topics AS (
           INSERT INTO seen_topic_messages (topic, message_id, tag, item_id, kind, identity, seen_at)
           SELECT topic, gen_random_uuid(), tag, item_id, kind, identity, first_seen_at
             FROM (SELECT DISTINCT ON (c.id, i.topic) c.id, i.topic, c.identity_key, c.tag, c.item_id, c.kind, c.identity, c.first_seen_at
                     FROM marks c JOIN seen_integrations i ON i.enabled AND i.kind = 'topic' AND i.tags @> ARRAY[c.tag]
                    ORDER BY c.id, i.topic) per_mark
            ORDER BY identity_key, tag, item_id, topic
           RETURNING topic
         ),
         notified AS (SELECT pg_notify('${TOPICS_CHANNEL}', topic) FROM (SELECT DISTINCT topic FROM topics) t)
         SELECT (SELECT json_agg(json_build_object('id', id, 'identity_key', identity_key, 'tag', tag, 'item_id', item_id, 'first_seen_at', first_seen_at)) FROM marks) AS marks,
                (SELECT json_agg(json_build_object('id', id, 'mark_id', mark_id)) FROM api) AS deliveries,
                (SELECT count(*) FROM notified) AS notified`,
        values: [
          JSON.stringify(unique.map((input) => ({ identity_key: input.identityKey, tag: input.tag, item_id: input.itemId, kind: input.kind, identity: input.identity, at: input.now }))),
          defaultRetentionSeconds,
        ],
      });
      const created = new Map((rows[0]?.marks ?? []).map((row) => [keyOf(row.identity_key, row.tag, row.item_id), { id: row.id, firstSeenAt: new Date(row.first_seen_at) }]));
      const deliveries = new Map<string, string[]>();
      for (const delivery of rows[0]?.deliveries ?? []) deliveries.set(delivery.mark_id, [...(deliveries.get(delivery.mark_id) ?? []), delivery.id]);

      // Retained already. A new statement sees duplicates committed meanwhile by other groups.
      const retained = unique.filter((input) => !created.has(keyOf(input.identityKey, input.tag, input.itemId)));
      const existing = new Map<string, Date>();
      if (retained.length > 0) {
        const { rows } = await tx.query<{ identity_key: string; tag: string; item_id: string; first_seen_at: Date }>(
          `SELECT m.identity_key, m.tag, m.item_id, m.first_seen_at
             FROM unnest($1::text[], $2::text[], $3::text[]) AS k(identity_key, tag, item_id)
             JOIN seen_marks m USING (identity_key, tag, item_id)`,
          [retained.map((input) => input.identityKey), retained.map((input) => input.tag), retained.map((input) => input.itemId)],
        );
        for (const row of rows) existing.set(keyOf(row.identity_key, row.tag, row.item_id), row.first_seen_at);
      }

      return inputs.map((input, i) => {
        const key = keyOf(input.identityKey, input.tag, input.itemId);
        const row = created.get(key);
        // Only the first input of a key created it; a repeat in the same group found it.
        if (row !== undefined && firstOf.get(key) === i) return { created: true, firstSeenAt: row.firstSeenAt, deliveryIds: deliveries.get(row.id) ?? [] };
        const firstSeenAt = row?.firstSeenAt ?? existing.get(key);
        if (firstSeenAt === undefined) throw new Error("seen mark vanished between insert and read");
        return { created: false, firstSeenAt, deliveryIds: [] };
      });
    },

    /** When the key first saw (tag, id), if the mark is retained. */
    async firstSeen(identityKey: string, tag: string, itemId: string, defaultRetentionSeconds: number): Promise<Date | undefined> {
      const { rows } = await pool.query<{ first_seen_at: Date }>(
        `SELECT first_seen_at FROM seen_marks
          WHERE identity_key = $1 AND tag = $2 AND item_id = $3
            AND first_seen_at > now() - ${retentionOf("$2", "$4")} * interval '1 second'`,
        [identityKey, tag, itemId, defaultRetentionSeconds],
      );
      return rows[0]?.first_seen_at;
    },

    /** The retained ones among `itemIds`. */
    async lookup(identityKey: string, tag: string, itemIds: readonly string[], defaultRetentionSeconds: number): Promise<{ itemId: string; firstSeenAt: Date }[]> {
      const { rows } = await pool.query<{ itemId: string; firstSeenAt: Date }>(
        `SELECT item_id AS "itemId", first_seen_at AS "firstSeenAt" FROM seen_marks
          WHERE identity_key = $1 AND tag = $2 AND item_id = ANY($3::text[])
            AND first_seen_at > now() - ${retentionOf("$2", "$4")} * interval '1 second'
          ORDER BY first_seen_at, item_id`,
        [identityKey, tag, itemIds, defaultRetentionSeconds],
      );
      return rows;
    },

    /** A page of the key's retained marks, oldest first, after the mark `after` (by (first_seen_at, id)). */
    async list(
      identityKey: string,
      filter: { tag: string | undefined; since: Date | undefined; after: { at: Date; id: string } | undefined },
      limit: number,
      defaultRetentionSeconds: number,
    ): Promise<MarkRow[]> {
      const { rows } = await pool.query<MarkRow>(
        `SELECT m.id::text AS id, m.tag, m.item_id AS "itemId", m.first_seen_at AS "firstSeenAt",
                m.first_seen_at + COALESCE(t.retention_seconds, $6::bigint) * interval '1 second' AS "expiresAt"
           FROM seen_marks m LEFT JOIN seen_tags t ON t.tag = m.tag
          WHERE m.identity_key = $1
            AND ($2::text IS NULL OR m.tag = $2)
            AND ($3::timestamptz IS NULL OR m.first_seen_at >= $3)
            AND ($4::timestamptz IS NULL OR (m.first_seen_at, m.id) > ($4, $5::uuid))
            AND m.first_seen_at > now() - COALESCE(t.retention_seconds, $6::bigint) * interval '1 second'
          ORDER BY m.first_seen_at, m.id
          LIMIT $7`,
        [identityKey, filter.tag ?? null, filter.since ?? null, filter.after?.at ?? null, filter.after?.id ?? null, defaultRetentionSeconds, limit],
      );
      return rows;
    },

    async setTagRetention(tag: string, seconds: number): Promise<{ tag: string; retentionSeconds: number; updatedAt: Date }> {
      const { rows } = await pool.query<{ tag: string; retentionSeconds: string; updatedAt: Date }>(
        `INSERT INTO seen_tags (tag, retention_seconds) VALUES ($1, $2)
         ON CONFLICT (tag) DO UPDATE SET retention_seconds = EXCLUDED.retention_seconds, updated_at = now()
         RETURNING tag, retention_seconds AS "retentionSeconds", updated_at AS "updatedAt"`,
        [tag, seconds],
      );
      const row = rows[0]!;
      return { ...row, retentionSeconds: Number(row.retentionSeconds) };
    },

    async listTags(): Promise<{ tag: string; retentionSeconds: number; updatedAt: Date }[]> {
      const { rows } = await pool.query<{ tag: string; retentionSeconds: string; updatedAt: Date }>(
        `SELECT tag, retention_seconds AS "retentionSeconds", updated_at AS "updatedAt" FROM seen_tags ORDER BY tag`,
      );
      return rows.map((row) => ({ ...row, retentionSeconds: Number(row.retentionSeconds) }));
    },

    /** Inserts an integration; undefined when the name is taken. */
    async createIntegration(input: IntegrationInput): Promise<Integration | undefined> {
      const { rows } = await pool.query<IntegrationRecord>(
        `INSERT INTO seen_integrations (name, tags, enabled, kind, url, timeout_ms, max_attempts, initial_backoff_ms, max_backoff_ms, topic, topic_retention_seconds)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (name) DO NOTHING RETURNING *`,
        integrationValues(input),
      );
      return rows[0] === undefined ? undefined : toIntegration(rows[0]);
    },

    /** Replaces an integration's settings; undefined when there is none. */
    async updateIntegration(input: IntegrationInput): Promise<Integration | undefined> {
      const { rows } = await pool.query<IntegrationRecord>(
        `UPDATE seen_integrations
            SET tags = $2, enabled = $3, kind = $4, url = $5, timeout_ms = $6, max_attempts = $7,
                initial_backoff_ms = $8, max_backoff_ms = $9, topic = $10, topic_retention_seconds = $11, updated_at = now()
          WHERE name = $1 RETURNING *`,
        integrationValues(input),
      );
      return rows[0] === undefined ? undefined : toIntegration(rows[0]);
    },

    async getIntegration(name: string): Promise<Integration | undefined> {
      const { rows } = await pool.query<IntegrationRecord>("SELECT * FROM seen_integrations WHERE name = $1", [name]);
      return rows[0] === undefined ? undefined : toIntegration(rows[0]);
    },

    async listIntegrations(): Promise<Integration[]> {
      const { rows } = await pool.query<IntegrationRecord>("SELECT * FROM seen_integrations ORDER BY name");
      return rows.map(toIntegration);
    },

    async deleteIntegration(name: string): Promise<boolean> {
      const { rowCount } = await pool.query("DELETE FROM seen_integrations WHERE name = $1", [name]);
      return (rowCount ?? 0) > 0;
    },

    /** Whether any integration names the topic. */
    async topicExists(topic: string): Promise<boolean> {
      const { rows } = await pool.query("SELECT 1 FROM seen_integrations WHERE kind = 'topic' AND topic = $1 LIMIT 1", [topic]);
      return rows.length > 0;
    },

    /** Pending and dead api deliveries of one integration. */
    async deliveryCounts(integration: string): Promise<{ pending: number; dead: number }> {
      const { rows } = await pool.query<{ pending: number; dead: number }>(
        `SELECT count(*) FILTER (WHERE status = 'pending')::int AS pending, count(*) FILTER (WHERE status = 'dead')::int AS dead
           FROM seen_deliveries WHERE integration = $1`,
        [integration],
      );
      return rows[0] ?? { pending: 0, dead: 0 };
    },

    /** Api deliveries, newest first, of one integration and in one status (each optional). */
    async listDeliveries(filter: DeliveryListFilter, limit: number, after?: DeliveryCursor): Promise<(DeliverySummary & DeliveryCursor)[]> {
      const { rows } = await pool.query<DeliverySummary & DeliveryCursor>(
        `SELECT ${SUMMARY}, (extract(epoch FROM created_at) * 1000000)::bigint::text AS "createdUs" FROM seen_deliveries
          WHERE ($1 = '' OR integration = $1) AND ($2 = '' OR status = $2) AND ($3 = '' OR tag = $3)
            AND ($4::timestamptz IS NULL OR created_at >= $4) AND ($5::timestamptz IS NULL OR created_at < $5)
            AND ($6::bigint IS NULL OR (created_at, id) < ('epoch'::timestamptz + $6 * interval '1 microsecond', $7::uuid))
          ORDER BY created_at DESC, id DESC LIMIT $8`,
        [filter.integration, filter.status, filter.tag, filter.from ?? null, filter.to ?? null, after?.createdUs ?? null, after?.id ?? null, limit],
      );
      return rows;
    },

    /** Every attempt of one api delivery that Postgres keeps, oldest first. */
    async deliveryAttempts(id: string): Promise<DeliveryAttempt[]> {
      const { rows } = await pool.query<DeliveryAttempt>(
        `SELECT attempt, url, coalesce(http_status, 0) AS "httpStatus", response_body AS "responseBody", duration_ms AS "durationMs",
                error, outcome, attempted_at AS "attemptedAt"
           FROM seen_delivery_attempts WHERE delivery_id = $1 ORDER BY attempt`,
        [id],
      );
      return rows;
    },

    /**
     * Every topic an integration names: its retention, the messages it holds
     * and each consumer's lag (messages after its acknowledged position).
     */
    async topics(): Promise<TopicSummary[]> {
      const { rows } = await pool.query<TopicSummary>(
        `SELECT t.topic, t.integrations, t."retentionSeconds"::float8 AS "retentionSeconds",
                m.messages::float8 AS messages, m.oldest AS "oldestAt", m.newest AS "newestAt",
                coalesce((SELECT json_agg(json_build_object('name', c.consumer, 'ackedAt', c.updated_at,
                                  'lagMessages', l.lag, 'oldestUnackedAt', l.oldest) ORDER BY c.consumer)
                            FROM seen_topic_consumers c
                            CROSS JOIN LATERAL (SELECT count(*)::float8 AS lag, min(created_at) AS oldest FROM seen_topic_messages x
                                                 WHERE x.topic = c.topic AND (x.tx_id, x.seq) > (c.acked_tx_id, c.acked_seq)) l
                           WHERE c.topic = t.topic), '[]') AS consumers
           FROM (SELECT topic, array_agg(name ORDER BY name) AS integrations, max(topic_retention_seconds) AS "retentionSeconds"
                   FROM seen_integrations WHERE kind = 'topic' GROUP BY topic) t
           CROSS JOIN LATERAL (SELECT count(*) AS messages, min(created_at) AS oldest, max(created_at) AS newest
                                 FROM seen_topic_messages WHERE topic = t.topic) m
          ORDER BY t.topic`,
      );
      return rows;
    },

    /** Api deliveries by id; ids that name none are left out. */
    async deliverySummaries(ids: readonly string[]): Promise<DeliverySummary[]> {
      const { rows } = await pool.query<DeliverySummary>(`SELECT ${SUMMARY} FROM seen_deliveries WHERE id = ANY($1::uuid[])`, [ids]);
      return rows;
    },

    /** Pending api deliveries per integration, and the age of the oldest, for metrics. */
    async backlog(): Promise<{ integration: string; pending: number; oldestSeconds: number }[]> {
      const { rows } = await pool.query<{ integration: string; pending: number; oldestSeconds: number }>(
        `SELECT integration, count(*)::int AS pending, extract(epoch FROM now() - min(created_at))::float8 AS "oldestSeconds"
           FROM seen_deliveries WHERE status = 'pending' GROUP BY integration`,
      );
      return rows;
    },

    /** Loads api deliveries with their integration's current settings. */
    async deliveries(ids: readonly string[]): Promise<DeliveryRow[]> {
      const { rows } = await pool.query<DeliveryRow>({
        name: "seen-deliveries",
        text: `SELECT d.id::text AS id, d.integration, d.tag, d.item_id AS "itemId", d.body, d.status, d.attempts,
                d.attempt_base AS "attemptBase", d.give_up_at AS "giveUpAt",
                i.enabled, i.kind, i.url, i.timeout_ms AS "timeoutMs", i.max_attempts AS "maxAttempts",
                i.initial_backoff_ms AS "initialBackoffMs", i.max_backoff_ms AS "maxBackoffMs"
           FROM seen_deliveries d LEFT JOIN seen_integrations i ON i.name = d.integration
          WHERE d.id = ANY($1::uuid[])`,
        values: [ids],
      });
      return rows;
    },

    /**
     * Replays a dead delivery whose last job was redriven from the dead-letter
     * queue: a new round of attempts. False when it is no longer that job's.
     */
    async replayDeadLetter(id: string, attempts: number): Promise<boolean> {
      const { rowCount } = await pool.query(
        `UPDATE seen_deliveries SET status = 'pending', attempt_base = attempts, finished_at = NULL
          WHERE id = $1 AND status = 'dead' AND attempts = $2`,
        [id, attempts],
      );
      return (rowCount ?? 0) > 0;
    },

    async cancel(id: string, attempts: number, reason: string): Promise<boolean> {
      const { rowCount } = await pool.query(
        `UPDATE seen_deliveries SET status = 'cancelled', last_error = $3, finished_at = now()
          WHERE id = $1 AND (status = 'pending') IS TRUE AND attempts = $2`,
        [id, attempts, reason],
      );
      return (rowCount ?? 0) > 0;
    },

    /**
     * Records attempts of one group commit, moves their deliveries on and
     * appends the analytics rows (`lines`, one JSON object per attempt) of
     * those recorded to the `seen_delivery_attempts` stream, with one
     * statement: in `tx` if given, else committing by itself (see
     * `DeliveryStore.recordAttempts` in core/delivery, also for why the status
     * test reads `(…) IS TRUE`). Returns whether each attempt was recorded.
     */
    async recordAttempts(attempts: readonly Attempt<DeliveryRow>[], lines: readonly string[], tx?: pg.PoolClient): Promise<boolean[]> {
      const { rows } = await (tx ?? pool).query<{ n: number }>({
        name: "seen-record-attempts",
        text: `WITH input AS (
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
           ${appendFrom(`SELECT $3::text, count(*)::int, string_agg(line, E'\n' ORDER BY n) FROM moved HAVING count(*) > 0`)}
         )
         SELECT n FROM moved`,
        values: [
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
          ATTEMPTS_STREAM,
        ],
      });
      const recorded = new Set(rows.map((row) => row.n));
      return attempts.map((_, n) => recorded.has(n));
    },

    /**
     * Up to `limit` messages of a topic after `after`, only from transactions
     * older than every running one: a transaction still open could otherwise
     * commit a message behind the position a consumer already passed.
     */
    async readTopic(topic: string, after: Position, limit: number): Promise<TopicMessageRow[]> {
      const { rows } = await pool.query<TopicMessageRow>(
        `SELECT tx_id::text AS "txId", seq::text AS seq, message_id::text AS "messageId", tag, item_id AS "itemId",
                kind, identity, seen_at AS "seenAt"
           FROM seen_topic_messages
          WHERE topic = $1 AND (tx_id, seq) > ($2::xid8, $3::bigint)
            AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
          ORDER BY tx_id, seq
          LIMIT $4`,
        [topic, after.txId, after.seq, limit],
      );
      return rows;
    },

    async position(topic: string, consumer: string): Promise<Position | undefined> {
      const { rows } = await pool.query<Position>(
        `SELECT acked_tx_id::text AS "txId", acked_seq::text AS seq FROM seen_topic_consumers WHERE topic = $1 AND consumer = $2`,
        [topic, consumer],
      );
      return rows[0];
    },

    /** Moves the consumer's position forward to `to` (never back); returns the position now. */
    async ack(topic: string, consumer: string, to: Position): Promise<Position> {
      const { rows } = await pool.query<Position>(
        `INSERT INTO seen_topic_consumers AS c (topic, consumer, acked_tx_id, acked_seq) VALUES ($1, $2, $3::xid8, $4::bigint)
         ON CONFLICT (topic, consumer) DO UPDATE
           SET acked_tx_id = EXCLUDED.acked_tx_id, acked_seq = EXCLUDED.acked_seq, updated_at = now()
           WHERE (c.acked_tx_id, c.acked_seq) < (EXCLUDED.acked_tx_id, EXCLUDED.acked_seq)
         RETURNING acked_tx_id::text AS "txId", acked_seq::text AS seq`,
        [topic, consumer, to.txId, to.seq],
      );
      return rows[0] ?? (await this.position(topic, consumer)) ?? to;
    },

    /** Deletes up to `limit` marks past their tag's retention; returns how many. */
    async deleteExpiredMarks(defaultRetentionSeconds: number, limit: number): Promise<number> {
      const { rowCount } = await pool.query(
        `DELETE FROM seen_marks WHERE id IN (
           SELECT m.id FROM seen_marks m LEFT JOIN seen_tags t ON t.tag = m.tag
            WHERE m.first_seen_at <= now() - COALESCE(t.retention_seconds, $1::bigint) * interval '1 second'
            LIMIT $2)`,
        [defaultRetentionSeconds, limit],
      );
      return rowCount ?? 0;
    },

    /**
     * Deletes up to `limit` topic messages past their topic's retention (the
     * longest among the integrations naming it; `defaultSeconds` for a topic
     * no integration names any more).
     */
    async deleteExpiredTopicMessages(defaultSeconds: number, limit: number): Promise<number> {
      const { rowCount } = await pool.query(
        `DELETE FROM seen_topic_messages WHERE (topic, tx_id, seq) IN (
           SELECT m.topic, m.tx_id, m.seq FROM seen_topic_messages m
             LEFT JOIN (SELECT topic, max(topic_retention_seconds) AS seconds FROM seen_integrations WHERE kind = 'topic' GROUP BY topic) r
               ON r.topic = m.topic
            WHERE m.created_at <= now() - COALESCE(r.seconds, $1::bigint) * interval '1 second'
            LIMIT $2)`,
        [defaultSeconds, limit],
      );
      return rowCount ?? 0;
    },

    /** Deletes up to `limit` finished api deliveries (and their attempts) finished before `before`. */
    async deleteFinishedDeliveries(before: Date, limit: number): Promise<number> {
      const { rowCount } = await pool.query(
        `WITH gone AS (
           DELETE FROM seen_deliveries WHERE id IN (
             SELECT id FROM seen_deliveries WHERE finished_at IS NOT NULL AND finished_at < $1 LIMIT $2)
           RETURNING id
         ), attempts AS (
           DELETE FROM seen_delivery_attempts WHERE delivery_id IN (SELECT id FROM gone)
         )
         SELECT 1 FROM gone`,
        [before, limit],
      );
      return rowCount ?? 0;
    },
  };
}

export type SeenRepository = ReturnType<typeof createSeenRepository>;
