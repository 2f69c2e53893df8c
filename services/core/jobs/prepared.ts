import { createHash } from "node:crypto";
import type { Db } from "pg-boss";

/** Anything that runs SQL: a pool, a pool client, or a client inside the caller's transaction. */
export interface Queryable {
  query(config: { readonly name?: string; readonly text: string; readonly values: unknown[] }): Promise<{ rows: unknown[] }>;
}

/**
 * pg-boss's way to run SQL on the caller's connection (its `db` option). A
 * statement with parameters runs as a prepared statement named after its
 * text: an insert's text is the same for every call to one queue, so each
 * connection parses and plans it once instead of on every call.
 */
export const executorOf = (tx: Queryable): Db => ({
  executeSql: (text: string, values: unknown[] = []) =>
    tx.query(values.length > 0 ? { name: statementName(text), text, values } : { text, values }),
});

/**
 * Makes pg-boss's own connections run its repeated statements (fetching,
 * completing, failing jobs) as prepared statements, so Postgres plans each
 * once per connection rather than on every call. A text is prepared from its
 * {@link PREPARE_FROM_USE}th use with parameters, up to {@link MAX_PREPARED}
 * texts per process: a text that differs every time is never prepared, and
 * one without parameters (which may hold several commands) runs as it is.
 *
 * pg-boss has no option for this, so the `executeSql` of the database it
 * returns from `getDb()` is wrapped. Its other way in, a `db` of our own in
 * its constructor, would replace its pool, and with it the dedicated LISTEN
 * connection and the transactions pg-boss builds on that pool.
 */
export function prepareRepeatedStatements(db: Db): void {
  // pg-boss's own Db takes a third argument (cancellation) beyond the declared two: passed through.
  type Execute = (text: unknown, values?: unknown[], ...rest: unknown[]) => Promise<{ rows: unknown[] }>;
  const target = db as unknown as { executeSql: Execute };
  const execute = target.executeSql.bind(db);
  /** Per text: its uses so far, or its statement name once prepared. */
  const texts = new Map<string, number | string>();
  let prepared = 0;
  const nameFor = (text: string): string | undefined => {
    const seen = texts.get(text) ?? 0;
    if (typeof seen === "string") return seen;
    if (seen + 1 >= PREPARE_FROM_USE && prepared < MAX_PREPARED) {
      prepared += 1;
      const name = statementName(text);
      texts.set(text, name);
      return name;
    }
    if (texts.size >= 10 * MAX_PREPARED) {
      // Counting one-off texts: start counting afresh, keeping the prepared ones.
      for (const [key, value] of texts) if (typeof value === "number") texts.delete(key);
    }
    texts.set(text, seen + 1);
    return undefined;
  };
  // pg-boss's own Db hands a query config ({ name, text, values }) to node-postgres as it is.
  target.executeSql = (text, values, ...rest) => {
    const name = typeof text === "string" && values !== undefined && values.length > 0 ? nameFor(text) : undefined;
    return name === undefined ? execute(text, values, ...rest) : execute({ name, text, values }, undefined, ...rest);
  };
}

/** The use of a pg-boss statement text from which it runs prepared. */
const PREPARE_FROM_USE = 3;
const MAX_PREPARED = 100;

/** A short name that differs for every statement text. */
const statementName = (text: string): string => `pgboss-${createHash("sha256").update(text).digest("base64url").slice(0, 22)}`;
