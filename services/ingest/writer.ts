import { GroupCommit } from "../core/group-commit.js";
import { type Transaction, withTransaction } from "../core/postgres.js";
import type pg from "pg";
import type { AnalyticsAppender, AnalyticsRow } from "../core/analytics/appender.js";
import { dayOf } from "../core/day.js";
import type { Logger } from "../core/logger.js";
import { histogram, type Registry } from "../core/metrics.js";
import { createQualityMetrics } from "./metrics.js";
import { pairPageViews } from "./pairing.js";
import { Counters } from "./quality.js";
import type { EventType } from "./registry.js";
import { addCounters, type EventInput, type PageViewHalf, storeEvents } from "./store.js";

/** A valid, identified event ready to be stored. */
export interface AcceptedEvent {
  readonly type: EventType;
  /** Lower-case UUID. */
  readonly eventId: string;
  /** Whether the client chose the id (only those can be duplicates). */
  readonly clientEventId: boolean;
  readonly userId: string;
  readonly timestamp: Date;
  readonly sessionId: string | undefined;
  readonly seq: bigint | undefined;
  /** The row for the type's ClickHouse table. */
  readonly row: AnalyticsRow;
  readonly pageView: PageViewHalf | undefined;
}

export type WriteOutcome = "accepted" | "duplicate";

export interface WriterOptions {
  readonly pool: pg.Pool;
  readonly analytics: AnalyticsAppender;
  readonly metrics: Registry;
  readonly log: Logger;
  /** Most events in one transaction (whole requests are never split). */
  readonly maxEvents?: number;
  /** Transactions in flight at once; events gather while all are busy. */
  readonly maxInFlight?: number;
}

/** Postgres errors worth running the same transaction again for. */
const RETRYABLE = new Set(["40P01", "40001"]);

/**
 * Stores accepted events with group commit: concurrent requests share one
 * transaction that drops repeated event ids, counts sequence gaps, pairs page
 * views, appends every row to the analytics stream and adds the quality
 * counters, so all of it commits or none of it does. A request resolves only
 * once its events are durable. Rejections are counted in the next
 * transaction without making anyone wait. A group whose data Postgres
 * refuses is committed again in parts ({@link GroupCommit}), so only the
 * requests at fault fail.
 */
export class IngestWriter {
  readonly #options: Required<Omit<WriterOptions, "log" | "metrics">>;
  readonly #log: Logger;
  readonly #group: GroupCommit<readonly AcceptedEvent[], WriteOutcome[]>;
  #rejections = new Counters();
  /** Whether a group is on its way that will take the rejections counted so far. */
  #countersQueued = false;
  readonly #record: ReturnType<typeof createQualityMetrics>;
  readonly #groupEvents;
  readonly #groupSeconds;

