import type { JsonValue } from "@bufbuild/protobuf";
import { useState } from "preact/hooks";
import type { Job } from "../../../gen/funnel/ops/v1/ops_pb.js";
import { api } from "../api.js";
import { useAction, useQuery } from "../query.js";
import { href, navigate, type Route } from "../router.js";
import { ConfirmDialog, count as counted, ErrorBanner, Field, formatSeconds, formatTime, Status } from "../ui/common.js";

const STATES = ["failed", "created", "retry", "active", "completed", "cancelled"] as const;

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

function JobList({ route }: { route: Route }) {
  const queue = route.params.get("queue") ?? "";
  const state = route.params.get("state") ?? "failed";
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const [confirming, setConfirming] = useState<JobAction | undefined>(undefined);
  const status = useQuery({ key: ["status"], fn: (signal) => api.ops.getStatus({}, { signal }), refetchMs: 5_000 });
  const jobs = useQuery({ key: ["jobs", "list", queue, state], fn: (signal) => api.ops.listJobs({ queue, state, limit: 100 }, { signal }), refetchMs: 5_000, keepPrevious: true });
  const act = useAction(
    async (action: JobAction, ids: string[]) => {
      if (action === "retry") return `Retried ${counted((await api.ops.retryJobs({ ids, queue })).retried.length, "job")}.`;
      if (action === "cancel") return `Cancelled ${counted((await api.ops.cancelJobs({ ids })).cancelled.length, "job")}.`;
      return `Redrove ${counted(Number((await api.ops.redriveDeadLetters({ queue, ids })).redriven), "dead letter")}.`;
    },
    [["jobs"], ["status"]],
  );
  const go = (patch: Record<string, string>) => {
    setSelected(new Set());
    navigate(href("jobs", { queue, state, ...patch }));
  };
  const rows = jobs.data?.jobs ?? [];
  const dead = queue.endsWith(".dead");
  const count = selected.size;
  // Only dead letters can be redriven one by one; from any queue, all of its dead letters can.
  const redriveSelected = dead && count > 0;
  const deadLetters = status.data?.queues.find((q) => q.name === queue)?.dead ?? 0n;
  return (
    <section>
      <h1>Jobs</h1>
      <ErrorBanner error={status.error ?? undefined} />
      <table>
        <caption>Queues by state</caption>
        <thead>
          <tr>
            <th scope="col">Queue</th>
            <th scope="col">Queued</th>
            <th scope="col">Active</th>
            <th scope="col">Retrying</th>
            <th scope="col">Failed</th>
            <th scope="col">Dead</th>
            <th scope="col">Oldest waiting</th>
          </tr>
        </thead>
        <tbody>
          {(status.data?.queues ?? []).map((q) => (
            <tr key={q.name} aria-current={q.name === queue ? "true" : undefined}>
              <th scope="row">
                <a href={href("jobs", { queue: q.name, state: q.name.endsWith(".dead") ? "created" : "failed" })}>{q.name}</a>
              </th>
              <td>{q.queued.toString()}</td>
              <td>{q.active.toString()}</td>
              <td>{q.retrying.toString()}</td>
              <td>{q.failed.toString()}</td>
              <td>{q.dead.toString()}</td>
              <td>{q.oldestWaitingSeconds > 0 ? formatSeconds(q.oldestWaitingSeconds) : "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>{queue === "" ? "Jobs of every queue" : `Jobs of ${queue}`}</h2>
      <div class="filters">
        <Field label="Queue">
          {(id) => (
            <select id={id} value={queue} onChange={(e) => go({ queue: e.currentTarget.value })}>
              <option value="">every queue</option>
              {(status.data?.queues ?? []).map((q) => (
                <option key={q.name}>{q.name}</option>
              ))}
            </select>
          )}
        </Field>
        <Field label="State">
          {(id) => (
            <select id={id} value={state} onChange={(e) => go({ state: e.currentTarget.value })}>
              {STATES.map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
          )}
        </Field>
      </div>
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
          const ids = action === "redrive" && !redriveSelected ? [] : [...selected];
          if (action !== undefined) void act.run(action, ids).then((r) => r !== undefined && setSelected(new Set()));
        }}
      >
        <p>{confirming === "cancel" ? "Cancelled jobs are not run again." : "The jobs go back to work now."}</p>
      </ConfirmDialog>
      {act.data !== undefined ? <Status>{act.data}</Status> : null}
      <ErrorBanner error={act.error ?? jobs.error ?? undefined} />
      <table>
        <caption class="visually-hidden">Jobs, newest first</caption>
        <thead>
          <tr>
            <th scope="col">
              <span class="visually-hidden">Select</span>
            </th>
            <th scope="col">Created (UTC)</th>
            <th scope="col">Queue</th>
            <th scope="col">State</th>
            <th scope="col">Retries</th>
            <th scope="col">Error</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((job) => (
            <tr key={job.id}>
              <td>
                <input type="checkbox" aria-label={`Select job ${job.id}`} checked={selected.has(job.id)} onChange={() => setSelected(new Set(selected.has(job.id) ? [...selected].filter((x) => x !== job.id) : [...selected, job.id]))} />
              </td>
              <td>
                <a href={href("jobs", job.id)}>{formatTime(job.createdAt)}</a>
              </td>
              <td>{job.queue}</td>
              <td>{job.state}</td>
              <td>
                {job.retryCount}/{job.retryLimit}
              </td>
              <td class="clip">{errorOf(job) || "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {rows.length === 0 && jobs.data !== undefined ? <p class="muted">No {state} job.</p> : null}
    </section>
  );
}

/** Jobs: queues by state, failed and dead jobs with their errors, retry, redrive and cancel. */
export function JobsPage({ route }: { route: Route }) {
  const id = route.path[1];
  return id === undefined ? <JobList route={route} /> : <JobDetail key={id} id={id} />;
}
