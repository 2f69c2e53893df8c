import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  IdentitySchema,
  MarkSchema,
  MarkSeenResponseSchema,
  SeenItemSchema,
  type Identity as IdentityMessage,
  type MarkSeenResponse,
  SeenService,
} from "../../gen/funnel/seen/v1/seen_pb.js";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type pg from "pg";
import { requireBearerToken } from "../core/auth.js";
import { isStoreUnavailable } from "../core/errors.js";
import { peerAddressKey } from "../core/http-server.js";
import { definePaging, isIsoTime } from "../core/paging.js";
import { isUuid } from "../core/validate.js";
import { identityKey, type CallerIdentity, type CallerRequest, type SeenIdentity } from "./identity.js";
import type { Marker } from "./marker.js";
import type { SeenMetrics } from "./metrics.js";
import { firstSeen, listMarks, lookupMarks, type MarkResult } from "./sql/marks.js";
import { requireItemId, requireTag } from "./validation.js";

export interface SeenServiceDeps {
  readonly pool: pg.Pool;
  readonly mark: Marker;
  readonly caller: CallerIdentity;
  readonly metrics: SeenMetrics;
  /** Bearer tokens accepted by service methods (LookupSeen, the feed): admin and SEEN_SERVICE_TOKEN. */
  readonly serviceTokens: readonly string[];
  readonly defaultRetentionSeconds: number;
}

const MAX_LOOKUP_IDS = 1_000;

/** The API form of an identity. */
export function identityToMessage(identity: SeenIdentity): IdentityMessage {
  switch (identity.kind) {
    case "client":
      return create(IdentitySchema, {
        kind: {
          case: "client",
          value: { userId: identity.userId, uid: identity.uid, boundUids: [...identity.boundUids], phoneId: identity.phoneId },
        },
      });
    case "driver":
      return create(IdentitySchema, { kind: { case: "driver", value: { dbId: identity.dbId, uuid: identity.uuid } } });
    case "unauthorized":
      return create(IdentitySchema, { kind: { case: "unauthorized", value: { deviceId: identity.deviceId } } });
  }
}

/** The key fields of an identity named by a service (LookupSeen). */
function identityFromMessage(message: IdentityMessage | undefined): SeenIdentity {
  const kind = message?.kind;
  const required = (value: string, field: string): string => {
    if (value === "") throw new ConnectError(`identity.${field}: required`, Code.InvalidArgument);
    return value;
  };
  switch (kind?.case) {
    case "client":
      return { kind: "client", userId: required(kind.value.userId, "client.user_id"), uid: "", boundUids: [], phoneId: "" };
    case "driver":
      return { kind: "driver", dbId: required(kind.value.dbId, "driver.db_id"), uuid: required(kind.value.uuid, "driver.uuid") };
    case "unauthorized":
      return { kind: "unauthorized", deviceId: kind.value.deviceId };
    default:
      throw new ConnectError("identity: one of client, driver or unauthorized is required", Code.InvalidArgument);
  }
}

/** The caller facts of an RPC. */
function callerRequest(context: HandlerContext): CallerRequest {
  return {
    authorization: context.requestHeader.get("authorization") ?? undefined,
    header: (name) => context.requestHeader.get(name) ?? undefined,
    peer: context.values.get(peerAddressKey),
  };
}

/** The metric label of a MarkSeen failure. */
export function failureResult(error: unknown): string {
  if (error instanceof ConnectError) return codeToString(error.code);
  return isStoreUnavailable(error) ? "unavailable" : "internal";
}

/** The response of a stored mark. */
export function markResponse(result: MarkResult, identity: SeenIdentity): MarkSeenResponse {
  return create(MarkSeenResponseSchema, { created: result.created, firstSeenAt: timestampFromDate(result.firstSeenAt), identity: identityToMessage(identity) });
}

/** Marks page oldest first, after the (first_seen_at, id) of the previous page's last mark. */
const PAGES = definePaging({ method: SeenService.method.listSeen, sizeField: "page_size", defaultSize: 100, key: [isIsoTime, isUuid] });

/** The SeenService: marks of the calling identity, and lookups for services. */
export function createSeenService(deps: SeenServiceDeps): ServiceImpl<typeof SeenService> {
  const { pool, caller, metrics } = deps;
  return {
    async markSeen(req, context) {
      try {
        const tag = requireTag(req.tag);
        const itemId = requireItemId(req.id);
        const identity = await caller(callerRequest(context), context.signal);
        const result = await deps.mark(identity, tag, itemId);
        metrics.requests.inc({ result: "ok" });
        return markResponse(result, identity);
      } catch (error) {
        metrics.requests.inc({ result: failureResult(error) });
        throw error;
      }
    },

    async isSeen(req, context) {
      const tag = requireTag(req.tag);
      const itemId = requireItemId(req.id);
      const identity = await caller(callerRequest(context), context.signal);
      const at = await firstSeen(pool, identityKey(identity), tag, itemId, deps.defaultRetentionSeconds);
      return at === undefined ? { seen: false } : { seen: true, firstSeenAt: timestampFromDate(at) };
    },

    async listSeen(req, context) {
      const tag = req.tag === "" ? undefined : requireTag(req.tag);
      const size = PAGES.size(req.pageSize);
      const filters = [tag ?? "", req.since ?? null];
      const token = PAGES.after(req.pageToken, filters);
      const after = token === undefined ? undefined : { at: new Date(token[0]), id: token[1] };
      const identity = await caller(callerRequest(context), context.signal);
      const rows = await listMarks(
        pool,
        identityKey(identity),
        { tag, since: req.since === undefined ? undefined : timestampDate(req.since), after },
        size + 1,
        deps.defaultRetentionSeconds,
      );
      const page = PAGES.page(rows, size, (row) => [row.firstSeenAt.toISOString(), row.id], filters);
      return {
        marks: page.rows.map((row) =>
          create(MarkSchema, { tag: row.tag, id: row.itemId, firstSeenAt: timestampFromDate(row.firstSeenAt), expiresAt: timestampFromDate(row.expiresAt) }),
        ),
        nextPageToken: page.nextPageToken,
      };
    },

    async lookupSeen(req, context) {
      requireBearerToken(context.requestHeader, deps.serviceTokens, "service");
      const identity = identityFromMessage(req.identity);
      const tag = requireTag(req.tag);
      if (req.ids.length === 0) throw new ConnectError("ids: at least one id is required", Code.InvalidArgument);
      if (req.ids.length > MAX_LOOKUP_IDS) throw new ConnectError(`ids: at most ${MAX_LOOKUP_IDS} per call`, Code.InvalidArgument);
      const ids = req.ids.map((id, i) => requireItemId(id, `ids[${i}]`));
      const rows = await lookupMarks(pool, identityKey(identity), tag, ids, deps.defaultRetentionSeconds);
      return { items: rows.map((row) => create(SeenItemSchema, { id: row.itemId, firstSeenAt: timestampFromDate(row.firstSeenAt) })) };
    },
  };
}
