// Writes the ClickHouse migration for new event types:
// `npm run ingest:migration -- TYPE [TYPE…] [--page-view] [--dir DIR]`, or for
// a new envelope column on every event table: `--column NAME [--dir DIR]`.
import { readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { eventTypes, PAGE_VIEW_TABLE } from "./registry.js";
import { addColumnSql, migrationSql } from "./tables.js";

const defaultDir = fileURLToPath(new URL("../migrations/clickhouse/", import.meta.url));

/** The next free migration number in `dir`. */
async function nextNumber(dir: string): Promise<number> {
  const numbers = (await readdir(dir).catch(() => [])).map((file) => /^(\d+)_/.exec(file)?.[1]).filter((n) => n !== undefined).map(Number);
  return Math.max(0, ...numbers) + 1;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: { dir: { type: "string" }, column: { type: "string" }, help: { type: "boolean", short: "h" } },
    allowPositionals: true,
  });
  const names = positionals.filter((name) => name !== PAGE_VIEW_TABLE);
  if (values.help === true || (positionals.length === 0) === (values.column === undefined)) {
    console.error(`usage: npm run ingest:migration -- TYPE [TYPE…] [--dir DIR]
  writes DIR/NNNN_ingest_<type>.sql creating the ClickHouse table of each TYPE
  (a name registered in services/ingest/registry.ts; "${PAGE_VIEW_TABLE}" for the paired page views)
  known types: ${[...eventTypes.keys()].join(", ")}
       npm run ingest:migration -- --column NAME [--dir DIR]
  writes DIR/NNNN_ingest_<name>.sql adding the envelope column NAME (declared in
  services/ingest/tables.ts) to every event table`);
    process.exit(values.help === true ? 0 : 2);
  }
  if (values.column !== undefined) {
    const dir = values.dir ?? defaultDir;
    const file = join(dir, `${String(await nextNumber(dir)).padStart(4, "0")}_ingest_${values.column}.sql`);
    let sql: string;
    try {
      sql = addColumnSql([...eventTypes.values()], values.column);
    } catch (error) {
      console.error(`ingest:migration: ${(error as Error).message}`);
      process.exit(2);
    }
    await writeFile(file, sql, { flag: "wx" });
    console.log(file);
    return;
  }
  const unknown = names.filter((name) => !eventTypes.has(name));
  if (unknown.length > 0) {
    console.error(`ingest:migration: unknown event type ${unknown.join(", ")}: add its message to ingest.proto, run npm run generate, and register it in services/ingest/registry.ts`);
    process.exit(2);
  }
  const dir = values.dir ?? defaultDir;
  const number = String(await nextNumber(dir)).padStart(4, "0");
  const file = join(dir, `${number}_ingest_${positionals.length === 1 ? positionals[0] : "types"}.sql`);
  const types = names.map((name) => eventTypes.get(name)).filter((type) => type !== undefined);
  await writeFile(file, migrationSql(types, positionals.includes(PAGE_VIEW_TABLE)), { flag: "wx" });
  console.log(file);
}

await main();
