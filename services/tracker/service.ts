import { isUuid } from "../core/validate.js";
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { DayCountSchema, TrackerSchema, type Tracker, TrackerService } from "../../gen/funnel/tracker/v1/tracker_pb.js";
import type { ClickHouse } from "../core/clickhouse.js";
import { definePaging } from "../core/paging.js";
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

/** Trackers page oldest first, after the uuid of the previous page's last tracker. */
const PAGES = definePaging({ method: TrackerService.method.listTrackers, sizeField: "page_size", defaultSize: 100, key: [isUuid] });

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
      const size = PAGES.size(req.pageSize);
      const rows = await repository.page(size + 1, PAGES.after(req.pageToken)?.[0]);
      const page = PAGES.page(rows, size, (row) => [row.uuid]);
      return { trackers: page.rows.map(toTracker), nextPageToken: page.nextPageToken };
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
