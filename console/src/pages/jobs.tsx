import type { JsonValue } from "@bufbuild/protobuf";
import { useState } from "preact/hooks";
import type { Job } from "../../../gen/funnel/ops/v1/ops_pb.js";
import { api } from "../api.js";
import { useAction, useQuery } from "../query.js";
import { href, type Route } from "../router.js";
import { ConfirmDialog, count as counted, ErrorBanner, formatTime, Status } from "../ui/common.js";
import { FilterBar, useFilterParams, type FilterControl } from "../ui/filter-bar.js";
import { QueueTable } from "../ui/queue-table.js";
import { Pager, SelectableTable, usePageTokens, useSelection, type Column } from "../ui/table.js";

const STATES = ["failed", "created", "retry", "active", "completed", "cancelled"] as const;
const PAGE_SIZE = 100;

function json(value: JsonValue): string {
  return JSON.stringify(value, null, 2);
}

/** The last error of a failed job, as the handler left it in `output`. */
function errorOf(job: Job): string {
  if (job.output === undefined) return "";
  const message = job.output.message;
  return typeof message === "string" ? message : "";
}

function JobDetail({ id }: { id: string }) {
  const query = useQuery({ key: ["jobs", "one", id], fn: (signal) => api.ops.getJob({ id }, { signal }) });
  const job = query.data?.job;
  const output = job?.output;
  const history = Array.isArray(output?.history) ? output.history : [];
  return (
    <section>
      <p>
        <a href={href("jobs", { queue: job?.queue })}>← Jobs</a>
      </p>
      <h1>Job {id}</h1>
      <ErrorBanner error={query.error ?? undefined} />
      {job !== undefined ? (
        <>
          <dl class="facts">
            <dt>Queue</dt>
            <dd>{job.queue}</dd>
            <dt>State</dt>
            <dd>{job.state}</dd>
            <dt>Retries</dt>
            <dd>
              {job.retryCount} of {job.retryLimit}
            </dd>
            <dt>Created (UTC)</dt>
            <dd>{formatTime(job.createdAt)}</dd>
            <dt>Started (UTC)</dt>
            <dd>{formatTime(job.startedAt)}</dd>
            <dt>Finished (UTC)</dt>
            <dd>{formatTime(job.completedAt)}</dd>
            {job.sourceQueue !== "" ? (
              <>
                <dt>Dead-lettered from</dt>
                <dd>
                  {job.sourceQueue} <a href={href("jobs", job.sourceId)}>{job.sourceId}</a>
                </dd>
              </>
            ) : null}
          </dl>
          {errorOf(job) !== "" ? (
            <>
              <h2>Error</h2>
              <pre class="error-text">{errorOf(job)}</pre>
            </>
          ) : null}
          {history.length > 0 ? (
            <>
              <h2>Attempt history</h2>
              <pre>{json(history)}</pre>
            </>
          ) : null}
          <h2>Payload</h2>
          <pre>{json(job.data ?? {})}</pre>
        </>
      ) : null}
    </section>
  );
}

type JobAction = "retry" | "cancel" | "redrive";

const ACTION_LABELS: Record<JobAction, string> = { retry: "Retry", cancel: "Cancel", redrive: "Redrive" };

const JOB_COLUMNS: readonly Column<Job>[] = [
  { header: "Created (UTC)", cell: (job) => <a href={href("jobs", job.id)}>{formatTime(job.createdAt)}</a> },
  { header: "Queue", cell: (job) => job.queue },
  { header: "State", cell: (job) => job.state },
  { header: "Retries", cell: (job) => `${job.retryCount}/${job.retryLimit}` },
  { header: "Error", class: "clip", cell: (job) => errorOf(job) || "—" },
];

