import { randomInt } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import type { Logger } from "./logger.js";

export interface ListenerOptions {
  /** Postgres URL; LISTEN needs its own session, never a pooled connection. */
  readonly url: string;
  readonly channels: readonly string[];
  /** Names the connection (`application_name`) and the log lines. */
  readonly name: string;
  readonly log: Logger;
  readonly onNotification: (channel: string, payload: string) => void;
  /**
   * Called after every (re)connection: notifications sent while nobody was
   * listening are lost, so the owner re-reads whatever it watches.
   */
  readonly onConnect: () => void;
}

/**
 * A dedicated LISTEN connection that comes back by itself: a lost connection
 * is reopened with capped, jittered backoff. NOTIFY is only a hint; owners
 * treat a query as the truth and re-read on `onConnect`.
 */
export class Listener {
  readonly #options: ListenerOptions;
  #client: pg.Client | undefined;
  #running = false;

  constructor(options: ListenerOptions) {
    this.#options = options;
  }

  /** Whether the LISTEN connection is up right now. */
  get connected(): boolean {
    return this.#client !== undefined;
  }

  /** Connects (or starts retrying in the background if Postgres is not reachable). */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    await this.#listen(0);
  }

  async stop(): Promise<void> {
    this.#running = false;
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => undefined);
  }

  async #listen(attempt: number): Promise<void> {
    if (!this.#running) return;
    const { url, name, log, channels } = this.#options;
    const client = new pg.Client({ connectionString: url, application_name: name });
    client.on("notification", (message) => this.#options.onNotification(message.channel, message.payload ?? ""));
    client.on("error", (error) => {
      if (this.#client !== client) return;
      log.warn({ error: error.message, listener: name }, "LISTEN connection lost; reconnecting");
      this.#client = undefined;
      void client.end().catch(() => undefined);
      void this.#retry(1);
    });
    try {
      await client.connect();
      for (const channel of channels) await client.query(`LISTEN ${client.escapeIdentifier(channel)}`);
      if (!this.#running) {
        await client.end();
        return;
      }
      this.#client = client;
      this.#options.onConnect();
    } catch (error) {
      await client.end().catch(() => undefined);
      if (attempt === 0) log.warn({ error: (error as Error).message, listener: name }, "LISTEN failed; retrying in the background");
      void this.#retry(attempt + 1);
    }
  }

  async #retry(attempt: number): Promise<void> {
    // Capped low: after an outage of any length the listener is back within
    // seconds of Postgres, and until then its owner falls back to polling.
    const delay = Math.min(5_000, 250 * 2 ** Math.min(attempt, 5));
    await sleep(delay / 2 + randomInt(Math.max(1, Math.floor(delay / 2))));
    if (this.#running && this.#client === undefined) await this.#listen(attempt);
  }
}
