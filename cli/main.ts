import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { OpsService, type Job, type QueueStatus } from "../gen/funnel/ops/v1/ops_pb.js";
import { toJson } from "@bufbuild/protobuf";
import { GetStatusResponseSchema, JobSchema, QueueStatusSchema } from "../gen/funnel/ops/v1/ops_pb.js";
import { table } from "./table.js";

/** A usage mistake: printed as one line, exit status 2. */
class UsageError extends Error {}

const help = `usage: funnel <command> [options]

commands:
  status                        version, uptime, stores and job queues
  jobs stats                    per-queue counts (queued, active, retrying, failed, dead, oldest)
  jobs failed [--queue Q] [--limit N]
                                failed jobs, newest first
  jobs show ID                  one job with its payload, error and attempt history
  jobs retry ID...              put failed jobs back to work
  jobs redrive --queue Q [--limit N]
                                replay dead letters of queue Q (all, or at most N)
  jobs cancel ID...             cancel jobs that have not finished

options:
  --json                        machine-readable output
  --url URL                     server (default $FUNNEL_URL or http://127.0.0.1:8080)
  --token TOKEN                 admin token (default $FUNNEL_ADMIN_TOKEN or $FUNNEL_DATA_DIR/admin-token)
  -h, --help                    this text`;

const options = {
  json: { type: "boolean", default: false },
  url: { type: "string" },
  token: { type: "string" },
  queue: { type: "string" },
  limit: { type: "string" },
  help: { type: "boolean", short: "h", default: false },
} as const satisfies ParseArgsConfig["options"];

type Flags = { json: boolean; url?: string; token?: string; queue?: string; limit?: string; help: boolean };

interface Context {
  readonly flags: Flags;
  readonly args: readonly string[];
  readonly ops: Client<typeof OpsService>;
  readonly out: (text: string) => void;
}

function adminToken(flags: Flags): string {
  if (flags.token !== undefined) return flags.token;
  const fromEnv = process.env.FUNNEL_ADMIN_TOKEN?.trim();
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  const file = resolve(process.env.FUNNEL_DATA_DIR?.trim() || "./data", "admin-token");
  return existsSync(file) ? readFileSync(file, "utf8").trim() : "";
}

function limitFlag(flags: Flags): number {
  if (flags.limit === undefined) return 0;
  if (!/^\d+$/.test(flags.limit)) throw new UsageError(`--limit: must be a whole number, got "${flags.limit}"`);
  return Number(flags.limit);
}

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
      String((job.output?.message as string | undefined) ?? "").slice(0, 60),
    ]),
  );
}

