import { isUuid } from "../core/validate.js";
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  AttemptSchema,
  DeliverySchema,
  DeliveryStatus,
  type Delivery,
  type DeliveryFilter as DeliveryFilterProto,
  DeliveryService,
} from "../../gen/funnel/postback/v1/delivery_pb.js";
import { EventKind } from "../../gen/funnel/postback/v1/partner_pb.js";
import type { Jobs } from "../core/jobs/jobs.js";
import { definePaging, isMicros } from "../core/paging.js";
import { DEFAULT_RETRY } from "./partner.js";
import type { PartnerDirectory } from "./partner-directory.js";
import { eventKind, eventName, methodProto } from "./partner-proto.js";
import { deliverQueue } from "./queue.js";
import type { AttemptRow, DeliveryFilter, DeliveryRepository, DeliveryRow, DeliveryStatusName } from "./delivery-repository.js";
import { withTransaction, type Pool } from "../core/postgres.js";

const STATUSES: Readonly<Record<DeliveryStatusName, DeliveryStatus>> = {
  pending: DeliveryStatus.PENDING,
  retrying: DeliveryStatus.RETRYING,
  delivered: DeliveryStatus.DELIVERED,
  dead: DeliveryStatus.DEAD,
  cancelled: DeliveryStatus.CANCELLED,
};
const invalid = (message: string): never => {
  throw new ConnectError(message, Code.InvalidArgument);
};

function filterFrom(filter: DeliveryFilterProto | undefined): DeliveryFilter {
  if (filter === undefined) return {};
  const status = (Object.keys(STATUSES) as DeliveryStatusName[]).find((name) => STATUSES[name] === filter.status);
  if (filter.status !== DeliveryStatus.UNSPECIFIED && status === undefined) invalid(`filter.status: unknown value ${filter.status}`);
  const event = eventName(filter.event);
  if (filter.event !== EventKind.UNSPECIFIED && event === undefined) invalid(`filter.event: unknown value ${filter.event}`);
  return {
    ...(filter.partnerId !== "" ? { partnerId: filter.partnerId } : {}),
    ...(event !== undefined ? { event } : {}),
    ...(status !== undefined ? { status } : {}),
    ...(filter.from !== undefined ? { from: timestampDate(filter.from) } : {}),
    ...(filter.to !== undefined ? { to: timestampDate(filter.to) } : {}),
    ...(filter.stag !== "" ? { stag: filter.stag } : {}),
  };
}

function requireIds(ids: readonly string[]): void {
  if (ids.length > 1_000) invalid("ids: at most 1,000 at once; use a filter for more");
  const bad = ids.find((id) => !isUuid(id));
  if (bad !== undefined) invalid(`ids: "${bad}" is not a delivery id (UUID)`);
}

/** Postbacks page newest first, after the (created_at, id) of the previous page's last one. */
const PAGES = definePaging({ method: DeliveryService.method.listDeliveries, sizeField: "limit", defaultSize: 50, key: [isMicros, isUuid] });

/** Implements `funnel.postback.v1.DeliveryService` (admin token). */
export function createDeliveryService(deps: { pool: Pool; repository: DeliveryRepository; directory: PartnerDirectory; jobs: Jobs }): ServiceImpl<typeof DeliveryService> {
  const { repository } = deps;
  const toProto = async (row: DeliveryRow, attempts: readonly AttemptRow[] = []): Promise<Delivery> => {
    const partner = await deps.directory.get(row.partnerId);
    return create(DeliverySchema, {
      id: row.id,
      partnerId: row.partnerId,
      event: eventKind(row.event),
      stag: row.stag,
      clickId: row.clickId,
      status: STATUSES[row.status],
      attempts: row.attempts,
      attemptLimit: row.attemptBase + (partner?.config.retry.maxAttempts ?? DEFAULT_RETRY.maxAttempts),
      lastHttpStatus: row.lastHttpStatus ?? 0,
      lastError: row.lastError ?? "",
      ...(row.nextAttemptAt !== null ? { nextAttemptAt: timestampFromDate(row.nextAttemptAt) } : {}),
      occurredAt: timestampFromDate(row.occurredAt),
      createdAt: timestampFromDate(row.createdAt),
      updatedAt: timestampFromDate(row.updatedAt),
      params: { ...row.params },
      userId: row.userId,
      deviceId: row.deviceId,
      attemptLog: attempts.map((a) =>
        create(AttemptSchema, {
          attempt: a.attempt,
          method: methodProto(a.method === "POST" ? "POST" : "GET"),
          url: a.url,
          httpStatus: a.httpStatus ?? 0,
          responseBody: new Uint8Array(a.responseBody),
          durationMs: a.durationMs,
          error: a.error,
          outcome: a.outcome,
          attemptedAt: timestampFromDate(a.attemptedAt),
        }),
      ),
    });
  };

  return {
    async listDeliveries(req) {
      const limit = PAGES.size(req.limit);
      const after = PAGES.after(req.pageToken, req.filter);
      const rows = await repository.listDeliveries(filterFrom(req.filter), limit + 1, after === undefined ? undefined : { createdUs: Number(after[0]), id: after[1] });
      const page = PAGES.page(rows, limit, (row) => [String(row.createdUs), row.id], req.filter);
      return { deliveries: await Promise.all(page.rows.map((row) => toProto(row))), nextPageToken: page.nextPageToken };
    },

    async getDelivery(req) {
      requireIds([req.id]);
      const [row] = await repository.getDeliveries([req.id]);
      if (row === undefined) throw new ConnectError(`id: no delivery ${req.id}`, Code.NotFound);
      return { delivery: await toProto(row, await repository.attemptsOf(row.id)) };
    },

    async redeliver(req) {
      let selection: Parameters<DeliveryRepository["replayDeliveries"]>[1];
      if (req.ids.length > 0) {
        requireIds(req.ids);
        selection = { ids: [...new Set(req.ids.map((id) => id.toLowerCase()))] };
      } else {
        const filter = filterFrom(req.filter);
        if (Object.keys(filter).length === 0) invalid("filter: give ids or at least one filter field (replaying everything is refused)");
        if (req.limit > 10_000) invalid("limit: at most 10,000");
        selection = { filter, limit: req.limit === 0 ? 10_000 : req.limit };
      }
      const replayed = await withTransaction(deps.pool, async (tx) => {
        const rows = await repository.replayDeliveries(tx, selection);
        await deps.jobs.sendMany(
          deliverQueue,
          rows.map((row) => ({ payload: { deliveryId: row.id, attempt: row.attempts + 1, replay: row.replay } })),
          { tx },
        );
        return rows.map((row) => row.id);
      });
      const found = new Set(replayed);
      return { redelivered: replayed, notFound: "ids" in selection ? selection.ids.filter((id) => !found.has(id)) : [] };
    },
  };
}
