import { withTransaction } from "../core/postgres.js";
import type pg from "pg";
import type { AnalyticsAppender, AnalyticsRow } from "../core/analytics/appender.js";
import type { Logger } from "../core/logger.js";
import { histogram, type Registry } from "../core/metrics.js";
import { createQualityMetrics } from "./metrics.js";
import { pairPageViews } from "./pairing.js";
import { COUNTER, Counters, dayOf } from "./quality.js";
import type { EventType } from "./registry.js";
import { addCounters, claimEventIds, lockSessions, type PageViewHalf, saveSessions } from "./store.js";

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

interface Pending {
  readonly events: readonly AcceptedEvent[];
  readonly resolve: (outcomes: WriteOutcome[]) => void;
  readonly reject: (error: unknown) => void;
}

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
 * transaction without making anyone wait.
 */
export class IngestWriter {
  readonly #options: Required<Omit<WriterOptions, "log" | "metrics">>;
  readonly #log: Logger;
  #pending: Pending[] = [];
  #rejections = new Counters();
  #inFlight = 0;
  readonly #commits = new Set<Promise<void>>();
  readonly #record: ReturnType<typeof createQualityMetrics>;
  readonly #groupEvents;

  constructor(options: WriterOptions) {
    this.#options = { maxEvents: 2_000, maxInFlight: 2, ...options };
    this.#log = options.log;
    this.#record = createQualityMetrics(options.metrics);
    this.#groupEvents = histogram(options.metrics, "funnel_ingest_commit_events", "Events per ingest transaction.", [], [1, 4, 16, 64, 256, 1024, 4096]);
  }

  /** Stores events; resolves with one outcome per event once they are durable. */
  write(events: readonly AcceptedEvent[]): Promise<WriteOutcome[]> {
    if (events.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.#pending.push({ events, resolve, reject });
      this.#next();
    });
  }

  /** Counts a rejected event; it is added with the next transaction. */
  countRejected(eventType: string, counter: string, at = new Date()): void {
    this.#rejections.add(dayOf(at), eventType, counter);
    this.#next();
  }

  /** Commits whatever waits and waits for every transaction in flight. */
  async flush(): Promise<void> {
    while (this.#pending.length > 0 || !this.#rejections.empty || this.#commits.size > 0) {
      this.#next();
      await Promise.allSettled([...this.#commits]);
    }
  }

  #next(): void {
    if (this.#inFlight >= this.#options.maxInFlight || (this.#pending.length === 0 && this.#rejections.empty)) return;
    const group: Pending[] = [];
    let size = 0;
    while (this.#pending.length > 0 && (group.length === 0 || size + (this.#pending[0]?.events.length ?? 0) <= this.#options.maxEvents)) {
      const request = this.#pending.shift() as Pending;
      group.push(request);
      size += request.events.length;
    }
    const rejections = this.#rejections;
    this.#rejections = new Counters();
    this.#inFlight += 1;
    const commit = this.#commit(group, rejections).finally(() => {
      this.#inFlight -= 1;
      this.#commits.delete(commit);
      this.#next();
    });
    this.#commits.add(commit);
  }

  async #commit(group: readonly Pending[], rejections: Counters): Promise<void> {
    const events = group.flatMap((request) => request.events);
    let result: { outcomes: WriteOutcome[]; counters: Counters } | undefined;
    try {
      for (let attempt = 1; result === undefined; attempt += 1) {
        try {
          result = await withTransaction(this.#options.pool, async (tx) => {
            const counters = new Counters();
            counters.merge(rejections);
            return { outcomes: await this.#store(tx, events, counters), counters };
          });
        } catch (error) {
          const code = (error as { code?: string }).code;
          if (attempt >= 3 || code === undefined || !RETRYABLE.has(code)) throw error;
        }
      }
    } catch (error) {
      for (const request of group) request.reject(error);
      // The rejections are counted with a later transaction instead.
      this.#rejections.merge(rejections);
      if (group.length === 0) this.#log.warn({ err: error }, "could not store rejection counters; will retry");
      return;
    }
    this.#groupEvents.observe(events.length);
    this.#record(result.counters.rows());
    let offset = 0;
    for (const request of group) {
      request.resolve(result.outcomes.slice(offset, offset + request.events.length));
      offset += request.events.length;
    }
  }

  /** The body of one transaction; returns the outcome of each event in order. */
  async #store(tx: pg.PoolClient, events: readonly AcceptedEvent[], counters: Counters): Promise<WriteOutcome[]> {
    // 1. Duplicates: the first of several equal ids in the group competes with the stored ones.
    const firstById = new Map<string, number>();
    const fresh = events.map((event, index) => {
      if (!event.clientEventId) return true;
      if (!firstById.has(event.eventId)) firstById.set(event.eventId, index);
      return false;
    });
    const claimed = await claimEventIds(tx, [...firstById.keys()]);
    for (const [id, index] of firstById) fresh[index] = claimed.has(id);
    const accepted = events.filter((_, index) => fresh[index]);
    for (const [index, event] of events.entries()) {
      counters.add(dayOf(event.timestamp), event.type.name, fresh[index] === true ? COUNTER.accepted : COUNTER.duplicates);
    }

    // 2. Sequence gaps, per session, in arrival order.
    const sequenced = accepted.filter((event) => event.sessionId !== undefined && event.seq !== undefined);
    const maxima = await lockSessions(tx, [...new Set(sequenced.map((event) => event.sessionId as string))]);
    const before = new Map(maxima);
    for (const event of sequenced) {
      const session = event.sessionId as string;
      const seq = event.seq as bigint;
      const max = maxima.get(session) ?? 0n;
      const day = dayOf(event.timestamp);
      if (seq > max) {
        counters.add(day, event.type.name, COUNTER.gaps, Number(seq - max - 1n));
        maxima.set(session, seq);
      } else {
        counters.add(day, event.type.name, COUNTER.outOfOrder);
      }
    }
    await saveSessions(tx, new Map([...maxima].filter(([session, max]) => before.get(session) !== max)));

    // 3. Rows to the stream, page views paired.
    const append = (table: string, rows: AnalyticsRow[]) => this.#options.analytics.appendInTransaction(tx, table, rows);
    const byTable = new Map<string, AnalyticsRow[]>();
    for (const event of accepted) {
      const rows = byTable.get(event.type.name) ?? [];
      rows.push(event.row);
      byTable.set(event.type.name, rows);
    }
    for (const [table, rows] of byTable) await append(table, rows);
    await pairPageViews(
      tx,
      accepted.flatMap((event) => (event.pageView !== undefined ? [event.pageView] : [])),
      counters,
      append,
    );

    await addCounters(tx, counters.rows());
    return fresh.map((isFresh) => (isFresh ? "accepted" : "duplicate"));
  }
}
