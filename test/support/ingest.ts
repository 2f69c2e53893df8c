import { eventually } from "./stores.js";
import type { App } from "../../services/app.js";

/** A Connect JSON call as a browser makes it: status and parsed body. */
export async function callIngest(
  app: App,
  method: "Send" | "SendBatch" | "GetQuality",
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(`${app.url}/funnel.ingest.v1.IngestService/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

/** Rows of a ClickHouse table matching `where` (plain SQL over the table's columns). */
export async function clickhouseRows(app: App, table: string, where = "1"): Promise<Record<string, unknown>[]> {
  const result = await app.clickhouse.client.query({
    query: `SELECT * EXCEPT inserted_at FROM ${app.clickhouse.database}.${table} WHERE ${where} ORDER BY timestamp`,
    format: "JSONEachRow",
  });
  return result.json<Record<string, unknown>>();
}

/** Waits until the analytics stream has moved every row to ClickHouse (the running streamer's batch included). */
export async function drained(app: App): Promise<void> {
  await eventually(async () => {
    const { rows } = await app.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM analytics_outbox");
    return rows[0]?.n === 0 ? true : undefined;
  }, 15_000, "the analytics stream to drain");
}
