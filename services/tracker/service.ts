import { isUuid } from "../core/validate.js";
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { DayCountSchema, TrackerSchema, type Tracker, type TrackerService } from "../../gen/funnel/tracker/v1/tracker_pb.js";
import type { ClickHouse } from "../core/clickhouse.js";
import { checkText } from "../core/text.js";
import type { TrackerCache } from "./cache.js";
import type { TrackerRepository, TrackerRow } from "./repository.js";
import { countHits, parseRange, RangeParameterError } from "./stats.js";

export interface TrackerServiceDeps {
  readonly repository: TrackerRepository;
  readonly cache: TrackerCache;
  readonly clickhouse: ClickHouse;
}

const MAX_VALUE = 1_000;
const DEFAULT_PAGE = 100;
const MAX_PAGE = 1_000;

const toTracker = (row: TrackerRow): Tracker =>
  create(TrackerSchema, { uuid: row.uuid, value: row.value, createdAt: timestampFromDate(row.createdAt), updatedAt: timestampFromDate(row.updatedAt) });

function requireUuid(field: string, value: string): string {
  if (value === "") throw new ConnectError(`${field}: required`, Code.InvalidArgument);
  if (!isUuid(value)) throw new ConnectError(`${field}: "${value.slice(0, 64)}" is not a UUID`, Code.InvalidArgument);
  return value.toLowerCase();
}

function requireValue(value: string): string {
  if (value === "") throw new ConnectError("value: required", Code.InvalidArgument);
  if ([...value].length > MAX_VALUE) throw new ConnectError(`value: longer than ${MAX_VALUE} characters`, Code.InvalidArgument);
  checkText(value, "value");
  return value;
}

/** Page tokens name the last tracker of the previous page. */
const encodeToken = (uuid: string): string => Buffer.from(`after:${uuid}`).toString("base64url");
function decodeToken(token: string): string | undefined {
  if (token === "") return undefined;
  const match = /^after:(.+)$/.exec(Buffer.from(token, "base64url").toString("utf8"));
  if (match?.[1] === undefined || !isUuid(match[1])) {
    throw new ConnectError("page_token: not a token from a previous page", Code.InvalidArgument);
  }
  return match[1];
}

/** The TrackerService: trackers in Postgres, hit counts from ClickHouse. */
export function createTrackerService(deps: TrackerServiceDeps): ServiceImpl<typeof TrackerService> {
  const { repository, cache, clickhouse } = deps;
  return {
    async createTracker(req) {
      const row = await repository.insert(randomUUID(), requireValue(req.value));
      cache.put(row);
      return { tracker: toTracker(row) };
    },

    async getTracker(req) {
      const uuid = requireUuid("uuid", req.uuid);
      const row = await repository.get(uuid);
      if (row === undefined) throw new ConnectError(`uuid: no tracker ${uuid}`, Code.NotFound);
      return { tracker: toTracker(row) };
    },

    async listTrackers(req) {
      if (req.pageSize < 0 || req.pageSize > MAX_PAGE) {
        throw new ConnectError(`page_size: must be from 1 to ${MAX_PAGE} (0 means ${DEFAULT_PAGE})`, Code.InvalidArgument);
      }
      const size = req.pageSize === 0 ? DEFAULT_PAGE : req.pageSize;
      const rows = await repository.page(size + 1, decodeToken(req.pageToken));
      const page = rows.slice(0, size);
      const last = page.at(-1);
      return { trackers: page.map(toTracker), nextPageToken: rows.length > size && last !== undefined ? encodeToken(last.uuid) : "" };
    },

    async updateTracker(req) {
      const uuid = requireUuid("uuid", req.uuid);
      const row = await repository.updateValue(uuid, requireValue(req.value));
      if (row === undefined) throw new ConnectError(`uuid: no tracker ${uuid}`, Code.NotFound);
      cache.put(row);
      return { tracker: toTracker(row) };
    },

    async getStats(req, context) {
      const trackerId = requireUuid("tracker_id", req.trackerId);
      let range;
      try {
        range = parseRange(req.from, req.to);
      } catch (error) {
        if (error instanceof RangeParameterError) throw new ConnectError(error.message, Code.InvalidArgument);
        throw error;
      }
      if ((await cache.lookup(trackerId)) === undefined) throw new ConnectError(`tracker_id: no tracker ${trackerId}`, Code.NotFound);
      const { total, days } = await countHits(clickhouse, trackerId, range, context.signal);
      return {
        trackerId,
        from: req.from,
        to: req.to,
        count: BigInt(total),
        days: days.map((day) => create(DayCountSchema, { date: day.date, count: BigInt(day.count) })),
      };
    },
  };
}
