import type pg from "pg";

// Each statement deletes at most $2 rows of its table (the caller's batch).

/** Marks past their tag's retention ($1: the default retention in seconds). */
const DELETE_EXPIRED_MARKS = `DELETE FROM seen_marks WHERE id IN (
    SELECT m.id FROM seen_marks m LEFT JOIN seen_tags t ON t.tag = m.tag
     WHERE m.first_seen_at <= now() - COALESCE(t.retention_seconds, $1::bigint) * interval '1 second'
     LIMIT $2)`;

/**
 * Topic messages past their topic's retention: the longest among the
 * integrations naming it, $1 seconds for a topic no integration names any more.
 */
const DELETE_EXPIRED_TOPIC_MESSAGES = `DELETE FROM seen_topic_messages WHERE (topic, tx_id, seq) IN (
    SELECT m.topic, m.tx_id, m.seq FROM seen_topic_messages m
      LEFT JOIN (SELECT topic, max(topic_retention_seconds) AS seconds FROM seen_integrations WHERE kind = 'topic' GROUP BY topic) r
        ON r.topic = m.topic
     WHERE m.created_at <= now() - COALESCE(r.seconds, $1::bigint) * interval '1 second'
     LIMIT $2)`;

/** Api deliveries finished before $1, with their attempts; a row per delivery deleted. */
const DELETE_FINISHED_DELIVERIES = `WITH gone AS (
    DELETE FROM seen_deliveries WHERE id IN (
      SELECT id FROM seen_deliveries WHERE finished_at IS NOT NULL AND finished_at < $1 LIMIT $2)
    RETURNING id
  ), attempts AS (
    DELETE FROM seen_delivery_attempts WHERE delivery_id IN (SELECT id FROM gone)
  )
  SELECT 1 FROM gone`;

const deleted = async (db: pg.Pool, text: string, values: unknown[]): Promise<number> => (await db.query(text, values)).rowCount ?? 0;

/** Deletes up to `limit` marks past their tag's retention; returns how many. */
export const deleteExpiredMarks = (db: pg.Pool, defaultRetentionSeconds: number, limit: number): Promise<number> =>
  deleted(db, DELETE_EXPIRED_MARKS, [defaultRetentionSeconds, limit]);

/** Deletes up to `limit` topic messages past their topic's retention (`defaultSeconds` where no integration names it); returns how many. */
export const deleteExpiredTopicMessages = (db: pg.Pool, defaultSeconds: number, limit: number): Promise<number> =>
  deleted(db, DELETE_EXPIRED_TOPIC_MESSAGES, [defaultSeconds, limit]);

/** Deletes up to `limit` finished api deliveries (and their attempts) finished before `before`; returns how many. */
export const deleteFinishedDeliveries = (db: pg.Pool, before: Date, limit: number): Promise<number> =>
  deleted(db, DELETE_FINISHED_DELIVERIES, [before, limit]);
