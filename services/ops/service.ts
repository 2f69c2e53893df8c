import { isUuid } from "../core/validate.js";
import { create, fromJson, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { durationFromMs, durationMs, timestampDate, timestampFromDate, ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type pg from "pg";
import {
  JobSchema,
  OpsService,
  QueueStatusSchema,
  StoreStatusSchema,
  AnalyticsStatusSchema,
  Metric,
  SeriesSchema,
  type GetTimeSeriesRequest,
  type Job,
} from "../../gen/funnel/ops/v1/ops_pb.js";
import type { ClickHouse } from "../core/clickhouse.js";
import type { Readiness, StoreProbe } from "../core/health.js";
import { definePaging, isMicros } from "../core/paging.js";
import type { JobRecord, Jobs } from "../core/jobs/jobs.js";
import { version } from "../core/version.js";
import { eventTypes } from "../ingest/registry.js";
import { createAnalyticsQuery } from "./analytics-query.js";
import { countSeries, type SeriesQuery } from "./time-series.js";

export interface OpsDeps {
  readonly pool: pg.Pool;
  readonly clickhouse: ClickHouse;
  /** The process's readiness probe: GetStatus reports what `/readyz` answers by. */
  readonly readiness: Readiness;
  readonly jobs: Jobs;
  readonly roles: readonly string[];
  readonly startedAt: number;
  /** Backlog of the analytics stream, when the process has one. */
  readonly analyticsBacklog?: () => Promise<{ rows: number; lagSeconds: number }>;
}

const JOB_STATES = new Set(["created", "retry", "active", "completed", "cancelled", "failed"]);
const storeStatus = (probe: StoreProbe) => create(StoreStatusSchema, probe);
/** Jobs page newest first, after the (created_on, id) of the previous page's last job. */
const JOB_PAGES = definePaging({ method: OpsService.method.listJobs, sizeField: "limit", defaultSize: 50, key: [isMicros, isUuid] });

function toJob(record: JobRecord, history?: readonly { attempt: number; error: string; failedAt: Date }[]): Job {
  const asObject = (value: unknown): JsonObject | undefined =>
    value !== null && typeof value === "object" && !Array.isArray(value) ? (value as JsonObject) : undefined;
  const output = asObject(record.output) ?? (record.output === null || record.output === undefined ? undefined : { value: record.output as never });
  const withHistory =
    history !== undefined && history.length > 0
      ? { ...output, history: history.map((entry) => ({ attempt: entry.attempt, error: entry.error, failed_at: entry.failedAt.toISOString() })) }
      : output;
  return create(JobSchema, {
    id: record.id,
    queue: record.queue,
    state: record.state,
    retryCount: record.retryCount,
    retryLimit: record.retryLimit,
    createdAt: timestampFromDate(record.createdOn),
    ...(record.startedOn !== null ? { startedAt: timestampFromDate(record.startedOn) } : {}),
    ...(record.completedOn !== null ? { completedAt: timestampFromDate(record.completedOn) } : {}),
    ...(asObject(record.data) !== undefined ? { data: asObject(record.data) } : {}),
    ...(withHistory !== undefined ? { output: withHistory } : {}),
    groupId: record.groupId ?? "",
    sourceQueue: record.sourceName ?? "",
    sourceId: record.sourceId ?? "",
  });
}

function requireIds(ids: readonly string[]): void {
  if (ids.length === 0) throw new ConnectError("ids: at least one job id is required", Code.InvalidArgument);
  const bad = ids.find((id) => !isUuid(id));
  if (bad !== undefined) throw new ConnectError(`ids: "${bad}" is not a job id (UUID)`, Code.InvalidArgument);
}

function requireKnownQueue(jobs: Jobs, queue: string, field = "queue"): void {
  if (queue !== "" && !jobs.queueNames().includes(queue)) {
    throw new ConnectError(`${field}: unknown queue "${queue}"`, Code.InvalidArgument);
  }
}

/** Refuses to retry or redrive jobs of a queue whose work is replayed another way. */
function requireRedrivable(jobs: Jobs, queue: string, what: string): void {
  const source = queue.replace(/\.dead$/, "");
  const hint = jobs.queueNames().includes(source) ? jobs.queue(source).replayInstead : undefined;
  if (hint !== undefined) {
    throw new ConnectError(`${what}: jobs of ${source} are not retried or redriven, their work has moved on and they would do nothing; replay it with ${hint}`, Code.FailedPrecondition);
  }
}

const MAX_BUCKETS = 10_080;
const MAX_STEP_SECONDS = 31 * 86_400;
/** ClickHouse's DateTime64 reaches from 1900 to 2299; before the epoch nothing is stored. */
const EARLIEST = Date.UTC(1970, 0, 1);
const LATEST = Date.UTC(2300, 0, 1);
const POSTBACK_METRICS = new Set([Metric.POSTBACK_ATTEMPTS, Metric.POSTBACK_EVENTS]);

/** Validates a GetTimeSeries request, filling in the defaults. */
function seriesQuery(req: GetTimeSeriesRequest): SeriesQuery {
  const invalid = (message: string): never => {
    throw new ConnectError(message, Code.InvalidArgument);
  };
  if (req.metric === Metric.UNSPECIFIED) invalid("metric: required");
  if (Metric[req.metric] === undefined) invalid(`metric: unknown value ${req.metric}`);
  const to = req.to !== undefined ? timestampDate(req.to) : new Date();
  const from = req.from !== undefined ? timestampDate(req.from) : new Date(to.getTime() - 3_600_000);
  for (const [field, at] of [["from", from], ["to", to]] as const) {
    if (!(at.getTime() >= EARLIEST && at.getTime() <= LATEST)) invalid(`${field}: must lie between 1970 and 2299`);
  }
  if (from >= to) invalid("from: must be before to");
  let stepSeconds = 60;
  if (req.step !== undefined) {
    const ms = durationMs(req.step);
    if (req.step.nanos !== 0 || ms < 1_000 || ms > MAX_STEP_SECONDS * 1000) invalid("step: must be whole seconds, from 1 s to 31 days");
    stepSeconds = ms / 1000;
  }
  if (req.metric === Metric.INGEST_REJECTED && stepSeconds % 86_400 !== 0) invalid("step: METRIC_INGEST_REJECTED is counted per UTC day, so step must be a whole number of days");
  const buckets = Math.floor((to.getTime() - 1) / 1000 / stepSeconds) - Math.floor(from.getTime() / 1000 / stepSeconds) + 1;
  if (buckets > MAX_BUCKETS) invalid(`step: the range holds ${buckets} buckets of ${stepSeconds} s, at most ${MAX_BUCKETS}; take a longer step or a shorter range`);
  const only = (field: string, value: string, applies: boolean, what: string) => {
    if (value !== "" && !applies) invalid(`${field}: filters ${what} only`);
  };
  only("partner_id", req.partnerId, POSTBACK_METRICS.has(req.metric), "METRIC_POSTBACK_ATTEMPTS and METRIC_POSTBACK_EVENTS");
  only("integration", req.integration, req.metric === Metric.SEEN_ATTEMPTS, "METRIC_SEEN_ATTEMPTS");
  only("tracker_id", req.trackerId, req.metric === Metric.TRACKER_HITS, "METRIC_TRACKER_HITS");
  only("event_type", req.eventType, req.metric === Metric.INGEST_EVENTS || req.metric === Metric.INGEST_REJECTED, "METRIC_INGEST_EVENTS and METRIC_INGEST_REJECTED");
  if (req.partnerId.length > 64) invalid("partner_id: at most 64 characters");
  if (req.integration.length > 63) invalid("integration: at most 63 characters");
  if (req.trackerId !== "" && !isUuid(req.trackerId)) invalid("tracker_id: must be a UUID");
  if (req.eventType !== "" && !eventTypes.has(req.eventType)) invalid(`event_type: one of ${[...eventTypes.keys()].join(", ")}`);
  return { metric: req.metric, from, to, stepSeconds, partnerId: req.partnerId, integration: req.integration, trackerId: req.trackerId, eventType: req.eventType };
}

/** Implements `funnel.ops.v1.OpsService` over the runtime's stores and jobs. */
export function createOpsService(deps: OpsDeps): ServiceImpl<typeof OpsService> {
  const analyticsQuery = createAnalyticsQuery(deps.clickhouse);
  return {
    async getStatus() {
      const [{ postgres, clickhouse }, queues, backlog] = await Promise.all([
        deps.readiness.check(),
        deps.jobs.counts().catch(() => []),
        deps.analyticsBacklog?.().catch(() => undefined),
      ]);
      return {
        version,
        uptimeSeconds: (Date.now() - deps.startedAt) / 1000,
        postgres: storeStatus(postgres),
        clickhouse: storeStatus(clickhouse),
        queues: queues.map((queue) => create(QueueStatusSchema, { ...queue, queued: BigInt(queue.queued), active: BigInt(queue.active), retrying: BigInt(queue.retrying), failed: BigInt(queue.failed), dead: BigInt(queue.dead) })),
        roles: [...deps.roles],
        ...(backlog !== undefined
          ? { analytics: create(AnalyticsStatusSchema, { backlogRows: BigInt(backlog.rows), lagSeconds: backlog.lagSeconds }) }
          : {}),
      };
    },

    async listJobs(req) {
      const state = req.state === "" ? "failed" : req.state;
      if (!JOB_STATES.has(state)) {
        throw new ConnectError(`state: must be one of ${[...JOB_STATES].join(", ")}, got "${req.state}"`, Code.InvalidArgument);
      }
      const limit = JOB_PAGES.size(req.limit);
      requireKnownQueue(deps.jobs, req.queue);
      const filters = [req.queue, state];
      const after = JOB_PAGES.after(req.pageToken, filters);
      const jobs = await deps.jobs.list(req.queue, state, limit + 1, after === undefined ? undefined : { createdUs: after[0], id: after[1] });
      const page = JOB_PAGES.page(jobs, limit, (job) => [job.createdUs, job.id], filters);
      return { jobs: page.rows.map((job) => toJob(job)), nextPageToken: page.nextPageToken };
    },

    async getJob(req) {
      requireIds([req.id]);
      const job = await deps.jobs.get(req.id);
      if (job === null) throw new ConnectError(`id: no job ${req.id}`, Code.NotFound);
      return { job: toJob(job, job.history) };
    },

    async retryJobs(req) {
      requireIds(req.ids);
      for (const id of req.ids) {
        const job = await deps.jobs.get(id);
        if (job !== null) requireRedrivable(deps.jobs, job.queue, `ids: ${id}`);
      }
      const { done, notFound } = await deps.jobs.retry(req.ids);
      return { retried: done, notFound };
    },

    async redriveDeadLetters(req) {
      if (req.queue === "") throw new ConnectError("queue: required", Code.InvalidArgument);
      requireKnownQueue(deps.jobs, req.queue);
      if (req.limit < 0) throw new ConnectError("limit: must not be negative", Code.InvalidArgument);
      if (req.ids.length > 0) requireIds(req.ids);
      requireRedrivable(deps.jobs, req.queue, "queue");
      const redriven = await deps.jobs.redrive(req.queue, { limit: req.limit, ids: req.ids });
      return { redriven: BigInt(redriven) };
    },

    async cancelJobs(req) {
      requireIds(req.ids);
      const { done, notFound } = await deps.jobs.cancel(req.ids);
      return { cancelled: done, notFound };
    },

    async getTimeSeries(req, ctx) {
      const query = seriesQuery(req);
      const result = await countSeries({ clickhouse: deps.clickhouse, pool: deps.pool }, query, ctx.signal);
      return {
        metric: query.metric,
        step: durationFromMs(query.stepSeconds * 1000),
        buckets: result.buckets.map((bucket) => timestampFromDate(bucket)),
        series: result.series.map((series) => create(SeriesSchema, { key: series.key, values: series.values.map(BigInt), total: BigInt(series.total) })),
      };
    },

    async queryAnalytics(req, ctx) {
      const result = await analyticsQuery.run(req.sql, req.maxRows, ctx.signal);
      return {
        columns: result.columns,
        types: result.types,
        rows: result.rows.map((row) => ({ values: row.map((value) => fromJson(ValueSchema, (value ?? null) as JsonValue)) })),
        truncated: result.truncated,
        rowsRead: BigInt(result.rowsRead),
        elapsedMs: result.elapsedMs,
        database: deps.clickhouse.database,
      };
    },
  };
}
