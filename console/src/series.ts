import { create } from "@bufbuild/protobuf";
import { DurationSchema, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { useMemo } from "preact/hooks";
import type { GetTimeSeriesResponse, Metric } from "../../gen/funnel/ops/v1/ops_pb.js";
import { api } from "./api.js";
import type { ChartProps } from "./ui/chart.js";

/** The ranges the charts offer, each with a bucket width that keeps them readable. */
export const RANGES = {
  hour: { label: "Last hour", seconds: 3_600, step: 60, refetchMs: 15_000 },
  day: { label: "Last day", seconds: 86_400, step: 900, refetchMs: 60_000 },
  week: { label: "Last week", seconds: 604_800, step: 3_600, refetchMs: 300_000 },
} as const;

export type RangeName = keyof typeof RANGES;

/** Filters of one series request. */
export interface SeriesFilter {
  readonly partnerId?: string;
  readonly integration?: string;
  readonly trackerId?: string;
  readonly eventType?: string;
}

/** Asks the server for one metric over a range ending now, bucketed by `step` seconds. */
export function fetchSeries(metric: Metric, seconds: number, step: number, filter: SeriesFilter, signal: AbortSignal): Promise<GetTimeSeriesResponse> {
  const now = Date.now();
  return api.ops.getTimeSeries(
    {
      metric,
      from: timestampFromMs(now - seconds * 1000),
      to: timestampFromMs(now),
      step: create(DurationSchema, { seconds: BigInt(step) }),
      partnerId: filter.partnerId ?? "",
      integration: filter.integration ?? "",
      trackerId: filter.trackerId ?? "",
      eventType: filter.eventType ?? "",
    },
    { signal },
  );
}

/** A series answer as the chart draws it. */
export function chartData(response: GetTimeSeriesResponse | undefined): Pick<ChartProps, "times" | "series"> {
  if (response === undefined) return { times: [], series: [] };
  return {
    times: response.buckets.map((b) => Number(b.seconds)),
    series: response.series.map((s) => ({ label: s.key, values: s.values.map(Number) })),
  };
}

const DAY_SECONDS = 86_400;

/**
 * The last `count` UTC days up to today, oldest first: as `YYYY-MM-DD` and as the chart's
 * bucket starts. The arrays stay the same objects until the count or the day changes, so a
 * chart drawn from them is not redrawn on every render.
 */
export function useLastDays(count: number): { readonly days: readonly string[]; readonly times: readonly number[] } {
  const today = Math.floor(Date.now() / 1000 / DAY_SECONDS) * DAY_SECONDS;
  return useMemo(() => {
    const times = Array.from({ length: count }, (_, i) => today - (count - 1 - i) * DAY_SECONDS);
    return { days: times.map((t) => new Date(t * 1000).toISOString().slice(0, 10)), times };
  }, [count, today]);
}
