import type pg from "pg";
import type { PartnerConfig, StoredPartner } from "./partner.js";

/** A row of `postback_partners`: the validated configuration minus its columns, in `config`. */
interface PartnerRecord {
  id: string;
  name: string;
  enabled: boolean;
  config: Omit<PartnerConfig, "id" | "name" | "enabled">;
  created_at: Date;
  updated_at: Date;
}

const PARTNER_COLUMNS = "id, name, enabled, config, created_at, updated_at";

const LIST_PARTNERS = `SELECT ${PARTNER_COLUMNS} FROM postback_partners ORDER BY id`;

/** $1: an ILIKE pattern ('%%' for all), $2: enabled or null for both. */
const SEARCH_WHERE = "($1 = '%%' OR id ILIKE $1 OR name ILIKE $1) AND ($2::boolean IS NULL OR enabled = $2)";
/** $3: the last id of the previous page, $4: the page size. */
const SEARCH_PARTNERS = `SELECT ${PARTNER_COLUMNS} FROM postback_partners WHERE ${SEARCH_WHERE} AND id > $3 ORDER BY id LIMIT $4`;
const COUNT_PARTNERS = `SELECT count(*)::int AS total FROM postback_partners WHERE ${SEARCH_WHERE}`;

const PARTNERS_VERSION = "SELECT count(*) || ':' || coalesce(sum(hashtext(id || '/' || updated_at::text)), 0) AS version FROM postback_partners";

const GET_PARTNER = `SELECT ${PARTNER_COLUMNS} FROM postback_partners WHERE id = $1`;

const INSERT_PARTNER = `INSERT INTO postback_partners (id, name, enabled, config) VALUES ($1, $2, $3, $4)
  ON CONFLICT (id) DO NOTHING RETURNING ${PARTNER_COLUMNS}`;

const UPDATE_PARTNER = `UPDATE postback_partners SET name = $2, enabled = $3, config = $4, updated_at = now() WHERE id = $1 RETURNING ${PARTNER_COLUMNS}`;

const UPSERT_PARTNER = `INSERT INTO postback_partners (id, name, enabled, config) VALUES ($1, $2, $3, $4)
  ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, enabled = EXCLUDED.enabled, config = EXCLUDED.config, updated_at = now()`;

const DELETE_PARTNERS = "DELETE FROM postback_partners WHERE id = ANY($1) RETURNING id";

/** Conflicts with itself, not with reads: imports take turns while events keep reading partners. */
const LOCK_PARTNERS = "LOCK TABLE postback_partners IN SHARE ROW EXCLUSIVE MODE";

const toPartner = (row: PartnerRecord): StoredPartner => ({
  ...row.config,
  id: row.id,
  name: row.name,
  enabled: row.enabled,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

/** The parameters $1–$4 of {@link INSERT_PARTNER}, {@link UPDATE_PARTNER} and {@link UPSERT_PARTNER}. */
const partnerValues = (partner: PartnerConfig): unknown[] => {
  const { id, name, enabled, ...config } = partner;
  return [id, name, enabled, JSON.stringify(config)];
};

/** The statements on partners (`postback_partners`). */
export function createPartnerRepository(pool: pg.Pool) {
  return {

    async listPartners(db: pg.Pool | pg.ClientBase = pool): Promise<StoredPartner[]> {
      const { rows } = await db.query<PartnerRecord>(LIST_PARTNERS);
      return rows.map(toPartner);
    },

    /**
     * One page of partners by id after `after`, those whose id or name
     * contains `query` (any case) and, when set, with that `enabled`; with
     * the number of matches over every page.
     */
    async searchPartners(filter: { query: string; enabled?: boolean; after: string; limit: number }): Promise<{ partners: StoredPartner[]; total: number }> {
      const pattern = `%${filter.query.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      const [page, count] = await Promise.all([
        pool.query<PartnerRecord>(SEARCH_PARTNERS, [pattern, filter.enabled ?? null, filter.after, filter.limit]),
        pool.query<{ total: number }>(COUNT_PARTNERS, [pattern, filter.enabled ?? null]),
      ]);
      return { partners: page.rows.map(toPartner), total: count.rows[0]?.total ?? 0 };
    },

    /** Changes whenever a partner is added, changed or removed: their count and a sum of hashes of each id and update time. */
    async partnersVersion(): Promise<string> {
      const { rows } = await pool.query<{ version: string }>(PARTNERS_VERSION);
      return rows[0]?.version ?? "";
    },

    async getPartner(id: string): Promise<StoredPartner | undefined> {
      const { rows } = await pool.query<PartnerRecord>(GET_PARTNER, [id]);
      return rows[0] === undefined ? undefined : toPartner(rows[0]);
    },

    /** Inserts a partner; undefined when the id is taken. */
    async insertPartner(partner: PartnerConfig): Promise<StoredPartner | undefined> {
      const { rows } = await pool.query<PartnerRecord>(INSERT_PARTNER, partnerValues(partner));
      return rows[0] === undefined ? undefined : toPartner(rows[0]);
    },

    /** Replaces a partner's configuration; undefined when there is no such partner. */
    async updatePartner(partner: PartnerConfig): Promise<StoredPartner | undefined> {
      const { rows } = await pool.query<PartnerRecord>(UPDATE_PARTNER, partnerValues(partner));
      return rows[0] === undefined ? undefined : toPartner(rows[0]);
    },

    async upsertPartner(tx: pg.ClientBase, partner: PartnerConfig): Promise<void> {
      await tx.query(UPSERT_PARTNER, partnerValues(partner));
    },

    /** Deletes partners by id; returns the ids that existed. */
    async deletePartners(ids: readonly string[], db: pg.Pool | pg.ClientBase = pool): Promise<string[]> {
      const { rows } = await db.query<{ id: string }>(DELETE_PARTNERS, [ids]);
      return rows.map((row) => row.id);
    },

    /** Serialises imports: a second import waits for the first to commit. */
    async lockPartners(tx: pg.ClientBase): Promise<void> {
      await tx.query(LOCK_PARTNERS);
    },
  };
}

export type PartnerRepository = ReturnType<typeof createPartnerRepository>;
