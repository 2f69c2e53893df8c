import type pg from "pg";
import { runPeriodically, type Periodic } from "../core/periodic.js";
import type { Logger } from "../core/logger.js";
import { topicDefaults } from "./integration.js";
import { deleteExpiredMarks, deleteExpiredTopicMessages, deleteFinishedDeliveries } from "./sql/cleanup.js";

/** Rows one statement deletes, so a large clean-up never holds long locks. */
const BATCH = 5_000;

export interface SeenCleanupOptions {
  readonly pool: pg.Pool;
  readonly log: Logger;
  readonly defaultRetentionSeconds: number;
  /** How long finished api deliveries and their attempts stay, in milliseconds. */
  readonly historyMs: number;
  readonly intervalMs: number;
}

/**
 * Forgets what is past its retention, every `intervalMs` (worker role):
 * marks past their tag's retention, topic messages past their topic's, and
 * finished api deliveries with their attempts past SEEN_DELIVERY_HISTORY
 * (ClickHouse keeps the attempts).
 */
export class SeenCleanup {
  readonly #options: SeenCleanupOptions;
  #periodic: Periodic | undefined;

  constructor(options: SeenCleanupOptions) {
    this.#options = options;
  }

  start(): void {
    this.#periodic ??= runPeriodically(this.#options.intervalMs, () => this.run(), (error) => this.#options.log.warn({ err: error }, "seen clean-up failed"));
  }

  async stop(): Promise<void> {
    await this.#periodic?.stop();
    this.#periodic = undefined;
  }

  /** One full pass; returns what was deleted. */
  async run(): Promise<{ marks: number; topicMessages: number; deliveries: number }> {
    const { pool, defaultRetentionSeconds } = this.#options;
    const drain = async (step: () => Promise<number>): Promise<number> => {
      let total = 0;
      for (;;) {
        const deleted = await step();
        total += deleted;
        if (deleted < BATCH) return total;
      }
    };
    const before = new Date(Date.now() - this.#options.historyMs);
    const result = {
      marks: await drain(() => deleteExpiredMarks(pool, defaultRetentionSeconds, BATCH)),
      topicMessages: await drain(() => deleteExpiredTopicMessages(pool, topicDefaults.retentionMs / 1000, BATCH)),
      deliveries: await drain(() => deleteFinishedDeliveries(pool, before, BATCH)),
    };
    if (result.marks + result.topicMessages + result.deliveries > 0) this.#options.log.info(result, "seen clean-up");
    return result;
  }
}
