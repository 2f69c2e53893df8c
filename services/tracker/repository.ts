import type pg from "pg";

/** A row of `trackers`. */
export interface TrackerRow {
  readonly uuid: string;
  readonly value: string;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

const COLUMNS = `uuid::text AS uuid, value, created_at AS "createdAt", updated_at AS "updatedAt"`;

/** The tracker SQL, in one place. */
export function createTrackerRepository(pool: pg.Pool) {
  return {
    async insert(uuid: string, value: string): Promise<TrackerRow> {
      const { rows } = await pool.query<TrackerRow>(`INSERT INTO trackers (uuid, value) VALUES ($1, $2) RETURNING ${COLUMNS}`, [uuid, value]);
      return rows[0]!;
    },

    async get(uuid: string): Promise<TrackerRow | undefined> {
      const { rows } = await pool.query<TrackerRow>(`SELECT ${COLUMNS} FROM trackers WHERE uuid = $1`, [uuid]);
      return rows[0];
    },

    /** The trackers among `uuids` (for a batch of cache misses). */
    async getMany(uuids: readonly string[]): Promise<TrackerRow[]> {
      const { rows } = await pool.query<TrackerRow>(`SELECT ${COLUMNS} FROM trackers WHERE uuid = ANY($1::uuid[])`, [uuids]);
      return rows;
    },

    /** Every tracker, for the in-process cache. */
    async all(): Promise<TrackerRow[]> {
      const { rows } = await pool.query<TrackerRow>(`SELECT ${COLUMNS} FROM trackers`);
      return rows;
    },

    /**
     * A page in creation order, after the tracker `afterUuid` (the last of the
     * previous page). Trackers are never deleted, so that row is always there
     * to resume from, at full timestamp precision.
     */
    async page(size: number, afterUuid: string | undefined): Promise<TrackerRow[]> {
      const { rows } =
        afterUuid === undefined
          ? await pool.query<TrackerRow>(`SELECT ${COLUMNS} FROM trackers ORDER BY created_at, uuid LIMIT $1`, [size])
          : await pool.query<TrackerRow>(
              `SELECT ${COLUMNS} FROM trackers
                WHERE (created_at, uuid) > (SELECT created_at, uuid FROM trackers WHERE uuid = $2)
                ORDER BY created_at, uuid LIMIT $1`,
              [size, afterUuid],
            );
      return rows;
    },

    async updateValue(uuid: string, value: string): Promise<TrackerRow | undefined> {
      const { rows } = await pool.query<TrackerRow>(
        `UPDATE trackers SET value = $2, updated_at = clock_timestamp() WHERE uuid = $1 RETURNING ${COLUMNS}`,
        [uuid, value],
      );
      return rows[0];
    },
  };
}

export type TrackerRepository = ReturnType<typeof createTrackerRepository>;
