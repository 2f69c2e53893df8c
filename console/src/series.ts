import { create } from "@bufbuild/protobuf";
import { DurationSchema, timestampFromMs } from "@bufbuild/protobuf/wkt";
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