  constructor(options: WriterOptions) {
    this.#options = { maxEvents: 2_000, maxInFlight: 2, ...options };
    this.#log = options.log;
    this.#record = createQualityMetrics(options.metrics);
    this.#groupEvents = histogram(options.metrics, "funnel_ingest_commit_events", "Events per ingest transaction.", [], [1, 4, 16, 64, 256, 1024, 4096]);
    this.#groupSeconds = histogram(options.metrics, "funnel_ingest_commit_seconds", "Duration of one ingest transaction, retries included.");
    this.#group = new GroupCommit({
      name: "ingest_events",
      metrics: options.metrics,
      maxItems: this.#options.maxEvents,
      weight: (events) => events.length,
      maxInFlight: this.#options.maxInFlight,
      commit: (requests) => this.#commit(requests),
    });
  }

  /** Stores events; resolves with one outcome per event once they are durable. */
  write(events: readonly AcceptedEvent[]): Promise<WriteOutcome[]> {
    if (events.length === 0) return Promise.resolve([]);
    return this.#group.submit(events);
  }

  /** Counts a rejected event; it is added with the next transaction. */
  countRejected(eventType: string, counter: string, at = new Date()): void {
    this.#rejections.add(dayOf(at), eventType, counter);
    this.#queueCounters();
  }

  /** Commits whatever waits and waits for every transaction in flight. */
  async flush(): Promise<void> {
    await this.#group.flush();
    // Counters a failed group handed back get one more try.
    if (!this.#rejections.empty) {
      this.#queueCounters();
      await this.#group.flush();
    }
  }

  /** Makes sure a group will take the counted rejections: an empty request, when no group is on its way. */
  #queueCounters(): void {
    if (this.#countersQueued) return;
    this.#countersQueued = true;
    this.#group.submit([]).catch((error: unknown) => this.#log.warn({ err: error }, "could not store rejection counters; a later transaction adds them"));
  }

  /**
   * Commits a group of requests with the rejections counted so far; resolves
   * with each request's outcomes. On failure the rejections are handed back
   * for a later group.
   */
  async #commit(requests: readonly (readonly AcceptedEvent[])[]): Promise<WriteOutcome[][]> {
    const events = requests.flat();
    const rejections = this.#rejections;
    this.#rejections = new Counters();
    this.#countersQueued = false;
    if (events.length === 0 && rejections.empty) return requests.map(() => []);
    // Page views pair inside a transaction with the rest; other groups are one statement.
    const pairs = events.some((event) => event.pageView !== undefined);
    let result: { outcomes: WriteOutcome[]; counters: Counters } | undefined;
    const end = this.#groupSeconds.startTimer();
    try {
      for (let attempt = 1; result === undefined; attempt += 1) {
        try {
          result = pairs
            ? await withTransaction(this.#options.pool, (tx) => this.#store(events, rejections, tx))
            : await this.#store(events, rejections);
        } catch (error) {
          const code = (error as { code?: string }).code;
          if (attempt >= 3 || code === undefined || !RETRYABLE.has(code)) throw error;
        }
      }
    } catch (error) {
      // The rejections are counted with a later transaction instead (not
      // queued again here: while Postgres is down that would loop).
      this.#rejections.merge(rejections);
      throw error;
    } finally {
      end();
    }
    this.#groupEvents.observe(events.length);
    this.#record(result.counters.rows());
    let offset = 0;
    return requests.map((request) => result.outcomes.slice(offset, (offset += request.length)));
  }

  /**
   * Stores the group ({@link storeEvents}: duplicates dropped, gaps counted,
   * rows appended, counters added) on its own, or inside `tx` and then pairs
   * its page views there. Returns the outcome of each event in order.
   */
  async #store(events: readonly AcceptedEvent[], rejections: Counters, tx?: Transaction): Promise<{ outcomes: WriteOutcome[]; counters: Counters }> {
    // Of equal client ids in one group, the first competes with the stored ones; the rest are duplicates.
    const claimed = new Set<string>();
    const input = events.map((event): EventInput => {
      const first = event.clientEventId && !claimed.has(event.eventId);
      if (first) claimed.add(event.eventId);
      return {
        claim: first ? event.eventId : null,
        repeated: event.clientEventId && !first,
        sessionId: event.sessionId ?? null,
        seq: event.seq ?? null,
        day: dayOf(event.timestamp),
        eventType: event.type.name,
        row: JSON.stringify(event.row),
      };
    });
    const { analytics } = this.#options;
    const { fresh, increments } = await storeEvents(analytics, tx ?? this.#options.pool, input, rejections.rows());
    const counters = new Counters();
    for (const row of increments) counters.add(row.day, row.eventType, row.counter, row.value);

    const halves = events.flatMap((event, index) => (event.pageView !== undefined && fresh.has(index) ? [event.pageView] : []));
    if (halves.length > 0 && tx !== undefined) {
      const paired = new Counters();
      await pairPageViews(tx, halves, paired, (table, rows) => analytics.appendInTransaction(tx, table, rows));
      await addCounters(tx, paired.rows());
      counters.merge(paired);
    }
    return { outcomes: events.map((_, index) => (fresh.has(index) ? "accepted" : "duplicate")), counters };
  }
}
