import type pg from "pg";
import type { IdentityKind } from "../identity.js";

/** The NOTIFY channel of topic feeds; the payload is the topic. */
export const TOPICS_CHANNEL = "funnel_seen_topics";

/** A topic position: the (transaction id, sequence) of the last message taken. */
export interface Position {
  readonly txId: string;
  readonly seq: string;
}

/** Before the first message of every topic. */
export const START: Position = { txId: "0", seq: "0" };

/** A stored topic message; its position is its (txId, seq). */
export interface TopicMessageRow extends Position {
  readonly messageId: string;
  readonly tag: string;
  readonly itemId: string;
  readonly kind: IdentityKind;
  readonly identity: Record<string, unknown>;
  readonly seenAt: Date;
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

const TOPIC_EXISTS = "SELECT 1 FROM seen_integrations WHERE kind = 'topic' AND topic = $1 LIMIT 1";

/**
 * Up to $4 messages of topic $1 after position ($2, $3), only from
 * transactions older than every running one: a transaction still open could
 * otherwise commit a message behind the position a consumer already passed.
 */
const READ_TOPIC = `SELECT tx_id::text AS "txId", seq::text AS seq, message_id::text AS "messageId", tag, item_id AS "itemId",
         kind, identity, seen_at AS "seenAt"
    FROM seen_topic_messages
   WHERE topic = $1 AND (tx_id, seq) > ($2::xid8, $3::bigint)
     AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
   ORDER BY tx_id, seq
   LIMIT $4`;

const POSITION = `SELECT acked_tx_id::text AS "txId", acked_seq::text AS seq FROM seen_topic_consumers WHERE topic = $1 AND consumer = $2`;

/** Moves consumer $2 of topic $1 forward to ($3, $4), never back; returns a row only when it moved. */
const ACK = `INSERT INTO seen_topic_consumers AS c (topic, consumer, acked_tx_id, acked_seq) VALUES ($1, $2, $3::xid8, $4::bigint)
  ON CONFLICT (topic, consumer) DO UPDATE
    SET acked_tx_id = EXCLUDED.acked_tx_id, acked_seq = EXCLUDED.acked_seq, updated_at = now()
    WHERE (c.acked_tx_id, c.acked_seq) < (EXCLUDED.acked_tx_id, EXCLUDED.acked_seq)
  RETURNING acked_tx_id::text AS "txId", acked_seq::text AS seq`;

/**
 * Every topic an integration names: its retention (the longest among them),
 * the messages it holds and each consumer's lag (messages after its
 * acknowledged position).
 */
const LIST_TOPICS = `SELECT t.topic, t.integrations, t."retentionSeconds"::float8 AS "retentionSeconds",
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
   ORDER BY t.topic`;

/** Whether any integration names the topic. */
export async function topicExists(db: pg.Pool, topic: string): Promise<boolean> {
  const { rows } = await db.query(TOPIC_EXISTS, [topic]);
  return rows.length > 0;
}

/** Up to `limit` committed messages of `topic` after `after` (see {@link READ_TOPIC}). */
export async function readTopic(db: pg.Pool, topic: string, after: Position, limit: number): Promise<TopicMessageRow[]> {
  const { rows } = await db.query<TopicMessageRow>(READ_TOPIC, [topic, after.txId, after.seq, limit]);
  return rows;
}

/** The consumer's acknowledged position; undefined before its first ack. */
export async function consumerPosition(db: pg.Pool, topic: string, consumer: string): Promise<Position | undefined> {
  const { rows } = await db.query<Position>(POSITION, [topic, consumer]);
  return rows[0];
}

/** Moves the consumer's position forward to `to` (never back); returns the position now. */
export async function ack(db: pg.Pool, topic: string, consumer: string, to: Position): Promise<Position> {
  const { rows } = await db.query<Position>(ACK, [topic, consumer, to.txId, to.seq]);
  return rows[0] ?? (await consumerPosition(db, topic, consumer)) ?? to;
}

/** Every topic with its messages and consumers, by name. */
export async function listTopics(db: pg.Pool): Promise<TopicSummary[]> {
  const { rows } = await db.query<TopicSummary>(LIST_TOPICS);
  return rows;
}
