import { withTransaction } from "../core/postgres.js";
import { randomInt } from "node:crypto";
import type pg from "pg";
import type { AnalyticsAppender } from "../core/analytics/appender.js";
import { dayOf } from "../core/day.js";
import type { Logger } from "../core/logger.js";
import { createQualityMetrics } from "./metrics.js";
import type { Registry } from "../core/metrics.js";
import { pageViewRow } from "./pairing.js";
import { COUNTER, Counters } from "./quality.js";
import { PAGE_VIEW_TABLE } from "./registry.js";
import { addCounters, deleteExpired, takeTimedOutStarts, takeUnmatchedEnds } from "./store.js";

export interface SweepOptions {
  readonly pool: pg.Pool;
  readonly analytics: AnalyticsAppender;
  readonly log: Logger;
  readonly metrics: Registry;
  readonly timeoutSeconds: number;
  readonly retentionDays: number;
  readonly intervalSeconds: number;
}

/** Views handled per transaction. */
const CHUNK = 1_000;

/**
 * The periodic page-view sweep (worker role): emits starts whose end did not
 * come within the timeout as unpaired `page_view` rows, counts ends that found
 * no start, and drops ingest state past its retention. Each chunk is one
 * transaction with its rows and counters; any number of workers may sweep at
 * once (SKIP LOCKED).
 */
export class PageViewSweep {
  readonly #options: SweepOptions;
  readonly #record: ReturnType<typeof createQualityMetrics>;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(options: SweepOptions) {
    this.#options = options;
    this.#record = createQualityMetrics(options.metrics);
  }

  start(): void {
    this.#stopped = false;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#stopped) return;
    // Jitter keeps several workers from sweeping in lockstep.
    const ms = this.#options.intervalSeconds * 1000;
    this.#timer = setTimeout(() => {
      this.#running = this.sweep()
        .then(() => undefined)
        .catch((error: unknown) => this.#options.log.warn({ err: error }, "page-view sweep failed; retrying next round"))
        .finally(() => {
          this.#running = undefined;
          this.#schedule();
        });
    }, ms / 2 + randomInt(Math.max(1, Math.floor(ms / 2))));
  }

  /** Stops the timer and waits for a sweep in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }

  /** Runs one full sweep; returns how many unpaired page views it emitted. */
  async sweep(): Promise<number> {
    const { pool, analytics, timeoutSeconds } = this.#options;
    let emitted = 0;
    for (;;) {
      const counters = new Counters();
      const { taken, unpaired } = await withTransaction(pool, async (client) => {
        const starts = await takeTimedOutStarts(client, timeoutSeconds, CHUNK);
        const ends = await takeUnmatchedEnds(client, timeoutSeconds, CHUNK);
        const today = dayOf(new Date());
        counters.add(today, PAGE_VIEW_TABLE, COUNTER.pageViewsUnpaired, starts.length);
        counters.add(today, PAGE_VIEW_TABLE, COUNTER.unmatchedEnds, ends);
        await analytics.appendInTransaction(
          client,
          PAGE_VIEW_TABLE,
          starts.map((state) => pageViewRow(state, false)),
        );
        await addCounters(client, counters.rows());
        return { taken: Math.max(starts.length, ends), unpaired: starts.length };
      });
      emitted += unpaired;
      this.#record(counters.rows());
      if (taken < CHUNK || this.#stopped) break;
    }
    while ((await deleteExpired(pool, this.#options.retentionDays, 10_000)) > 0 && !this.#stopped);
    return emitted;
  }
}
