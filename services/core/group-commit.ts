export interface GroupCommitOptions<I, R> {
  /**
   * Commits one group and returns one result per item, in the items' order.
   * When it throws, every item of the group rejects with that error, so it
   * must store either all of the group or nothing (one transaction).
   */
  readonly commit: (items: readonly I[]) => Promise<readonly R[]>;
  /** Most items in one group. */
  readonly maxItems: number;
  /** Commits in flight at once (each usually holds one connection); items gather while all are busy. */
  readonly maxInFlight: number;
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
 * committed; if the commit fails, every call in the group rejects with the error.
 */
export class GroupCommit<I, R> {
  readonly #options: GroupCommitOptions<I, R>;
  #pending: Pending<I, R>[] = [];
  readonly #flushes = new Set<Promise<void>>();

  constructor(options: GroupCommitOptions<I, R>) {
    this.#options = options;
  }

  /** Adds `item` to the next group; resolves with its result once the group is committed. */
  submit(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#pending.push({ item, resolve, reject });
      this.#flush();
    });
  }

  /** Adds `items` together (one group, unless they exceed `maxItems`); resolves once all are committed. */
  submitMany(items: readonly I[]): Promise<R[]> {
    const results = items.map((item) => new Promise<R>((resolve, reject) => this.#pending.push({ item, resolve, reject })));
    this.#flush();
    return Promise.all(results);
  }

  #flush(): void {
    if (this.#pending.length === 0 || this.#flushes.size >= this.#options.maxInFlight) return;
    const group = this.#pending.splice(0, this.#options.maxItems);
    const flush = this.#commit(group).finally(() => {
      this.#flushes.delete(flush);
      this.#flush();
    });
    this.#flushes.add(flush);
  }

  async #commit(group: readonly Pending<I, R>[]): Promise<void> {
    let results: readonly R[];
    try {
      results = await this.#options.commit(group.map((pending) => pending.item));
      if (results.length !== group.length) throw new Error(`group commit returned ${results.length} results for ${group.length} items`);
    } catch (error) {
      for (const pending of group) pending.reject(error);
      return;
    }
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
