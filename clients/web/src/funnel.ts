import type { IngestService } from "../../../gen/funnel/ingest/v1/ingest_pb.js";
import type { EventName, EventTypes } from "./events.js";
import { deviceId as keptDeviceId, uuid } from "./ids.js";
import { trackPageViews } from "./page-views.js";
import { browserStore, Queue, QUEUE_PREFIX, type QueuedEvent } from "./queue.js";
import { createSeen, type SeenClient } from "./seen.js";
import { call, INGEST_SERVICE, type Methods, retryable } from "./wire.js";

/** How {@link createFunnel} sends. Every option but `baseUrl` has a default. */
export interface FunnelOptions {
  /** Where Funnel's API answers, e.g. `https://events.example.com` (no trailing slash). */
  readonly baseUrl: string;
  /**
   * The signed-in user's access token, asked for before each request; null
   * (or no function) for an anonymous user. Events are attributed to the
   * token current when they are sent.
   */
  readonly token?: () => string | null | Promise<string | null>;
  /** Send as soon as this many events wait (default 20). */
  readonly batchSize?: number;
  /** Send at most this long after an event was tracked (default 1000 ms). */
  readonly flushIntervalMs?: number;
  /** Most events per `SendBatch` request, for a backlog (default 100). */
  readonly maxBatch?: number;
  /** Most events kept while they cannot be sent; past it the oldest are dropped and counted (default 1000). */
  readonly maxQueue?: number;
  /** First wait before a retry (default 500 ms); it doubles per failure, with full jitter. */
  readonly retryInitialMs?: number;
  /** Longest wait between retries (default 30 s). */
  readonly retryMaxMs?: number;
  /** Deadline of one request (default 10 s). */
  readonly timeoutMs?: number;
  /**
   * Automatic page views: `true` (default) on load and unload, `"spa"` also
   * on route changes through the history API, `false` for none.
   */
  readonly pageViews?: boolean | "spa";
  /** The `page_type` of automatic page views (default: the path, cut at 64 characters). */
  readonly pageType?: () => string;
  /**
   * Send cookies with events (default false), so the tracker pixel's
   * `user_id` cookie reaches the server, which records it as the events'
   * `anonymous_id`. The page's origin must then be listed by name in
   * `CORS_ALLOWED_ORIGINS` (a `*` answer refuses credentialed requests).
   */
  readonly credentials?: boolean;
  /** Called for each event the server rejected (it is not sent again). */
  readonly onReject?: (rejection: Rejection) => void;
}

/** An event the server refused, and why. */
export interface Rejection {
  readonly eventId: string;
  readonly type: string;
  /** The field and the rule it broke, e.g. `data.page_type: is required`. */
  readonly message: string;
}

/** What happened to the events of this page so far. */
export interface FunnelStats {
  /** Waiting to be sent, this session's and those taken over from closed pages. */
  readonly queued: number;
  /** Stored by the server. */
  readonly accepted: number;
  /** Answered as already stored (a resend after a lost answer or an unload). */
  readonly duplicates: number;
  /** Refused by the server (see `onReject`). */
  readonly rejected: number;
  /** Dropped because the queue was full. */
  readonly dropped: number;
  /** Requests that failed with `unavailable` or a network error and were retried. */
  readonly retries: number;
}

/** The SDK of one page. */
export interface Funnel {
  /**
   * Queues an event of `type` with its fields (checked at compile time
   * against the event's message in `ingest.proto`) and returns its
   * `event_id`. The event gets the session's next `seq` and the client time,
   * and is stored in the browser until the server has answered for it.
   */
  track<N extends EventName>(type: N, fields: EventTypes[N]): string;
  /** Sends what is queued now; resolves once the queue is empty (it keeps retrying while offline). */
  flush(): Promise<void>;
  /** Counters of this page's sending. */
  stats(): FunnelStats;
  /** Seen marks of the caller. */
  readonly seen: SeenClient;
  /** This browser's anonymous id, sent as `X-Funnel-Device-Id` to Seen. */
  readonly deviceId: string;
  /** This page's session: its events carry consecutive `seq` numbers from 1. */
  readonly sessionId: string;
}

/** The most a keepalive request may carry: browsers allow 64 KB in flight per page. */
const KEEPALIVE_BYTES = 60_000;

/**
 * Starts the SDK on this page: queues persisted in `localStorage`, batches
 * sent by `SendBatch` every `flushIntervalMs` or `batchSize` events, retried
 * with exponential backoff and jitter on `unavailable` and network errors
 * (never on a refusal), flushed with `keepalive` when the page is hidden, and
 * (unless `pageViews: false`) automatic page views.
 */
