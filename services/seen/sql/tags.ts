import type pg from "pg";

/** A tag's own retention (`seen_tags`); tags without one keep marks for the default. */
export interface TagRetention {
  readonly tag: string;
  readonly retentionSeconds: number;
  readonly updatedAt: Date;
}

/** Retention of `tag` in seconds as an SQL expression: its own, or the default (parameter `defaultParam`). */
export const retentionOf = (tagSql: string, defaultParam: string): string =>
  `COALESCE((SELECT t.retention_seconds FROM seen_tags t WHERE t.tag = ${tagSql}), ${defaultParam}::bigint)`;

const TAG_COLUMNS = `tag, retention_seconds AS "retentionSeconds", updated_at AS "updatedAt"`;

const SET_TAG_RETENTION = `INSERT INTO seen_tags (tag, retention_seconds) VALUES ($1, $2)
  ON CONFLICT (tag) DO UPDATE SET retention_seconds = EXCLUDED.retention_seconds, updated_at = now()
  RETURNING ${TAG_COLUMNS}`;

const LIST_TAGS = `SELECT ${TAG_COLUMNS} FROM seen_tags ORDER BY tag`;

/** `retention_seconds` is a bigint, which pg returns as text. */
type TagRecord = Omit<TagRetention, "retentionSeconds"> & { retentionSeconds: string };

const toTagRetention = (row: TagRecord): TagRetention => ({ ...row, retentionSeconds: Number(row.retentionSeconds) });

/** Sets the tag's retention (inserting the tag or replacing its retention). */
export async function setTagRetention(db: pg.Pool, tag: string, seconds: number): Promise<TagRetention> {
  const { rows } = await db.query<TagRecord>(SET_TAG_RETENTION, [tag, seconds]);
  return toTagRetention(rows[0]!);
}

/** Every tag with a retention of its own, by name. */
export async function listTags(db: pg.Pool): Promise<TagRetention[]> {
  const { rows } = await db.query<TagRecord>(LIST_TAGS);
  return rows.map(toTagRetention);
}