const commands: Record<string, (ctx: Context) => Promise<void>> = {
  async status({ ops, flags, out }) {
    const status = await ops.getStatus({});
    if (flags.json) return out(JSON.stringify(toJson(GetStatusResponseSchema, status), null, 2));
    const store = (name: string, s = status.postgres) =>
      [name, s?.backend ?? "", s?.healthy === true ? "healthy" : `DOWN ${s?.error ?? ""}`, s?.version ?? "", `${(s?.latencyMs ?? 0).toFixed(1)} ms`];
    out(`Funnel ${status.version}, up ${status.uptimeSeconds.toFixed(0)} s, roles: ${status.roles.join(", ")}`);
    out(table(["store", "backend", "status", "version", "latency"], [store("postgres", status.postgres), store("clickhouse", status.clickhouse)]));
    if (status.analytics !== undefined) {
      out(`analytics stream: ${status.analytics.backlogRows} rows waiting, lag ${status.analytics.lagSeconds.toFixed(1)} s`);
    }
    if (status.queues.length > 0) out(queueRows(status.queues));
  },
  async "jobs stats"({ ops, flags, out }) {
    const { queues } = await ops.getStatus({});
    if (flags.json) return out(JSON.stringify(queues.map((q) => toJson(QueueStatusSchema, q)), null, 2));
    out(queueRows(queues));
  },
  async "jobs failed"({ ops, flags, out }) {
    const { jobs } = await ops.listJobs({ queue: flags.queue ?? "", state: "failed", limit: limitFlag(flags) });
    if (flags.json) return out(JSON.stringify(jobs.map((job) => toJson(JobSchema, job)), null, 2));
    out(jobs.length === 0 ? "no failed jobs" : jobRows(jobs));
  },
  async "jobs show"({ ops, args, out }) {
    const [id] = args;
    if (id === undefined || args.length !== 1) throw new UsageError("jobs show: exactly one job ID is required");
    const { job } = await ops.getJob({ id });
    if (job === undefined) throw new UsageError(`no job ${id}`);
    out(JSON.stringify(toJson(JobSchema, job), null, 2));
  },
  async "jobs retry"({ ops, flags, args, out }) {
    if (args.length === 0) throw new UsageError("jobs retry: at least one job ID is required");
    const res = await ops.retryJobs({ ids: [...args] });
    if (flags.json) return out(JSON.stringify({ retried: res.retried, notFound: res.notFound }));
    out(`retried ${res.retried.length}${res.notFound.length > 0 ? `; not found: ${res.notFound.join(", ")}` : ""}`);
  },
  async "jobs redrive"({ ops, flags, out }) {
    if (flags.queue === undefined) throw new UsageError("jobs redrive: --queue is required");
    const res = await ops.redriveDeadLetters({ queue: flags.queue, limit: limitFlag(flags) });
    if (flags.json) return out(JSON.stringify({ redriven: Number(res.redriven) }));
    out(`redriven ${res.redriven} dead letter(s) back to ${flags.queue.replace(/\.dead$/, "")}`);
  },
  async "jobs cancel"({ ops, flags, args, out }) {
    if (args.length === 0) throw new UsageError("jobs cancel: at least one job ID is required");
    const res = await ops.cancelJobs({ ids: [...args] });
    if (flags.json) return out(JSON.stringify({ cancelled: res.cancelled, notFound: res.notFound }));
    out(`cancelled ${res.cancelled.length}${res.notFound.length > 0 ? `; not found: ${res.notFound.join(", ")}` : ""}`);
  },
};

/** Explains a failed call in one line. */
function describe(error: unknown, url: string): string {
  if (error instanceof ConnectError) {
    if (error.code === Code.Unauthenticated) {
      return `${error.rawMessage} (set FUNNEL_ADMIN_TOKEN or pass --token)`;
    }
    if (error.code === Code.Unavailable || error.code === Code.Unknown || error.code === Code.Internal) {
      const cause = error.cause as { code?: string } | undefined;
      if (cause?.code === "ECONNREFUSED" || /ECONNREFUSED|fetch failed|connect/i.test(error.rawMessage)) {
        return `cannot reach the Funnel server at ${url} (is it running? set FUNNEL_URL or --url)`;
      }
    }
    return `${Code[error.code]}: ${error.rawMessage}`;
  }
  return error instanceof Error ? error.message : String(error);
}

/** Runs the CLI; returns the process exit status. */
export async function main(argv: readonly string[], out = (text: string) => console.log(text), err = (text: string) => console.error(text)): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (error) {
    err(`funnel: ${(error as Error).message.split("\n")[0]}`);
    return 2;
  }
  const flags = parsed.values as Flags;
  const positionals = parsed.positionals;
  if (flags.help || positionals.length === 0) {
    out(help);
    return flags.help ? 0 : 2;
  }
  const twoWords = positionals.slice(0, 2).join(" ");
  const name = commands[twoWords] !== undefined ? twoWords : (positionals[0] ?? "");
  const command = commands[name];
  if (command === undefined) {
    err(`funnel: unknown command "${positionals.join(" ")}" (see funnel --help)`);
    return 2;
  }
  const url = flags.url ?? (process.env.FUNNEL_URL?.trim() || "http://127.0.0.1:8080");
  try {
    new URL(url);
  } catch {
    err(`funnel: --url: not a valid URL: ${url}`);
    return 2;
  }
  const token = adminToken(flags);
  const transport = createConnectTransport({
    baseUrl: url,
    httpVersion: "1.1",
    interceptors: [
      (next) => (req) => {
        if (token !== "") req.header.set("authorization", `Bearer ${token}`);
        return next(req);
      },
    ],
  });
  const args = positionals.slice(name.split(" ").length);
  try {
    await command({ flags, args, ops: createClient(OpsService, transport), out });
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      err(`funnel: ${error.message}`);
      return 2;
    }
    err(`funnel: ${describe(error, url)}`);
    return 1;
  }
}
