import type pg from "pg";
import type { Integration, IntegrationInput } from "../integration.js";

/** A row of `seen_integrations`: the api columns are set for api integrations, the topic ones for topic integrations. */
interface IntegrationRecord {
  name: string;
  tags: string[];
  enabled: boolean;
  kind: "api" | "topic";
  url: string | null;
  timeout_ms: number | null;
  max_attempts: number | null;
  initial_backoff_ms: number | null;
  max_backoff_ms: number | null;
  topic: string | null;
  topic_retention_seconds: string | null;
  created_at: Date;
  updated_at: Date;
}

/** Parameters $1 to $11 of {@link CREATE_INTEGRATION} and {@link UPDATE_INTEGRATION}, in column order. */
const COLUMNS = "name, tags, enabled, kind, url, timeout_ms, max_attempts, initial_backoff_ms, max_backoff_ms, topic, topic_retention_seconds";

/** Inserts an integration; no row when the name is taken. */
const CREATE_INTEGRATION = `INSERT INTO seen_integrations (${COLUMNS})
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
  ON CONFLICT (name) DO NOTHING RETURNING *`;

const UPDATE_INTEGRATION = `UPDATE seen_integrations
     SET tags = $2, enabled = $3, kind = $4, url = $5, timeout_ms = $6, max_attempts = $7,
         initial_backoff_ms = $8, max_backoff_ms = $9, topic = $10, topic_retention_seconds = $11, updated_at = now()
   WHERE name = $1 RETURNING *`;

const GET_INTEGRATION = "SELECT * FROM seen_integrations WHERE name = $1";

const LIST_INTEGRATIONS = "SELECT * FROM seen_integrations ORDER BY name";

const DELETE_INTEGRATION = "DELETE FROM seen_integrations WHERE name = $1";

function toIntegration(row: IntegrationRecord): Integration {
  const common = { name: row.name, tags: row.tags, enabled: row.enabled, createdAt: row.created_at, updatedAt: row.updated_at };
  if (row.kind === "api") {
    return {
      ...common,
      delivery: {
        kind: "api",
        api: {
          url: row.url ?? "",
          timeoutMs: row.timeout_ms ?? 0,
          maxAttempts: row.max_attempts ?? 0,
          initialBackoffMs: row.initial_backoff_ms ?? 0,
          maxBackoffMs: row.max_backoff_ms ?? 0,
        },
      },
    };
  }
  return { ...common, delivery: { kind: "topic", topic: { topic: row.topic ?? "", retentionMs: Number(row.topic_retention_seconds ?? 0) * 1000 } } };
}

/** The values of {@link COLUMNS}. */
function integrationValues(input: IntegrationInput): unknown[] {
  const api = input.delivery.kind === "api" ? input.delivery.api : undefined;
  const topic = input.delivery.kind === "topic" ? input.delivery.topic : undefined;
  return [
    input.name,
    input.tags,
    input.enabled,
    input.delivery.kind,
    api?.url ?? null,
    api?.timeoutMs ?? null,
    api?.maxAttempts ?? null,
    api?.initialBackoffMs ?? null,
    api?.maxBackoffMs ?? null,
    topic?.topic ?? null,
    topic === undefined ? null : Math.round(topic.retentionMs / 1000),
  ];
}

const first = (rows: readonly IntegrationRecord[]): Integration | undefined => (rows[0] === undefined ? undefined : toIntegration(rows[0]));

/** Inserts an integration; undefined when the name is taken. */
export async function createIntegration(db: pg.Pool, input: IntegrationInput): Promise<Integration | undefined> {
  return first((await db.query<IntegrationRecord>(CREATE_INTEGRATION, integrationValues(input))).rows);
}

/** Replaces an integration's settings; undefined when there is none. */
export async function updateIntegration(db: pg.Pool, input: IntegrationInput): Promise<Integration | undefined> {
  return first((await db.query<IntegrationRecord>(UPDATE_INTEGRATION, integrationValues(input))).rows);
}

export async function getIntegration(db: pg.Pool, name: string): Promise<Integration | undefined> {
  return first((await db.query<IntegrationRecord>(GET_INTEGRATION, [name])).rows);
}

/** Every integration, by name. */
export async function listIntegrations(db: pg.Pool): Promise<Integration[]> {
  return (await db.query<IntegrationRecord>(LIST_INTEGRATIONS)).rows.map(toIntegration);
}

/** Deletes an integration; false when there is none. Its api deliveries stay, and are cancelled when next tried. */
export async function deleteIntegration(db: pg.Pool, name: string): Promise<boolean> {
  const { rowCount } = await db.query(DELETE_INTEGRATION, [name]);
  return (rowCount ?? 0) > 0;
}
