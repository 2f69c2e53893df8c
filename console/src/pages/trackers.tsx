import { useMemo, useState } from "preact/hooks";
import type { Tracker } from "../../../gen/funnel/tracker/v1/tracker_pb.js";
import { api, errorText } from "../api.js";
import { useAction, useQuery } from "../query.js";
import { href, type Route } from "../router.js";
import { Chart } from "../ui/chart.js";
import { ErrorBanner, Field, formatTime, Status } from "../ui/common.js";

const DAY = 86_400;

/** Hits per UTC day of one tracker over the last `days` days (zero days filled in). */
function HitsChart({ uuid, days }: { uuid: string; days: number }) {
  const today = Math.floor(Date.now() / 1000 / DAY) * DAY;
  const first = today - (days - 1) * DAY;
  const day = (seconds: number) => new Date(seconds * 1000).toISOString().slice(0, 10);
  const stats = useQuery({
    key: ["trackers", "stats", uuid, days],
    fn: (signal) => api.trackers.getStats({ trackerId: uuid, from: day(first), to: day(today) }, { signal }),
    refetchMs: 30_000,
  });
  const data = useMemo(() => {
    const counts = new Map((stats.data?.days ?? []).map((d) => [d.date, Number(d.count)]));
    const times = Array.from({ length: days }, (_, i) => first + i * DAY);
    return { times, series: stats.data === undefined ? [] : [{ label: "hits", values: times.map((t) => counts.get(day(t)) ?? 0) }] };
  }, [stats.data]);
  return (
    <>
      <Chart title={`Hits per day, last ${days} days (UTC)`} times={data.times} series={data.series} bars />
      <Status>{stats.data !== undefined ? `${stats.data.count.toString()} hits in the range` : "Loading…"}</Status>
      <ErrorBanner error={stats.error ?? undefined} />
    </>
  );
}

function TrackerDetail({ uuid }: { uuid: string }) {
  const query = useQuery({ key: ["trackers", "one", uuid], fn: (signal) => api.trackers.getTracker({ uuid }, { signal }) });
  const [value, setValue] = useState<string | undefined>(undefined);
  const update = useAction((next: string) => api.trackers.updateTracker({ uuid, value: next }), [["trackers"]]);
  const t = query.data?.tracker;
  return (
    <section>
      <p>
        <a href={href("trackers")}>← Trackers</a>
      </p>
      <h1>Tracker {uuid}</h1>
      <ErrorBanner error={query.error ?? undefined} />
      {t !== undefined ? (
        <>
          <form
            class="inline-form"
            onSubmit={(e) => {
              e.preventDefault();
              void update.run(value ?? t.value);
            }}
          >
            <Field label="Value" errors={update.error !== undefined ? [errorText(update.error)] : []} hint="Recorded with every hit, e.g. a campaign name.">
              {(id, d) => <input id={id} type="text" class="wide" value={value ?? t.value} aria-describedby={d} onInput={(e) => setValue(e.currentTarget.value)} />}
            </Field>
            <button type="submit" disabled={update.pending}>
              Change value
            </button>
          </form>
          {update.data !== undefined ? <Status>Saved.</Status> : null}
          <p>
            Pixel: <code>/track?id={t.uuid}</code> · created {formatTime(t.createdAt)} UTC
          </p>
          <HitsChart uuid={uuid} days={30} />
        </>
      ) : null}
    </section>
  );
}

function TrackerList() {
  const [tokens, setTokens] = useState<string[]>([""]);
  const [value, setValue] = useState("");
  const pageToken = tokens[tokens.length - 1] ?? "";
  const list = useQuery({ key: ["trackers", "list", pageToken], fn: (signal) => api.trackers.listTrackers({ pageSize: 50, pageToken }, { signal }), keepPrevious: true });
  const create = useAction((v: string) => api.trackers.createTracker({ value: v }), [["trackers"]]);
  const rows: Tracker[] = list.data?.trackers ?? [];
  return (
    <section>
      <h1>Trackers</h1>
      <form
        class="inline-form"
        aria-label="New tracker"
        onSubmit={(e) => {
          e.preventDefault();
          void create.run(value).then((r) => r !== undefined && setValue(""));
        }}
      >
        <Field label="New tracker's value" errors={create.error !== undefined ? [errorText(create.error)] : []}>
          {(id, d) => <input id={id} type="text" value={value} aria-describedby={d} onInput={(e) => setValue(e.currentTarget.value)} />}
        </Field>
        <button type="submit" class="primary" disabled={create.pending}>
          Create tracker
        </button>
      </form>
      {create.data?.tracker !== undefined ? (
        <Status>
          Created <a href={href("trackers", create.data.tracker.uuid)}>{create.data.tracker.uuid}</a>.
        </Status>
      ) : null}
      <ErrorBanner error={list.error ?? undefined} />
      <table>
        <caption class="visually-hidden">Trackers, oldest first</caption>
        <thead>
          <tr>
            <th scope="col">UUID</th>
            <th scope="col">Value</th>
            <th scope="col">Created (UTC)</th>
            <th scope="col">Changed (UTC)</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((t) => (
            <tr key={t.uuid}>
              <th scope="row">
                <a href={href("trackers", t.uuid)}>{t.uuid}</a>
              </th>
              <td>{t.value}</td>
              <td>{formatTime(t.createdAt)}</td>
              <td>{formatTime(t.updatedAt)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <div class="pager">
        <button type="button" disabled={tokens.length <= 1} onClick={() => setTokens(tokens.slice(0, -1))}>
          Previous page
        </button>
        <span>Page {tokens.length}</span>
        <button type="button" disabled={(list.data?.nextPageToken ?? "") === ""} onClick={() => setTokens([...tokens, list.data?.nextPageToken ?? ""])}>
          Next page
        </button>
      </div>
    </section>
  );
}

/** Trackers: list, create, change the value, hits per day. */
export function TrackersPage({ route }: { route: Route }) {
  const uuid = route.path[1];
  return uuid === undefined ? <TrackerList /> : <TrackerDetail key={uuid} uuid={uuid} />;
}
