import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { FeedMessageSchema, type FeedMessage, type SeenFeedService } from "../../gen/funnel/seen/v1/feed_pb.js";
import type pg from "pg";
import { Listener } from "../core/listener.js";
import type { Logger } from "../core/logger.js";
import type { SeenIdentity } from "./identity.js";
import type { SeenMetrics } from "./metrics.js";
import { ack, consumerPosition, readTopic, START, topicExists, TOPICS_CHANNEL, type Position, type TopicMessageRow } from "./sql/topics.js";
import { requireBearerToken } from "../core/auth.js";
import { identityToMessage } from "./service.js";
import { requireConsumer, requireTopic } from "./validation.js";

/** Messages read per query. */
const BATCH = 500;
const CURSOR = /^(\d{1,20})\.(\d{1,19})$/;

const cursorOf = (position: Position): string => `${position.txId}.${position.seq}`;

function parseCursor(cursor: string): Position {
  const match = CURSOR.exec(cursor);
  if (match?.[1] === undefined || match[2] === undefined) throw new ConnectError("cursor: not a cursor from a feed message", Code.InvalidArgument);
  return { txId: match[1], seq: match[2] };
}

const text = (value: unknown): string => (typeof value === "string" ? value : "");

/** The identity of a stored topic message (the delivered ids only). */
function storedIdentity(row: TopicMessageRow): SeenIdentity {
  const ids = row.identity;
  switch (row.kind) {
    case "client":
      return {
        kind: "client",
        userId: text(ids.user_id),
        uid: text(ids.uid),
        boundUids: Array.isArray(ids.bound_uids) ? ids.bound_uids.map(text) : [],
        phoneId: text(ids.phone_id),
      };
    case "driver":
      return { kind: "driver", dbId: text(ids.db_id), uuid: text(ids.uuid) };
    case "unauthorized":
      return { kind: "unauthorized", deviceId: "" };
  }
}

function toFeedMessage(topic: string, row: TopicMessageRow): FeedMessage {
  return create(FeedMessageSchema, {
    cursor: cursorOf(row),
    messageId: row.messageId,
    topic,
    tag: row.tag,
    id: row.itemId,
    seenAt: timestampFromDate(row.seenAt),
    identity: identityToMessage(storedIdentity(row)),
  });
}

/**
 * Wakes subscribers when their topic gets messages: one LISTEN connection
 * per process, NOTIFY as the hint, a periodic re-read as the truth.
 */
export class TopicWaker {
  readonly #waiters = new Map<string, Set<() => void>>();
  readonly #listener: Listener;
  readonly #closing = new AbortController();

  constructor(options: { url: string; log: Logger }) {
    this.#listener = new Listener({
      url: options.url,
      channels: [TOPICS_CHANNEL],
      name: "funnel-seen-topics-listen",
      log: options.log,
      onNotification: (_channel, topic) => this.#wake(topic),
      // Messages committed while nobody listened: everyone reads again.
      onConnect: () => {
        for (const topic of [...this.#waiters.keys()]) this.#wake(topic);
      },
    });
  }

  /** Aborted when the process begins to stop: subscriptions end. */
  get closing(): AbortSignal {
    return this.#closing.signal;
  }

  start(): Promise<void> {
    return this.#listener.start();
  }

  /** Ends every subscription (shutdown). */
  close(): void {
    this.#closing.abort();
  }

  async stop(): Promise<void> {
    this.close();
    await this.#listener.stop();
  }

  /**
   * A promise that resolves at the topic's next notification, after
   * `timeoutMs`, or when `signal` aborts. Taken before reading, so a
   * notification that arrives during the read is not missed.
   */
  next(topic: string, timeoutMs: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const waiters = this.#waiters.get(topic) ?? new Set<() => void>();
      this.#waiters.set(topic, waiters);
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        waiters.delete(done);
        if (waiters.size === 0 && this.#waiters.get(topic) === waiters) this.#waiters.delete(topic);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      signal.addEventListener("abort", done, { once: true });
      waiters.add(done);
    });
  }

  #wake(topic: string): void {
    for (const done of [...(this.#waiters.get(topic) ?? [])]) done();
  }
}

export interface FeedServiceDeps {
  readonly pool: pg.Pool;
  readonly waker: TopicWaker;
  readonly metrics: SeenMetrics;
  readonly serviceTokens: readonly string[];
  /** Re-read period when no notification comes (NOTIFY is only a hint). */
  readonly pollMs: number;
}

/** The SeenFeedService: topic messages streamed from each consumer's acknowledged position. */
export function createFeedService(deps: FeedServiceDeps): ServiceImpl<typeof SeenFeedService> {
  const { pool, waker, metrics } = deps;
  return {
    async *subscribe(req, context) {
      requireBearerToken(context.requestHeader, deps.serviceTokens, "service");
      const topic = requireTopic(req.topic);
      const consumer = requireConsumer(req.consumer);
      if (!(await topicExists(pool, topic))) throw new ConnectError(`topic: no integration delivers to "${topic}"`, Code.NotFound);
      const signal = AbortSignal.any([context.signal, waker.closing]);
      let position = (await consumerPosition(pool, topic, consumer)) ?? START;
      while (!signal.aborted) {
        const woken = waker.next(topic, deps.pollMs, signal);
        const rows = await readTopic(pool, topic, position, BATCH);
        for (const row of rows) {
          if (signal.aborted) return;
          yield { message: toFeedMessage(topic, row) };
          metrics.feedMessages.inc({ topic });
          position = row;
        }
        if (rows.length < BATCH) await woken;
      }
    },

    async ack(req, context) {
      requireBearerToken(context.requestHeader, deps.serviceTokens, "service");
      const topic = requireTopic(req.topic);
      const consumer = requireConsumer(req.consumer);
      const position = await ack(pool, topic, consumer, parseCursor(req.cursor));
      return { cursor: cursorOf(position) };
    },
  };
}
