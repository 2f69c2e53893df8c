import { useMemo, useState } from "preact/hooks";
import type { Tracker } from "../../../gen/funnel/tracker/v1/tracker_pb.js";
import { api, errorText } from "../api.js";
import { useAction, useQuery } from "../query.js";
import { href, type Route } from "../router.js";
import { useLastDays } from "../series.js";
import { ChartPanel } from "../ui/chart.js";
import { ErrorBanner, Field, formatTime, Status } from "../ui/common.js";
import { Pager, Table, usePageTokens, type Column } from "../ui/table.js";

/** Hits per UTC day of one tracker over the last `count` days (zero days filled in). */
function HitsChart({ uuid, count }: { uuid: string; count: number }) {
  const { days, times } = useLastDays(count);
  const from = days[0] ?? "";
  const to = days[days.length - 1] ?? "";
  const stats = useQuery({
    key: ["trackers", "stats", uuid, from, to],
    fn: (signal) => api.trackers.getStats({ trackerId: uuid, from, to }, { signal }),
    refetchMs: 30_000,
  });
  const series = useMemo(() => {
    if (stats.data === undefined) return [];
    const counts = new Map(stats.data.days.map((d) => [d.date, Number(d.count)]));
    return [{ label: "hits", values: days.map((day) => counts.get(day) ?? 0) }];
  }, [stats.data, days]);
  return (
    <ChartPanel
      title={`Hits per day, last ${count} days (UTC)`}
      times={times}
      series={series}
      bars
      status={stats.data !== undefined ? `${stats.data.count.toString()} hits in the range` : "Loading…"}
      error={stats.error}
    />
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
          <HitsChart uuid={uuid} count={30} />
        </>
      ) : null}
    </section>
  );
}

const TRACKER_COLUMNS: readonly Column<Tracker>[] = [
  { header: "UUID", rowHeader: true, cell: (t) => <a href={href("trackers", t.uuid)}>{t.uuid}</a> },
  { header: "Value", cell: (t) => t.value },
  { header: "Created (UTC)", cell: (t) => formatTime(t.createdAt) },
  { header: "Changed (UTC)", cell: (t) => formatTime(t.updatedAt) },
];

function TrackerList() {
  const pages = usePageTokens();
  const [value, setValue] = useState("");
  const { pageToken } = pages;
  const list = useQuery({ key: ["trackers", "list", pageToken], fn: (signal) => api.trackers.listTrackers({ pageSize: 50, pageToken }, { signal }), keepPrevious: true });
  const create = useAction((v: string) => api.trackers.createTracker({ value: v }), [["trackers"]]);
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
      <Table caption="Trackers, oldest first" columns={TRACKER_COLUMNS} rows={list.data?.trackers ?? []} rowKey={(t) => t.uuid} />
      <Pager pages={pages} nextPageToken={list.data?.nextPageToken} />
    </section>
  );
}

/** Trackers: list, create, change the value, hits per day. */
export function TrackersPage({ route }: { route: Route }) {
  const uuid = route.path[1];
  return uuid === undefined ? <TrackerList /> : <TrackerDetail key={uuid} uuid={uuid} />;
}