function JobList({ route }: { route: Route }) {
  const [params, setParams] = useFilterParams(route, ["queue", "state"]);
  const queue = params.queue ?? "";
  const state = params.state || "failed";
  const selected = useSelection();
  const pages = usePageTokens();
  const [confirming, setConfirming] = useState<JobAction | undefined>(undefined);
  const status = useQuery({ key: ["status"], fn: (signal) => api.ops.getStatus({}, { signal }), refetchMs: 5_000 });
  const { pageToken } = pages;
  const jobs = useQuery({ key: ["jobs", "list", queue, state, pageToken], fn: (signal) => api.ops.listJobs({ queue, state, limit: PAGE_SIZE, pageToken }, { signal }), refetchMs: 5_000, keepPrevious: true });
  const act = useAction(
    async (action: JobAction, ids: string[]) => {
      if (action === "retry") return `Retried ${counted((await api.ops.retryJobs({ ids, queue })).retried.length, "job")}.`;
      if (action === "cancel") return `Cancelled ${counted((await api.ops.cancelJobs({ ids })).cancelled.length, "job")}.`;
      return `Redrove ${counted(Number((await api.ops.redriveDeadLetters({ queue, ids })).redriven), "dead letter")}.`;
    },
    [["jobs"], ["status"]],
  );
  const go = (patch: Record<string, string>) => {
    selected.clear();
    pages.reset();
    setParams({ state, ...patch });
  };
  const queues = status.data?.queues ?? [];
  const dead = queue.endsWith(".dead");
  const count = selected.size;
  // Only dead letters can be redriven one by one; from any queue, all of its dead letters can.
  const redriveSelected = dead && count > 0;
  const deadLetters = queues.find((q) => q.name === queue)?.dead ?? 0n;
  const filters: readonly FilterControl[] = [
    { name: "queue", label: "Queue", options: [["", "every queue"], ...queues.map((q) => [q.name, q.name] as const)] },
    { name: "state", label: "State", options: STATES.map((s) => [s, s] as const) },
  ];
  return (
    <section>
      <h1>Jobs</h1>
      <ErrorBanner error={status.error ?? undefined} />
      <QueueTable caption="Queues by state" showCaption queues={queues} current={queue} link={(q) => href("jobs", { queue: q.name, state: q.name.endsWith(".dead") ? "created" : "failed" })} />
      <h2>{queue === "" ? "Jobs of every queue" : `Jobs of ${queue}`}</h2>
      <FilterBar label="Filter jobs" controls={filters} values={{ queue, state }} onChange={go} />
      <div class="actions">
        <button type="button" disabled={count === 0} onClick={() => setConfirming("retry")}>
          Retry selected ({count})
        </button>
        <button type="button" disabled={count === 0} onClick={() => setConfirming("cancel")}>
          Cancel selected ({count})
        </button>
        <button type="button" disabled={queue === "" || (!redriveSelected && deadLetters === 0n)} onClick={() => setConfirming("redrive")}>
          {redriveSelected ? `Redrive selected (${count})` : "Redrive all dead letters"}
        </button>
      </div>
      <ConfirmDialog
        open={confirming !== undefined}
        title={confirming === "redrive" && !redriveSelected ? `Redrive every dead letter of ${queue}?` : `${confirming !== undefined ? ACTION_LABELS[confirming] : ""} ${counted(count, "job")}?`}
        confirmLabel={confirming === "redrive" && !redriveSelected ? "Redrive all" : `${confirming !== undefined ? ACTION_LABELS[confirming] : ""} ${count}`}
        onCancel={() => setConfirming(undefined)}
        onConfirm={() => {
          const action = confirming;
          setConfirming(undefined);
          const ids = action === "redrive" && !redriveSelected ? [] : [...selected.ids];
          if (action !== undefined) void act.run(action, ids).then((r) => r !== undefined && selected.clear());
        }}
      >
        <p>{confirming === "cancel" ? "Cancelled jobs are not run again." : "The jobs go back to work now."}</p>
      </ConfirmDialog>
      {act.data !== undefined ? <Status>{act.data}</Status> : null}
      <ErrorBanner error={act.error ?? jobs.error ?? undefined} />
      <SelectableTable
        caption="Jobs, newest first"
        columns={JOB_COLUMNS}
        rows={jobs.data?.jobs ?? []}
        rowKey={(job) => job.id}
        selection={selected}
        selectLabel={(job) => `Select job ${job.id}`}
        empty={jobs.data !== undefined ? `No ${state} job.` : undefined}
      />
      <Pager pages={pages} nextPageToken={jobs.data?.nextPageToken} />
    </section>
  );
}

/** Jobs: queues by state, failed and dead jobs with their errors, retry, redrive and cancel. */
export function JobsPage({ route }: { route: Route }) {
  const id = route.path[1];
  return id === undefined ? <JobList route={route} /> : <JobDetail key={id} id={id} />;
}
