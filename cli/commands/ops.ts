import { jsonOf } from "../json.js";
import { GetStatusResponseSchema, JobSchema, QueueStatusSchema, type Job, type QueueStatus } from "../../gen/funnel/ops/v1/ops_pb.js";
import { limitFlag, printJson, stringFlag, UsageError, type CommandSet } from "../command.js";
import { table } from "../table.js";

const iso = (seconds?: bigint): string => (seconds === undefined ? "" : new Date(Number(seconds) * 1000).toISOString());

function queueRows(queues: readonly QueueStatus[]): string {
  return table(
    ["queue", "queued", "active", "retrying", "failed", "dead", "oldest waiting"],
    queues.map((q) => [q.name, q.queued, q.active, q.retrying, q.failed, q.dead, `${q.oldestWaitingSeconds.toFixed(1)} s`].map(String)),
  );
}

function jobRows(jobs: readonly Job[]): string {
  return table(
    ["id", "queue", "state", "attempts", "created", "error"],
    jobs.map((job) => [
      job.id,
      job.queue,
      job.state,
      String(job.retryCount + 1),
      iso(job.createdAt?.seconds),
      reason(job),
    ]),
  );
}

/** Why a job failed: its error message on one line, whole. */
function reason(job: Job): string {
  const message = job.output?.message;
  return typeof message === "string" ? message.replace(/\s*\n\s*/g, " ") : "";
}

const timeOf = (stamp: Job["createdAt"]): string => (stamp === undefined ? "" : iso(stamp.seconds));

/** `funnel status` and `funnel jobs …`: the OpsService. */
export const opsCommands: CommandSet = {
  help: `  status                        version, uptime, stores and job queues
  jobs stats                    per-queue counts (queued, active, retrying, failed, dead, oldest)
  jobs failed [--queue Q] [--limit N]
                                failed jobs, newest first
  jobs show ID                  one job with its payload, error and attempt history
  jobs retry ID...              put failed jobs back to work
  jobs redrive --queue Q [--limit N]
                                replay dead letters of queue Q (all, or at most N)
  jobs cancel ID...             cancel jobs that have not finished`,
  options: { queue: { type: "string" }, limit: { type: "string" } },
  examples: [
    "funnel status",
    "funnel jobs stats --json",
    "funnel jobs failed --queue postback.deliver --limit 20",
    "funnel jobs show ID",
    "funnel jobs redrive --queue postback.deliver.dead --limit 100",
  ],
  commands: {
    async status({ clients, json, out }) {
      const status = await clients.ops.getStatus({});
      if (json) return printJson(out, jsonOf(GetStatusResponseSchema, status));
      const store = (name: string, s = status.postgres) =>
        [name, s?.backend ?? "", s?.healthy === true ? "healthy" : `DOWN ${s?.error ?? ""}`, s?.version ?? "", `${(s?.latencyMs ?? 0).toFixed(1)} ms`];
      out(`Funnel ${status.version}, up ${status.uptimeSeconds.toFixed(0)} s, roles: ${status.roles.join(", ")}`);
      out(table(["store", "backend", "status", "version", "latency"], [store("postgres", status.postgres), store("clickhouse", status.clickhouse)]));
      if (status.analytics !== undefined) {
        out(`analytics stream: ${status.analytics.backlogRows} rows waiting, lag ${status.analytics.lagSeconds.toFixed(1)} s`);
      }
      if (status.queues.length > 0) out(queueRows(status.queues));
    },
    async "jobs stats"({ clients, json, out }) {
      const { queues } = await clients.ops.getStatus({});
      if (json) return printJson(out, queues.map((q) => jsonOf(QueueStatusSchema, q)));
      out(queueRows(queues));
    },
    async "jobs failed"({ clients, flags, json, out }) {
      const { jobs } = await clients.ops.listJobs({ queue: stringFlag(flags, "queue") ?? "", state: "failed", limit: limitFlag(flags) });
      if (json) return printJson(out, jobs.map((job) => jsonOf(JobSchema, job)));
      out(jobs.length === 0 ? "no failed jobs" : jobRows(jobs));
    },
    async "jobs show"({ clients, args, json, out }) {
      const [id] = args;
      if (id === undefined || args.length !== 1) throw new UsageError("jobs show: exactly one job ID is required");
      const { job } = await clients.ops.getJob({ id });
      if (job === undefined) throw new UsageError(`no job ${id}`);
      if (json) return printJson(out, jsonOf(JobSchema, job));
      const rows: [string, string][] = [
        ["id", job.id],
        ["queue", job.queue],
        ["state", job.state],
        ["attempts", `${job.retryCount + 1} of ${job.retryLimit + 1}`],
        ["created", timeOf(job.createdAt)],
        ["started", timeOf(job.startedAt)],
        ["completed", timeOf(job.completedAt)],
      ];
      if (job.sourceQueue !== "") rows.push(["dead letter of", `${job.sourceQueue} ${job.sourceId}`]);
      if (reason(job) !== "") rows.push(["error", reason(job)]);
      rows.push(["data", JSON.stringify(job.data ?? {})]);
      if (job.output !== undefined) rows.push(["output", JSON.stringify(job.output)]);
      out(table(["field", "value"], rows));
    },
    async "jobs retry"({ clients, json, args, out }) {
      if (args.length === 0) throw new UsageError("jobs retry: at least one job ID is required");
      const res = await clients.ops.retryJobs({ ids: [...args] });
      if (json) return printJson(out, { retried: res.retried, notFound: res.notFound });
      out(`retried ${res.retried.length}${res.notFound.length > 0 ? `; not found: ${res.notFound.join(", ")}` : ""}`);
    },
    async "jobs redrive"({ clients, flags, json, out }) {
      const queue = stringFlag(flags, "queue");
      if (queue === undefined) throw new UsageError("jobs redrive: --queue is required");
      const res = await clients.ops.redriveDeadLetters({ queue, limit: limitFlag(flags) });
      if (json) return printJson(out, { redriven: Number(res.redriven) });
      out(`redriven ${res.redriven} dead letter(s) back to ${queue.replace(/\.dead$/, "")}`);
    },
    async "jobs cancel"({ clients, json, args, out }) {
      if (args.length === 0) throw new UsageError("jobs cancel: at least one job ID is required");
      const res = await clients.ops.cancelJobs({ ids: [...args] });
      if (json) return printJson(out, { cancelled: res.cancelled, notFound: res.notFound });
      out(`cancelled ${res.cancelled.length}${res.notFound.length > 0 ? `; not found: ${res.notFound.join(", ")}` : ""}`);
    },
  },
};
