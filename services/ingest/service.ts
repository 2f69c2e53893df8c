import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type pg from "pg";
import {
  type Event,
  type EventResult,
  EventResultSchema,
  EventSchema,
  EventStatus,
  type IngestService,
  RejectReason,
} from "../../gen/funnel/ingest/v1/ingest_pb.js";
import { DAY_MS, dayOf, parseDay, startOfDay } from "../core/day.js";
import type { Identity, IdentityResolver } from "../core/identity/index.js";
import { qualityRows, rejectedCounter } from "./quality.js";
import type { EventTypes } from "./registry.js";
import { userIdCookie } from "../tracker/pixel.js";
import { readCounters } from "./store.js";
import { acceptEvent, type CheckedEvent, checkEvent, RejectedEvent } from "./validation.js";
import type { AcceptedEvent, IngestWriter, WriteOutcome } from "./writer.js";

export interface IngestLimits {
  readonly maxEventBytes: number;
  readonly maxBatchBytes: number;
  readonly maxBatchEvents: number;
}

export interface IngestDeps {
  readonly types: EventTypes;
  readonly identity: IdentityResolver;
  readonly writer: IngestWriter;
  readonly pool: pg.Pool;
  readonly limits: IngestLimits;
  /**
   * The origins listed by name in CORS_ALLOWED_ORIGINS: the pages allowed to
   * send credentials, so the only ones whose tracker cookie is recorded.
   */
  readonly credentialedOrigins: ReadonlySet<string>;
}


const statusOf = (outcome: WriteOutcome): EventStatus => (outcome === "accepted" ? EventStatus.ACCEPTED : EventStatus.DUPLICATE);

/** The request's body size when the client declared it (Connect and gRPC-Web over HTTP/1.1 do). */
function declaredSize(context: HandlerContext): number | undefined {
  const length = context.requestHeader.get("content-length");
  return length !== null && /^\d+$/.test(length) ? Number(length) : undefined;
}

/**
 * The tracker pixel's `user_id` cookie of the browser calling, when it calls
 * from an origin allowed to send credentials. Anything else (no cookie, a
 * value that is not one of the tracker's ids, another origin, a caller that
 * is no browser) is no id: never an error.
 */
function anonymousIdOf(context: HandlerContext, origins: ReadonlySet<string>): string | undefined {
  const origin = context.requestHeader.get("origin");
  if (origin === null || !origins.has(origin)) return undefined;
  return userIdCookie(context.requestHeader.get("cookie") ?? undefined);
}

/** The first millisecond of the day in request field `field`; InvalidArgument naming it when it is not a day. */
function dayField(value: string, field: string): number {
  const start = parseDay(value);
  if (start === undefined) throw new ConnectError(`${field}: must be a day as YYYY-MM-DD, got ${JSON.stringify(value)}`, Code.InvalidArgument);
  return start;
}

