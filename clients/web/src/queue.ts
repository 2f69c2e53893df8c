import type { Event } from "../../../gen/funnel/ingest/v1/ingest_pb.js";
import type { Json } from "./wire.js";

/** An event as it waits and as it is sent: `Event` in JSON, with the envelope the SDK always fills in. */
export type QueuedEvent = Json<Event> & { readonly eventId: string };

/** Where queues are kept: `localStorage`, or nothing when the page may not use it (the queue then lives in memory only). */
export type Store = Pick<Storage, "getItem" | "setItem" | "removeItem" | "key" | "length">;

/** Prefix of the storage keys (and Web Lock names) of the queues, one per session. */
export const QUEUE_PREFIX = "funnel:q:";

/** `localStorage` when it can be used; undefined in a sandboxed frame or with storage blocked. */
export function browserStore(): Store | undefined {
  try {
    localStorage.getItem(QUEUE_PREFIX);
    return localStorage;
  } catch {
    return undefined;
  }
}

/**
 * The events of one session that the server has not answered for yet, kept
 * in the browser's storage so a reload, a crash or a closed tab loses none of
 * them. Bounded: past `max` events the oldest are dropped and counted (the
 * server then counts their sequence numbers as gaps).
 */
export class Queue {
  events: QueuedEvent[] = [];
  /** Events dropped because the queue was full. */
  dropped = 0;
  readonly #store: Store | undefined;
  readonly #key: string;
  readonly #max: number;
  #saving = false;
  #release: (() => void) | undefined;

  constructor(store: Store | undefined, key: string, max: number) {
    this.#store = store;
    this.#key = key;
    this.#max = max;
  }

  /** Adds events at the end (`older` puts them first), dropping the oldest past the bound. */
  add(events: readonly QueuedEvent[], older = false): void {
    this.events = older ? [...events, ...this.events] : [...this.events, ...events];
    const excess = this.events.length - this.#max;
    if (excess > 0) {
      this.dropped += excess;
      this.events.splice(0, excess);
    }
    this.save();
  }

  /** Forgets events the server has answered for. */
  remove(done: readonly QueuedEvent[]): void {
    const ids = new Set(done.map((event) => event.eventId));
    this.events = this.events.filter((event) => !ids.has(event.eventId));
    this.save();
  }

  /** Writes the queue once the current task is done, so events tracked together cost one write. */
  save(): void {
    if (this.#saving) return;
    this.#saving = true;
    queueMicrotask(() => this.write());
  }

  /** Writes the queue now. */
  write(): void {
    this.#saving = false;
    try {
      if (this.events.length > 0) this.#store?.setItem(this.#key, JSON.stringify(this.events));
      else this.#store?.removeItem(this.#key);
    } catch {
      // Storage full or gone: the events stay in memory and are still sent.
    }
  }

  /**
   * Takes over the queues of sessions whose page is gone (closed, reloaded,
   * crashed): each live session holds a Web Lock named after its queue, so
   * a queue whose lock is free has no owner. Without the Web Locks API such
   * queues stay stored.
   */
  async adopt(): Promise<void> {
    const store = this.#store;
    const locks = typeof navigator === "undefined" ? undefined : navigator.locks;
    if (store === undefined || locks === undefined) return;
    const keys: string[] = [];
    for (let i = 0; i < store.length; i += 1) {
      const key = store.key(i);
      if (key?.startsWith(QUEUE_PREFIX) === true && key !== this.#key) keys.push(key);
    }
    await Promise.all(
      keys.map((key) =>
        locks.request(key, { ifAvailable: true }, (lock) => {
          if (lock === null) return;
          let events: QueuedEvent[] = [];
          try {
            events = JSON.parse(store.getItem(key) ?? "[]") as QueuedEvent[];
          } catch {
            // Not ours to read: dropped below.
          }
          // Ours first, then theirs removed: a crash in between sends them twice, never loses them.
          this.add(events, true);
          this.write();
          store.removeItem(key);
        }),
      ),
    );
  }

  /** Holds this queue's Web Lock while the page lives, so no other page adopts it. */
  hold(): void {
    if (typeof navigator === "undefined" || this.#release !== undefined) return;
    void navigator.locks?.request(this.#key, () => new Promise<void>((resolve) => (this.#release = resolve)));
  }

  /**
   * Lets the lock go when the page is left, also into the back-forward
   * cache: a page frozen there sends nothing, so another page of the site
   * may take its queue over. Should the page come back, events both sent are
   * stored once.
   */
  release(): void {
    this.#release?.();
    this.#release = undefined;
  }
}
