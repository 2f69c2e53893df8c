import { isUuid } from "../core/validate.js";
import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type pg from "pg";
import {
  JobSchema,
  type OpsService,
  QueueStatusSchema,
  StoreStatusSchema,
  AnalyticsStatusSchema,
  type Job,
} from "../../gen/funnel/ops/v1/ops_pb.js";
import type { ClickHouse } from "../core/clickhouse.js";
import { probeClickHouse, probePostgres, type StoreProbe } from "../core/health.js";
import type { JobRecord, Jobs } from "../core/jobs/jobs.js";
import { version } from "../core/version.js";

export interface OpsDeps {
  readonly pool: pg.Pool;
  readonly postgresBackend: string;
  readonly clickhouse: ClickHouse;
  readonly jobs: Jobs;
  readonly roles: readonly string[];
  readonly startedAt: number;
  /** Backlog of the analytics stream, when the process has one. */
  readonly analyticsBacklog?: () => Promise<{ rows: number; lagSeconds: number }>;
}

const JOB_STATES = new Set(["created", "retry", "active", "completed", "cancelled", "failed"]);
const storeStatus = (probe: StoreProbe) => create(StoreStatusSchema, probe);

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

/** Implements `funnel.ops.v1.OpsService` over the runtime's stores and jobs. */
export function createOpsService(deps: OpsDeps): ServiceImpl<typeof OpsService> {
  return {
    async getStatus() {
      const [postgres, clickhouse, queues, backlog] = await Promise.all([
        probePostgres(deps.pool, deps.postgresBackend),
        probeClickHouse(deps.clickhouse),
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
      if (req.limit < 0 || req.limit > 1000) throw new ConnectError("limit: must be from 0 to 1000", Code.InvalidArgument);
      requireKnownQueue(deps.jobs, req.queue);
      const jobs = await deps.jobs.list(req.queue, state, req.limit === 0 ? 50 : req.limit);
      return { jobs: jobs.map((job) => toJob(job)) };
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

    getTimeSeries() {
      throw new ConnectError("GetTimeSeries is not served yet", Code.Unimplemented);
    },

    queryAnalytics() {
      throw new ConnectError("QueryAnalytics is not served yet", Code.Unimplemented);
    },
  };
}
