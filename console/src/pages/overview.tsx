import { useMemo, useState } from "preact/hooks";
import { Metric } from "../../../gen/funnel/ops/v1/ops_pb.js";
import { api } from "../api.js";
import { useQuery } from "../query.js";
import { href } from "../router.js";
import { chartData, fetchSeries, RANGES, type RangeName, type SeriesFilter } from "../series.js";
import { ChartPanel } from "../ui/chart.js";
import { ErrorBanner, formatSeconds } from "../ui/common.js";
import { QueueTable } from "../ui/queue-table.js";

/** Buttons that pick the charts' range; the pressed one is announced as such. */
export function RangePicker(props: { value: RangeName; onChange: (range: RangeName) => void }) {
  return (
    <div class="range" role="group" aria-label="Time range">
      {(Object.keys(RANGES) as RangeName[]).map((name) => (
        <button key={name} type="button" aria-pressed={props.value === name} onClick={() => props.onChange(name)}>
          {RANGES[name].label}
        </button>
      ))}
    </div>
  );
}

/** One metric over the chosen range, refreshed while shown. */
export function SeriesChart(props: { title: string; metric: Metric; range: RangeName; filter?: SeriesFilter; bars?: boolean; stepSeconds?: number }) {
  const range = RANGES[props.range];
  const step = props.stepSeconds ?? range.step;
  const filter = props.filter ?? {};
  const query = useQuery({
    key: ["series", props.metric, props.range, step, filter],
    fn: (signal) => fetchSeries(props.metric, range.seconds, step, filter, signal),
    refetchMs: range.refetchMs,
    keepPrevious: true,
  });
  const data = useMemo(() => chartData(query.data), [query.data]);
  return <ChartPanel title={props.title} times={data.times} series={data.series} bars={props.bars ?? false} error={query.error} />;
}

function StoreCard(props: { name: string; store: { backend: string; healthy: boolean; version: string; latencyMs: number; error: string } | undefined }) {
  const store = props.store;
  return (
    <div class="card">
      <h3>{props.name}</h3>
      {store === undefined ? (
        <p>—</p>
      ) : (
        <>
          <p class={store.healthy ? "ok" : "bad"}>{store.healthy ? "Healthy" : "Unhealthy"}</p>
          <p class="muted">
            {store.backend} {store.version} · {store.latencyMs.toFixed(1)} ms
          </p>
          {store.error !== "" ? <p class="error">{store.error}</p> : null}
        </>
      )}
    </div>
  );
}

/** Store health, the analytics stream, queues, and live charts of what flows through. */
export function OverviewPage() {
  const [range, setRange] = useState<RangeName>("hour");
  const status = useQuery({ key: ["status"], fn: (signal) => api.ops.getStatus({}, { signal }), refetchMs: 5_000 });
  const s = status.data;
  const queues = (s?.queues ?? []).filter((q) => !q.name.endsWith(".dead"));
  return (
    <section>
      <h1>Overview</h1>
      <ErrorBanner error={status.error ?? undefined} />
      <div class="cards">
        <StoreCard name="Postgres" store={s?.postgres} />
        <StoreCard name="ClickHouse" store={s?.clickhouse} />
        <div class="card">
          <h3>Analytics stream</h3>
          <p>
            <span data-testid="backlog">{s?.analytics?.backlogRows.toString() ?? "—"}</span> rows waiting
          </p>
          <p class="muted">lag {s !== undefined ? formatSeconds(s.analytics?.lagSeconds ?? 0) : "—"}</p>
        </div>
        <div class="card">
          <h3>Server</h3>
          <p>{s?.version ?? "—"}</p>
          <p class="muted">
            up {s !== undefined ? formatSeconds(s.uptimeSeconds) : "—"} · {s?.roles.join(", ")}
          </p>
        </div>
      </div>
      <h2>Queues</h2>
      <QueueTable caption="Job queues by state" queues={queues} link={(q) => href("jobs", { queue: q.name })} />
      <div class="section-head">
        <h2>Traffic</h2>
        <RangePicker value={range} onChange={setRange} />
      </div>
      <div class="charts">
        <SeriesChart title="Analytics events by type" metric={Metric.INGEST_EVENTS} range={range} />
        <SeriesChart title="Funnel events by outcome" metric={Metric.POSTBACK_EVENTS} range={range} />
        <SeriesChart title="Postback attempts by outcome" metric={Metric.POSTBACK_ATTEMPTS} range={range} />
        <SeriesChart title="Seen api attempts by outcome" metric={Metric.SEEN_ATTEMPTS} range={range} />
      </div>
    </section>
  );
}
