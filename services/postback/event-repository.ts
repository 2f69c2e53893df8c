import type pg from "pg";
import type { EventName } from "./partner.js";

/** Ledger codes of the events that happen once per stag. */
const LEDGER_CODE: Readonly<Record<EventName, string>> = { download: "d", install: "i", authorization: "a" };

/**
 * Stores downloads, one per stag and element of the arrays $1–$4, keeping a
 * stored one that occurred later. In stag order, so that concurrent groups
 * lock the rows they share in the same order. Prepared: it runs for every group.
 */
const STORE_DOWNLOADS = {
  name: "postback-store-downloads",
  text: `INSERT INTO postback_downloads AS d (stag, params, occurred_at, expires_at)
         SELECT * FROM unnest($1::text[], $2::jsonb[], $3::timestamptz[], $4::timestamptz[]) AS x(stag, params, occurred_at, expires_at)
          ORDER BY stag
         ON CONFLICT (stag) DO UPDATE SET params = EXCLUDED.params, occurred_at = EXCLUDED.occurred_at, expires_at = EXCLUDED.expires_at
          WHERE d.occurred_at <= EXCLUDED.occurred_at`,
};

/**
 * Claims once-only events, one per distinct (stag $1, ledger code $2) at time
 * $3, in key order (so that concurrent groups wait for each other's keys in
 * one order and never deadlock on them). Returns the claims that were new, an
 * install's or authorization's with the parameters of its stag's stored
 * download if that download's window covers the event. A key claimed by a
 * transaction still open waits for it: committed, it is a repeat; rolled
 * back, the claim is ours. The download is read as the statement began, so
 * downloads stored earlier in the same transaction count.
 */
const CLAIM = {
  name: "postback-claim",
  text: `WITH input AS (
           SELECT * FROM unnest($1::text[], $2::"char"[], $3::timestamptz[]) AS x(stag, event, at)
         ),
         claimed AS (
           INSERT INTO postback_ledger (stag, event)
           SELECT stag, event FROM input ORDER BY stag, event
           ON CONFLICT DO NOTHING
           RETURNING stag, event
         )
         SELECT c.stag, c.event::text AS event, d.params
           FROM claimed c JOIN input i USING (stag, event)
           LEFT JOIN postback_downloads d ON c.event <> 'd' AND d.stag = c.stag AND d.expires_at >= i.at`,
};

const DELETE_EXPIRED_DOWNLOADS = "DELETE FROM postback_downloads WHERE stag IN (SELECT stag FROM postback_downloads WHERE expires_at < now() LIMIT $1)";

/** A download to store until `expiresAt`. */
export interface NewDownload {
  readonly stag: string;
  readonly params: Readonly<Record<string, string>>;
  readonly occurredAt: Date;
  readonly expiresAt: Date;
}

/** A once-only event to claim in the ledger. */
export interface Claim {
  readonly stag: string;
  readonly event: EventName;
  /** When it occurred: a stored download counts for an install or authorization if its window covers this. */
  readonly at: Date;
}

/** A claim's answer: `false` when the stag had the event already; else the stored download's parameters, if any. */
export type Claimed = false | { readonly download: Record<string, string> | undefined };

const keyOf = (stag: string, code: string): string => `${code}${stag}`;

/** The statements on funnel events: the once-per-click ledger (`postback_ledger`) and stored downloads (`postback_downloads`). */
export function createEventRepository(pool: pg.Pool) {
  return {

    /** Stores downloads in the caller's transaction; of a stag's, the latest wins (of equal times, the last listed). */
    async storeDownloads(tx: pg.ClientBase, downloads: readonly NewDownload[]): Promise<void> {
      const latest = new Map<string, NewDownload>();
      for (const download of downloads) {
        const stored = latest.get(download.stag);
        if (stored === undefined || stored.occurredAt <= download.occurredAt) latest.set(download.stag, download);
      }
      if (latest.size === 0) return;
      const rows = [...latest.values()];
      await tx.query({
        ...STORE_DOWNLOADS,
        values: [rows.map((d) => d.stag), rows.map((d) => JSON.stringify(d.params)), rows.map((d) => d.occurredAt), rows.map((d) => d.expiresAt)],
      });
    },

    /**
     * Writes the ledger rows of once-only events in the caller's
     * transaction; one answer per claim, in order. Of claims repeated in the
     * list only the first can be new.
     */
    async claim(tx: pg.ClientBase, claims: readonly Claim[]): Promise<Claimed[]> {
      const keys = claims.map((claim) => keyOf(claim.stag, LEDGER_CODE[claim.event]));
      const firstOf = new Map<string, number>();
      keys.forEach((key, i) => {
        if (!firstOf.has(key)) firstOf.set(key, i);
      });
      if (firstOf.size === 0) return [];
      const unique = [...firstOf.values()].map((i) => claims[i]!);
      const { rows } = await tx.query<{ stag: string; event: string; params: Record<string, string> | null }>({
        ...CLAIM,
        values: [unique.map((c) => c.stag), unique.map((c) => LEDGER_CODE[c.event]), unique.map((c) => c.at)],
      });
      const claimed = new Map(rows.map((row) => [keyOf(row.stag, row.event), row.params ?? undefined]));
      return keys.map((key, i) => (firstOf.get(key) === i && claimed.has(key) ? { download: claimed.get(key) } : false));
    },

    /** Deletes up to `batch` downloads whose attribution window has passed. */
    async deleteExpiredDownloads(batch: number): Promise<number> {
      const { rowCount } = await pool.query(DELETE_EXPIRED_DOWNLOADS, [batch]);
      return rowCount ?? 0;
    },
  };
}

export type EventRepository = ReturnType<typeof createEventRepository>;