export function createFunnel(options: FunnelOptions): Funnel {
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const batchSize = options.batchSize ?? 20;
  const interval = options.flushIntervalMs ?? 1000;
  const maxBatch = options.maxBatch ?? 100;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const store = browserStore();
  const sessionId = uuid();
  const queue = new Queue(store, QUEUE_PREFIX + sessionId, options.maxQueue ?? 1000);
  const device = keptDeviceId(store);
  const counts = { accepted: 0, duplicates: 0, rejected: 0, retries: 0 };
  let seq = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let sending: Promise<void> | undefined;
  const wakers = new Set<() => void>();
  let token: string | null = null;
  /** The events of the keepalive request in flight, if any. */
  let hiding: string | undefined;

  const currentToken = async (): Promise<string | null> => (token = (await options.token?.()) ?? null);

  /** Waits before retry number `attempt`: a random time up to `initial × 2^attempt` (capped), cut short when the browser comes online. */
  const pause = (attempt: number): Promise<void> =>
    new Promise((resolve) => {
      const ceiling = Math.min(options.retryMaxMs ?? 30_000, (options.retryInitialMs ?? 500) * 2 ** attempt);
      const done = (): void => {
        wakers.delete(done);
        resolve();
      };
      wakers.add(done);
      setTimeout(done, Math.random() * ceiling);
    });

  /** One `SendBatch`; `keepalive` uses the last token, since the page may be gone before a fresh one arrives. */
  const send = async (events: QueuedEvent[], keepalive: boolean) => {
    const bearer = keepalive ? token : await currentToken();
    const body = { events: bearer === null ? events : events.map((event) => ({ ...event, token: bearer })) };
    const answer = await call<Methods<typeof IngestService>, "sendBatch">(baseUrl, INGEST_SERVICE, "sendBatch", body, { keepalive, timeoutMs, credentials: options.credentials === true });
    (answer.results ?? []).forEach((result, i) => {
      const event = events[i];
      if (result.status === "EVENT_STATUS_ACCEPTED") counts.accepted += 1;
      else if (result.status === "EVENT_STATUS_DUPLICATE") counts.duplicates += 1;
      else if (event !== undefined) reject(event, result.message ?? "rejected");
    });
    queue.remove(events);
  };

  const reject = (event: QueuedEvent, message: string): void => {
    counts.rejected += 1;
    options.onReject?.({ eventId: event.eventId, type: event.event ?? "", message });
  };

  /**
   * Sends the queue from its head until it is empty. Every request starts at
   * the oldest unanswered event, so the server never sees a session's `seq`
   * jump over one that is still on its way (no false gaps). A request refused
   * as a whole is split in halves until the event at fault is alone, and that
   * one is rejected.
   */
  const drain = async (): Promise<void> => {
    let limit = maxBatch;
    for (let attempt = 0; queue.events.length > 0; ) {
      const batch = queue.events.slice(0, limit);
      try {
        await send(batch, false);
        attempt = 0;
      } catch (error) {
        if (retryable(error)) {
          counts.retries += 1;
          await pause(attempt++);
        } else if (batch.length > 1) {
          limit = Math.ceil(batch.length / 2);
        } else if (batch[0] !== undefined) {
          queue.remove(batch);
          reject(batch[0], String(error));
        }
      }
    }
  };

  const flush = (): Promise<void> => {
    clearTimeout(timer);
    timer = undefined;
    return (sending ??= drain().finally(() => (sending = undefined)));
  };

  /**
   * The page may be gone in a moment: write the queue, and send its head in
   * one keepalive request of at most 64 KB (several would race each other and
   * share the same 64 KB). What does not fit stays stored for the next page.
   */
  const flushHidden = (): void => {
    queue.write();
    const batch: QueuedEvent[] = [];
    let bytes = 0;
    for (const event of queue.events) {
      bytes += new Blob([JSON.stringify(event), token ?? ""]).size + 16;
      if (bytes > KEEPALIVE_BYTES || batch.length >= maxBatch) break;
      batch.push(event);
    }
    // `visibilitychange` and `pagehide` both come when a page is left: one request for the same events is enough.
    const key = batch.map((event) => event.eventId).join();
    if (batch.length === 0 || key === hiding) return;
    hiding = key;
    send(batch, true)
      .catch(() => undefined)
      .finally(() => (hiding = undefined));
  };

  const track = <N extends EventName>(type: N, fields: EventTypes[N]): string => {
    const eventId = uuid();
    seq += 1;
    queue.add([{ event: type, data: fields, eventId, sessionId, seq, clientTime: new Date().toISOString() }]);
    if (queue.events.length >= batchSize) void flush();
    else timer ??= setTimeout(() => void flush(), interval);
    return eventId;
  };

  /** Takes over the queues of closed pages, and sends them. */
  const adopt = (): void =>
    void queue.adopt().then(() => {
      if (queue.events.length > 0) void flush();
    });

  queue.hold();
  adopt();
  void currentToken().catch(() => undefined);

  const views = options.pageViews === false ? undefined : trackPageViews(track, options.pageType ?? (() => location.pathname.slice(0, 64)), options.pageViews === "spa");
  addEventListener("pagehide", () => {
    views?.end();
    flushHidden();
    queue.release();
  });
  addEventListener("pageshow", (event) => {
    if (!event.persisted) return;
    queue.hold();
    views?.start();
  });
  addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") flushHidden();
    else adopt();
  });
  addEventListener("online", () => {
    for (const done of wakers) done();
    adopt();
  });

  const seen = createSeen({
    baseUrl,
    timeoutMs,
    store,
    pause,
    headers: async (): Promise<Record<string, string>> => {
      const bearer = await currentToken();
      return bearer === null ? { "x-funnel-device-id": device } : { authorization: `Bearer ${bearer}`, "x-funnel-device-id": device };
    },
  });

  return {
    track,
    flush,
    stats: () => ({ queued: queue.events.length, dropped: queue.dropped, ...counts }),
    seen,
    deviceId: device,
    sessionId,
  };
}
