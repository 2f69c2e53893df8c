import type { SeenService } from "../../../gen/funnel/seen/v1/seen_pb.js";
import type { Store } from "./queue.js";
import { call, type Methods, retryable, SEEN_SERVICE } from "./wire.js";

type Seen = Methods<typeof SeenService>;

/** A stored mark. */
export interface SeenMark {
  readonly tag: string;
  readonly id: string;
  /** When it was first marked. */
  readonly firstSeenAt: Date;
  /** When it will be forgotten (its tag's retention after `firstSeenAt`). */
  readonly expiresAt: Date;
}

/** Filters for {@link SeenClient.list}. */
export interface ListOptions {
  /** Only marks of this tag. */
  readonly tag?: string;
  /** Only marks first stored at or after this time. */
  readonly since?: Date;
  /** Marks fetched per request, 1 to 1000 (default 100). */
  readonly pageSize?: number;
}

/** Seen marks of the caller: the signed-in user (by token) or, anonymously, this browser (by device id). */
export interface SeenClient {
  /**
   * Remembers that notification `id` of `tag` was shown. Retried with
   * backoff while the server or the network is unavailable, and kept in
   * storage meanwhile, so a mark made just before the page closes is sent by
   * the next page of the site. Resolves once stored: `created` is false when
   * it already was. Bad input rejects with `Code.InvalidArgument`.
   */
  mark(tag: string, id: string): Promise<{ created: boolean; firstSeenAt: Date }>;
  /** Whether the caller has a retained mark for `tag` and `id`. */
  isSeen(tag: string, id: string): Promise<boolean>;
  /** The caller's retained marks, oldest first, fetched page by page as the loop goes on. */
  list(options?: ListOptions): AsyncGenerator<SeenMark>;
}

/** What the Seen client needs from the SDK. */
export interface SeenDeps {
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly store: Store | undefined;
  /** Headers of the caller's identity: its token, or the device id. */
  readonly headers: () => Promise<Record<string, string>>;
  /** Waits before retry number `attempt` (0-based). */
  readonly pause: (attempt: number) => Promise<void>;
}

const PENDING_KEY = "funnel:marks";

/** Creates the Seen client and resends the marks a previous page left unsent. */
export function createSeen(deps: SeenDeps): SeenClient {
  const { baseUrl, timeoutMs, store } = deps;
  const rpc = async <M extends keyof Seen>(method: M, body: Parameters<typeof call<Seen, M>>[3]) =>
    call<Seen, M>(baseUrl, SEEN_SERVICE, method, body, { headers: await deps.headers(), timeoutMs });

  const pending = (): [string, string][] => {
    try {
      return JSON.parse(store?.getItem(PENDING_KEY) ?? "[]") as [string, string][];
    } catch {
      return [];
    }
  };
  const keep = (tag: string, id: string, on: boolean): void => {
    const rest = pending().filter(([t, i]) => t !== tag || i !== id);
    try {
      store?.setItem(PENDING_KEY, JSON.stringify(on ? [...rest, [tag, id]] : rest));
    } catch {
      // Storage full or gone: the mark is still retried while the page lives.
    }
  };

  const mark: SeenClient["mark"] = async (tag, id) => {
    keep(tag, id, true);
    for (let attempt = 0; ; attempt += 1) {
      try {
        const answer = await rpc("markSeen", { tag, id });
        keep(tag, id, false);
        return { created: answer.created === true, firstSeenAt: new Date(answer.firstSeenAt ?? 0) };
      } catch (error) {
        if (!retryable(error)) {
          keep(tag, id, false);
          throw error;
        }
        await deps.pause(attempt);
      }
    }
  };

  for (const [tag, id] of pending()) mark(tag, id).catch(() => undefined);

  return {
    mark,
    isSeen: async (tag, id) => (await rpc("isSeen", { tag, id })).seen === true,
    async *list(options = {}) {
      let pageToken = "";
      do {
        const page = await rpc("listSeen", {
          tag: options.tag ?? "",
          pageSize: options.pageSize ?? 0,
          pageToken,
          ...(options.since !== undefined ? { since: options.since.toISOString() } : {}),
        });
        for (const mark of page.marks ?? []) {
          yield { tag: mark.tag ?? "", id: mark.id ?? "", firstSeenAt: new Date(mark.firstSeenAt ?? 0), expiresAt: new Date(mark.expiresAt ?? 0) };
        }
        pageToken = page.nextPageToken ?? "";
      } while (pageToken !== "");
    },
  };
}
