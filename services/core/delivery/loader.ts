interface Waiting<T> {
  readonly resolve: (value: T | undefined) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Loads by id in batches: the ids asked for in one turn of the event loop
 * (the jobs pg-boss hands over together) share one call of `loadMany`. Each
 * caller gets the value with its id, or undefined; if the call fails, every
 * caller of the batch rejects with its error.
 */
export function createBatchLoader<T extends { readonly id: string }>(loadMany: (ids: readonly string[]) => Promise<readonly T[]>) {
  let batch: Map<string, Waiting<T>[]> | undefined;
  const run = async (waiting: Map<string, Waiting<T>[]>): Promise<void> => {
    let found: readonly T[];
    try {
      found = await loadMany([...waiting.keys()]);
    } catch (error) {
      for (const callers of waiting.values()) for (const caller of callers) caller.reject(error);
      return;
    }
    const byId = new Map(found.map((value) => [value.id, value]));
    for (const [id, callers] of waiting) for (const caller of callers) caller.resolve(byId.get(id));
  };
  return (id: string): Promise<T | undefined> =>
    new Promise((resolve, reject) => {
      if (batch === undefined) {
        const waiting = new Map<string, Waiting<T>[]>();
        batch = waiting;
        setImmediate(() => {
          batch = undefined;
          void run(waiting);
        });
      }
      batch.set(id, [...(batch.get(id) ?? []), { resolve, reject }]);
    });
}
