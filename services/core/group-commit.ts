import { counter, type Histogram, type Registry } from "./metrics.js";

/**
 * SQLSTATE classes of a statement refused for the data it carries: data
 * exceptions (22: a NUL, a lone surrogate, a value too long), integrity
 * violations (23) and program limits (54: an index row too large).
 */
const DATA_ERROR = /^(22|23|54)[0-9A-Z]{3}$/;

/**
 * Whether Postgres refused a statement for the data it carried, so the same
 * statement with fewer items may succeed. Not an outage (class 08, 57P0x,
 * socket errors) nor a lost race (40001, 40P01): those fail any subset alike.
 */
export function isDataError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return typeof code === "string" && DATA_ERROR.test(code);
}

export interface GroupCommitOptions<I, R> {
  /** The group's name in metrics (`funnel_group_commit_splits_total{group}`). */
  readonly name: string;
  readonly metrics: Registry;
  /**
   * Commits one group and returns one result per item, in the items' order.
   * When it throws, the group's items reject with that error, so it must
   * store either all of the group or nothing (one transaction). When the
   * error is Postgres refusing the data ({@link isDataError}), the group is
   * committed again in halves, so it must also give each item the same
   * result whether it commits alone or with others.
   */
  readonly commit: (items: readonly I[]) => Promise<readonly R[]>;
  /** Most items in one group; with `weight`, most weight (an item heavier than that goes alone). 500 by default. */
  readonly maxItems?: number | undefined;
  /** An item's share of `maxItems`; 1 by default. */
  readonly weight?: (item: I) => number;
  /** Commits in flight at once (each usually holds one connection); items gather while all are busy. 4 by default. */
  readonly maxInFlight?: number | undefined;
  /**
   * Histograms of the module's own: the items of each group that committed,
   * and how long each commit took (committed or not).
   */
  readonly observe?: { readonly items: Histogram; readonly seconds: Histogram };
}

interface Pending<I, R> {
  readonly item: I;
  readonly resolve: (result: R) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Group commit: concurrent `submit` calls share one commit (one transaction,
 * one round trip per statement, one fsync). An item arriving while a commit
 * slot is free is committed at once; items arriving while every slot is busy
 * gather and go together when one frees, so a group grows with the load and
 * an idle committer adds no delay. Each call resolves only after its group
 * committed; if the commit fails, every call in the group rejects with the
 * error. One caller's data must not fail the others, so when Postgres refuses
 * a group's data the group is committed again in halves, one after the other
 * and recursively, until only the items at fault fail; an outage still fails
 * the whole group.
 */
export class GroupCommit<I, R> {
  readonly #options: GroupCommitOptions<I, R> & { readonly maxItems: number; readonly maxInFlight: number };
  #pending: Pending<I, R>[] = [];
  readonly #flushes = new Set<Promise<void>>();
  readonly #splits;

  constructor(options: GroupCommitOptions<I, R>) {
    this.#options = { ...options, maxItems: options.maxItems ?? 500, maxInFlight: options.maxInFlight ?? 4 };
    this.#splits = counter(
      options.metrics,
      "funnel_group_commit_splits_total",
      "Group commits that Postgres refused for their data and that were committed again in halves, by group.",
      ["group"],
    ).labels(options.name);
    // Listed at 0 from the start, so a rate can be taken before the first split.
    this.#splits.inc(0);
  }

  /** Adds `item` to the next group; resolves with its result once the group is committed. */
  submit(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#pending.push({ item, resolve, reject });
      this.#flush();
    });
  }

  /**
   * Adds `items` together (one group, unless they exceed `maxItems`); resolves
   * once all are committed. A group split after a data error may commit some
   * of them and fail others.
   */
  submitMany(items: readonly I[]): Promise<R[]> {
    const results = items.map((item) => new Promise<R>((resolve, reject) => this.#pending.push({ item, resolve, reject })));
    this.#flush();
    return Promise.all(results);
  }

  #flush(): void {
    if (this.#pending.length === 0 || this.#flushes.size >= this.#options.maxInFlight) return;
    const flush = this.#commit(this.#take()).finally(() => {
      this.#flushes.delete(flush);
      this.#flush();
    });
    this.#flushes.add(flush);
  }

  /** The next group: the waiting items up to `maxItems` (of weight), at least one. */
  #take(): Pending<I, R>[] {
    const { weight, maxItems } = this.#options;
    if (weight === undefined) return this.#pending.splice(0, maxItems);
    let count = 0;
    for (let total = 0; count < this.#pending.length; count += 1) {
      total += weight(this.#pending[count]!.item);
      if (count > 0 && total > maxItems) break;
    }
    return this.#pending.splice(0, count);
  }

  /**
   * Commits `group`. When Postgres refuses its data, commits its halves
   * instead, the first before the second so that items keep their order (an
   * earlier item still sees a later one as its repeat).
   */
  async #commit(group: readonly Pending<I, R>[]): Promise<void> {
    let results: readonly R[];
    const { observe } = this.#options;
    const end = observe?.seconds.startTimer();
    try {
      results = await this.#options.commit(group.map((pending) => pending.item));
      if (results.length !== group.length) throw new Error(`group commit returned ${results.length} results for ${group.length} items`);
    } catch (error) {
      // Timed alone: its halves, if it splits, are commits of their own.
      end?.();
      if (group.length > 1 && isDataError(error)) {
        this.#splits.inc();
        const half = Math.ceil(group.length / 2);
        await this.#commit(group.slice(0, half));
        await this.#commit(group.slice(half));
        return;
      }
      for (const pending of group) pending.reject(error);
      return;
    }
    end?.();
    observe?.items.observe(group.length);
    group.forEach((pending, i) => pending.resolve(results[i]!));
  }

  /** Commits whatever is waiting and waits for every commit in flight. */
  async flush(): Promise<void> {
    while (this.#pending.length > 0 || this.#flushes.size > 0) {
      this.#flush();
      await Promise.allSettled([...this.#flushes]);
    }
  }
}