/** Implements `funnel.ingest.v1.IngestService`. */
export function createIngestService(deps: IngestDeps): ServiceImpl<typeof IngestService> {
  const { types, identity, writer, limits } = deps;

  /** Counts a rejection. */
  const counted = (error: RejectedEvent): RejectedEvent => {
    writer.countRejected(error.eventType, rejectedCounter(error.reason));
    return error;
  };

  /** Resolves a token; an invalid one becomes a rejection of this event. */
  async function identify(checked: CheckedEvent, token: string | undefined, signal: AbortSignal): Promise<Identity> {
    try {
      return await identity.resolve(token, signal);
    } catch (error) {
      if (error instanceof ConnectError && error.code === Code.Unauthenticated) {
        throw new RejectedEvent(error.rawMessage, Code.Unauthenticated, RejectReason.UNAUTHENTICATED, checked.type.name);
      }
      throw error;
    }
  }

  return {
    async send(event, context) {
      const size = declaredSize(context) ?? toBinary(EventSchema, event).byteLength;
      let checked: CheckedEvent;
      let who: Identity;
      try {
        checked = checkEvent(event, types, size, limits.maxEventBytes);
        who = await identify(checked, event.token, context.signal);
      } catch (error) {
        throw error instanceof RejectedEvent ? counted(error).toConnectError() : error;
      }
      const accepted = acceptEvent(checked, who.userId, new Date(), anonymousIdOf(context, deps.credentialedOrigins));
      const [outcome] = await writer.write([accepted]);
      return { eventId: accepted.eventId, status: statusOf(outcome ?? "accepted") };
    },

    async sendBatch(request, context) {
      const total = declaredSize(context);
      if (total !== undefined && total > limits.maxBatchBytes) {
        throw new ConnectError(`request: ${total} bytes is over the limit of ${limits.maxBatchBytes} bytes per batch`, Code.InvalidArgument);
      }
      if (request.events.length > limits.maxBatchEvents) {
        throw new ConnectError(`events: ${request.events.length} events is over the limit of ${limits.maxBatchEvents} per batch`, Code.InvalidArgument);
      }
      // When the whole body fits the per-event limit, so does every event: no need to measure each.
      const measure = total !== undefined && total <= limits.maxEventBytes ? () => 0 : (event: Event) => toBinary(EventSchema, event).byteLength;
      const results: EventResult[] = new Array<EventResult>(request.events.length);
      const reject = (index: number, error: RejectedEvent) => {
        counted(error);
        results[index] = create(EventResultSchema, { status: EventStatus.REJECTED, reason: error.reason, message: error.message });
      };

      const checked: { index: number; event: Event; checked: CheckedEvent }[] = [];
      for (const [index, event] of request.events.entries()) {
        try {
          checked.push({ index, event, checked: checkEvent(event, types, measure(event), limits.maxEventBytes) });
        } catch (error) {
          if (!(error instanceof RejectedEvent)) throw error;
          reject(index, error);
        }
      }
      // Each distinct token is resolved once; an unavailable identity check fails the whole call.
      const distinct = [...new Set(checked.map(({ event }) => event.token ?? ""))];
      const settled = await Promise.all(distinct.map((token) => identity.resolve(token, context.signal).catch((error: unknown) => ({ error }))));
      const identities = new Map(distinct.map((token, i) => [token, settled[i]]));
      const now = new Date();
      const anonymousId = anonymousIdOf(context, deps.credentialedOrigins);
      const accepted: AcceptedEvent[] = [];
      const positions: number[] = [];
      for (const item of checked) {
        const who = identities.get(item.event.token ?? "");
        if (who === undefined || "error" in who) {
          const error = who?.error;
          if (!(error instanceof ConnectError) || error.code !== Code.Unauthenticated) throw error;
          reject(item.index, new RejectedEvent(error.rawMessage, Code.Unauthenticated, RejectReason.UNAUTHENTICATED, item.checked.type.name));
          continue;
        }
        accepted.push(acceptEvent(item.checked, who.userId, now, anonymousId));
        positions.push(item.index);
      }
      const outcomes = await writer.write(accepted);
      outcomes.forEach((outcome, i) => {
        results[positions[i] as number] = create(EventResultSchema, { eventId: accepted[i]?.eventId ?? "", status: statusOf(outcome) });
      });
      return {
        results,
        accepted: outcomes.filter((outcome) => outcome === "accepted").length,
        duplicates: outcomes.filter((outcome) => outcome === "duplicate").length,
        rejected: results.filter((result) => result.status === EventStatus.REJECTED).length,
      };
    },

    async getQuality(request) {
      const to = request.to === "" ? startOfDay(Date.now()) : dayField(request.to, "to");
      const from = request.from === "" ? to - 6 * DAY_MS : dayField(request.from, "from");
      if (from > to) throw new ConnectError("from: must not be after to", Code.InvalidArgument);
      if (to - from > 366 * DAY_MS) throw new ConnectError("from: the range may span at most 366 days", Code.InvalidArgument);
      return { rows: qualityRows(await readCounters(deps.pool, dayOf(from), dayOf(to))) };
    },
  };
}
