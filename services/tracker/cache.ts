import type { Logger } from "../core/logger.js";
import { Listener } from "../core/listener.js";
import { counter, type Registry } from "../core/metrics.js";
import type { TrackerRepository, TrackerRow } from "./repository.js";

/** Channel the `trackers` trigger notifies with the changed tracker's UUID. */
export const TRACKERS_CHANNEL = "funnel_trackers";

export interface TrackerCacheOptions {
  readonly repository: TrackerRepository;
  /** Postgres URL for the LISTEN connection. */
  readonly url: string;
  readonly log: Logger;
  readonly metrics: Registry;
  /** Full reload period: the staleness bound if a notification is lost. */
  readonly refreshMs: number;
  /** How long an unknown UUID is answered "unknown" without asking Postgres. */
  readonly negativeTtlMs?: number;
  /** Most unknown UUIDs remembered; the oldest are forgotten first. */
  readonly negativeMax?: number;
}

interface Entry {
  readonly value: string;
  readonly updatedAt: number;
}

interface Waiter {
  readonly resolve: (found: boolean) => void;
  readonly reject: (error: unknown) => void;
}

/** Most UUIDs asked of Postgres in one query. */
const MISS_BATCH = 1_000;

/**
 * Every tracker's value, in memory: a pixel hit never waits for Postgres.
 *
 * Loaded whole at start, then kept current by the `trackers` trigger's NOTIFY
 * (a change is seen within milliseconds) and by a full reload every
 * `refreshMs` (the bound when a notification is lost). A UUID not in memory
 * is looked up in Postgres — misses are batched into one query at a time, so a
 * flood of random UUIDs costs a handful of queries — and an unknown one is
 * remembered as unknown for `negativeTtlMs`.
 */
export class TrackerCache {
  readonly #options: TrackerCacheOptions;
  readonly #negativeTtlMs: number;
  readonly #negativeMax: number;
  readonly #entries = new Map<string, Entry>();
  /** Unknown UUIDs and when that answer expires. */
  readonly #unknown = new Map<string, number>();
  /** UUIDs waiting for the next lookup query, with their callers. */
  #waiting = new Map<string, Waiter[]>();
  #querying = false;
  #timer: NodeJS.Timeout | undefined;
  #listener: Listener | undefined;
  readonly #misses;
  readonly #lookups;

  constructor(options: TrackerCacheOptions) {
    this.#options = options;
    this.#negativeTtlMs = options.negativeTtlMs ?? 1_000;
    this.#negativeMax = options.negativeMax ?? 100_000;
    this.#misses = counter(options.metrics, "funnel_tracker_cache_misses_total", "Tracker UUIDs not in memory, by what Postgres said.", ["result"]);
    this.#lookups = counter(options.metrics, "funnel_tracker_cache_queries_total", "Queries made by the tracker cache: misses, notified changes, full reloads.", ["kind"]);
  }

  async start(): Promise<void> {
    await this.reload();
    this.#listener = new Listener({
      url: this.#options.url,
      channels: [TRACKERS_CHANNEL],
      name: "funnel-trackers-listen",
      log: this.#options.log,
      onNotification: (_channel, uuid) => this.#changed(uuid),
      // Changes made while nobody listened are only in the table.
      onConnect: () => void this.#reloadQuietly(),
    });
    await this.#listener.start();
    this.#timer = setInterval(() => void this.#reloadQuietly(), this.#options.refreshMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#listener?.stop();
  }

  /** Trackers in memory. */
  get size(): number {
    return this.#entries.size;
  }

  /** The tracker's value if it is in memory (the hot path: no promise, no I/O). */
  get(uuid: string): string | undefined {
    return this.#entries.get(uuid)?.value;
  }

  /**
   * The tracker's value, asking Postgres when it is not in memory; undefined
   * when no tracker has the UUID. Rejects when Postgres cannot be asked.
   */
  async lookup(uuid: string): Promise<string | undefined> {
    const cached = this.get(uuid);
    if (cached !== undefined) return cached;
    const unknownUntil = this.#unknown.get(uuid);
    if (unknownUntil !== undefined && unknownUntil > Date.now()) return undefined;
    const found = await new Promise<boolean>((resolve, reject) => {
      const callers = this.#waiting.get(uuid);
      if (callers !== undefined) callers.push({ resolve, reject });
      else this.#waiting.set(uuid, [{ resolve, reject }]);
      void this.#queryWaiting();
    });
    return found ? this.get(uuid) : undefined;
  }

  /** Puts a row in memory unless memory already holds a newer version of it. */
  put(row: TrackerRow): void {
    const current = this.#entries.get(row.uuid);
    const updatedAt = row.updatedAt.getTime();
    if (current === undefined || current.updatedAt <= updatedAt) this.#entries.set(row.uuid, { value: row.value, updatedAt });
    this.#unknown.delete(row.uuid);
  }

  /** Reads every tracker again. */
  async reload(): Promise<void> {
    this.#lookups.inc({ kind: "reload" });
    for (const row of await this.#options.repository.all()) this.put(row);
  }

  async #reloadQuietly(): Promise<void> {
    try {
      await this.reload();
    } catch (error) {
      this.#options.log.warn({ error: (error as Error).message }, "tracker cache reload failed; serving what is in memory");
    }
  }

  #changed(uuid: string): void {
    this.#unknown.delete(uuid);
    if (!this.#waiting.has(uuid)) this.#waiting.set(uuid, []);
    void this.#queryWaiting();
  }

  /** One query at a time for everything waiting; callers that arrive meanwhile wait for the next. */
  async #queryWaiting(): Promise<void> {
    if (this.#querying || this.#waiting.size === 0) return;
    this.#querying = true;
    try {
      while (this.#waiting.size > 0) {
        const batch = new Map([...this.#waiting].slice(0, MISS_BATCH));
        for (const uuid of batch.keys()) this.#waiting.delete(uuid);
        let rows: TrackerRow[];
        try {
          this.#lookups.inc({ kind: [...batch.values()].some((callers) => callers.length > 0) ? "miss" : "notify" });
          rows = await this.#options.repository.getMany([...batch.keys()]);
        } catch (error) {
          // Postgres unreachable: these callers fail; the next ones ask again.
          for (const callers of batch.values()) for (const caller of callers) caller.reject(error);
          continue;
        }
        for (const row of rows) this.put(row);
        const until = Date.now() + this.#negativeTtlMs;
        for (const [uuid, callers] of batch) {
          const found = this.#entries.has(uuid);
          if (callers.length > 0) this.#misses.inc({ result: found ? "found" : "unknown" });
          if (!found) this.#rememberUnknown(uuid, until);
          for (const caller of callers) caller.resolve(found);
        }
      }
    } finally {
      this.#querying = false;
    }
  }

  #rememberUnknown(uuid: string, until: number): void {
    this.#unknown.delete(uuid);
    this.#unknown.set(uuid, until);
    // Map order is insertion order: the first keys are the oldest.
    for (const oldest of this.#unknown.keys()) {
      if (this.#unknown.size <= this.#negativeMax) break;
      this.#unknown.delete(oldest);
    }
  }
}
