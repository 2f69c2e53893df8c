import type pg from "pg";
import type { IdentityKind } from "../identity.js";
import { retentionOf } from "./tags.js";
import { TOPICS_CHANNEL } from "./topics.js";

/** A mark to store, one of a group commit. */
export interface MarkInput {
  readonly identityKey: string;
  readonly tag: string;
  readonly itemId: string;
  readonly kind: IdentityKind;
  /** The identity's delivered ids. */
  readonly identity: Record<string, unknown>;
  readonly now: Date;
}

/** A mark stored (or found) by {@link markMany}. */
export interface MarkResult {
  readonly created: boolean;
  readonly firstSeenAt: Date;
  /** Api deliveries created with the mark (none when it already existed). */
  readonly deliveryIds: readonly string[];
}

/** A retained mark as `ListSeen` shows it. */
export interface ListedMark {
  readonly tag: string;
  readonly itemId: string;
  readonly firstSeenAt: Date;
  readonly expiresAt: Date;
  readonly id: string;
}

/**
 * The api request body of mark `c`, one format per identity kind: `kind`,
 * `tag`, `id`, `seen_at` (ISO 8601, UTC, ms) and the kind's ids (see
 * `deliveredIdentity`). `delivery_id` is added when sent.
 */
const DELIVERY_BODY = `jsonb_build_object('kind', c.kind, 'tag', c.tag, 'id', c.item_id,
                         'seen_at', to_char(c.first_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')) || c.identity`;

/**
 * Stores a group's marks ($1, a JSON array; $2 the default retention) in key
 * order and, for each new or renewed mark, its api deliveries and topic
 * messages, with one NOTIFY per topic. A mark past its tag's retention but not
 * yet cleaned up is renewed as new; a retained one is left alone and not
 * returned.
 */
const MARK_MANY = `WITH input AS (
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
         (SELECT count(*) FROM notified) AS notified`;

/** The stored marks among the keys ($1, $2, $3: identity keys, tags, item ids). */
const STORED_MARKS = `SELECT m.identity_key, m.tag, m.item_id, m.first_seen_at
  FROM unnest($1::text[], $2::text[], $3::text[]) AS k(identity_key, tag, item_id)
  JOIN seen_marks m USING (identity_key, tag, item_id)`;

/** Whether the mark of tag $2 is retained, $4 being the default retention. */
const RETAINED = `first_seen_at > now() - ${retentionOf("$2", "$4")} * interval '1 second'`;

const FIRST_SEEN = `SELECT first_seen_at FROM seen_marks
  WHERE identity_key = $1 AND tag = $2 AND item_id = $3 AND ${RETAINED}`;

const LOOKUP_MARKS = `SELECT item_id AS "itemId", first_seen_at AS "firstSeenAt" FROM seen_marks
  WHERE identity_key = $1 AND tag = $2 AND item_id = ANY($3::text[]) AND ${RETAINED}
  ORDER BY first_seen_at, item_id`;

/** A page of one identity's retained marks ($2 tag, $3 since, ($4, $5) after; each optional), oldest first. */
const LIST_MARKS = `SELECT m.id::text AS id, m.tag, m.item_id AS "itemId", m.first_seen_at AS "firstSeenAt",
         m.first_seen_at + COALESCE(t.retention_seconds, $6::bigint) * interval '1 second' AS "expiresAt"
    FROM seen_marks m LEFT JOIN seen_tags t ON t.tag = m.tag
   WHERE m.identity_key = $1
     AND ($2::text IS NULL OR m.tag = $2)
     AND ($3::timestamptz IS NULL OR m.first_seen_at >= $3)
     AND ($4::timestamptz IS NULL OR (m.first_seen_at, m.id) > ($4, $5::uuid))
     AND m.first_seen_at > now() - COALESCE(t.retention_seconds, $6::bigint) * interval '1 second'
   ORDER BY m.first_seen_at, m.id
   LIMIT $7`;

/**
 * Stores the marks of one group commit in `tx` with {@link MARK_MANY}, then
 * reads the retained ones among them. The same (identity, tag, id) twice in
 * `inputs` is stored once: the first creates it, the others find it. Marks
 * are inserted in key order, so two groups sharing keys lock them in the same
 * order and one waits for the other instead of deadlocking; concurrent
 * duplicates serialize on the unique key. The statement's results are matched
 * to the inputs here, by key, not joined in SQL, where the planner would loop
 * over every pair. Returns one result per input.
 */
export async function markMany(tx: pg.ClientBase, inputs: readonly MarkInput[], defaultRetentionSeconds: number): Promise<MarkResult[]> {
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
    text: MARK_MANY,
    values: [
      JSON.stringify(unique.map((input) => ({ identity_key: input.identityKey, tag: input.tag, item_id: input.itemId, kind: input.kind, identity: input.identity, at: input.now }))),
      defaultRetentionSeconds,
    ],
  });
  const created = new Map((rows[0]?.marks ?? []).map((row) => [keyOf(row.identity_key, row.tag, row.item_id), { id: row.id, firstSeenAt: new Date(row.first_seen_at) }]));
  const deliveries = new Map<string, string[]>();
  for (const delivery of rows[0]?.deliveries ?? []) deliveries.set(delivery.mark_id, [...(deliveries.get(delivery.mark_id) ?? []), delivery.id]);

  // Retained already. A new statement sees duplicates committed meanwhile by other groups.
  const found = unique.filter((input) => !created.has(keyOf(input.identityKey, input.tag, input.itemId)));
  const existing = new Map<string, Date>();
  if (found.length > 0) {
    const { rows } = await tx.query<{ identity_key: string; tag: string; item_id: string; first_seen_at: Date }>(STORED_MARKS, [
      found.map((input) => input.identityKey),
      found.map((input) => input.tag),
      found.map((input) => input.itemId),
    ]);
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
}

/** When the key first saw (tag, id), if the mark is retained. */
export async function firstSeen(db: pg.Pool, identityKey: string, tag: string, itemId: string, defaultRetentionSeconds: number): Promise<Date | undefined> {
  const { rows } = await db.query<{ first_seen_at: Date }>(FIRST_SEEN, [identityKey, tag, itemId, defaultRetentionSeconds]);
  return rows[0]?.first_seen_at;
}

/** The retained ones among `itemIds`. */
export async function lookupMarks(
  db: pg.Pool,
  identityKey: string,
  tag: string,
  itemIds: readonly string[],
  defaultRetentionSeconds: number,
): Promise<{ itemId: string; firstSeenAt: Date }[]> {
  const { rows } = await db.query<{ itemId: string; firstSeenAt: Date }>(LOOKUP_MARKS, [identityKey, tag, itemIds, defaultRetentionSeconds]);
  return rows;
}

/** A page of the key's retained marks, oldest first, after the mark `after` (by (first_seen_at, id)). */
export async function listMarks(
  db: pg.Pool,
  identityKey: string,
  filter: { tag: string | undefined; since: Date | undefined; after: { at: Date; id: string } | undefined },
  limit: number,
  defaultRetentionSeconds: number,
): Promise<ListedMark[]> {
  const { rows } = await db.query<ListedMark>(LIST_MARKS, [
    identityKey,
    filter.tag ?? null,
    filter.since ?? null,
    filter.after?.at ?? null,
    filter.after?.id ?? null,
    defaultRetentionSeconds,
    limit,
  ]);
  return rows;
}
