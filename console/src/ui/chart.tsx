import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { ComponentChildren } from "preact";
import { useEffect, useId, useRef } from "preact/hooks";
import { ErrorBanner, Status } from "./common.js";

/** One line of a chart. */
export interface ChartSeries {
  readonly label: string;
  readonly values: readonly number[];
}

/** Colours that stay apart for the usual kinds of colour blindness (Okabe–Ito). */
const PALETTE = ["#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9", "#f0e442", "#000000"];

/** The colour of the n-th series, shared by the chart and its legend. */
export function seriesColour(index: number): string {
  return PALETTE[index % PALETTE.length] ?? "#000000";
}

export interface ChartProps {
  readonly title: string;
  /** Bucket starts, Unix seconds. */
  readonly times: readonly number[];
  readonly series: readonly ChartSeries[];
  /** Bars for daily counts, lines for everything finer. */
  readonly bars?: boolean;
  readonly height?: number;
}

/**
 * A time-series chart drawn by uPlot on a canvas, with its numbers in a
 * table for screen readers and keyboard users (the canvas itself is hidden
 * from assistive technology). `data-total` carries the sum it draws, which
 * the browser tests read.
 */
export function Chart({ title, times, series, bars = false, height = 220 }: ChartProps) {
  const holder = useRef<HTMLDivElement>(null);
  const headingId = useId();
  const total = series.reduce((sum, s) => sum + s.values.reduce((a, b) => a + b, 0), 0);
  useEffect(() => {
    const element = holder.current;
    if (element === null) return;
    const data: uPlot.AlignedData = [Float64Array.from(times), ...series.map((s) => Float64Array.from(s.values))];
    const options: uPlot.Options = {
      width: Math.max(element.clientWidth, 280),
      height,
      // Axes in UTC, like every time the console shows.
      tzDate: (seconds) => uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC"),
      legend: { show: series.length > 0 },
      cursor: { drag: { x: false, y: false } },
      scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [{}, { size: 56 }],
      series: [
        {},
        ...series.map((s, i) => ({
          label: s.label,
          stroke: seriesColour(i),
          width: 2,
          ...(bars ? { paths: uPlot.paths.bars?.({ size: [0.8, 40] }), fill: `${seriesColour(i)}99` } : {}),
        })),
      ],
    };
    const plot = new uPlot(options, data, element);
    plot.root.querySelector("canvas")?.setAttribute("aria-hidden", "true");
    const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(element.clientWidth, 280), height }));
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [times, series, bars, height]);
  return (
    <figure class="chart" aria-labelledby={headingId} data-total={total}>
      <figcaption id={headingId}>{title}</figcaption>
      <div ref={holder} class="chart-canvas" />
      {series.length === 0 ? <p class="muted">No data in this range.</p> : null}
      <details>
        <summary>Totals as a table</summary>
        <table>
          <thead>
            <tr>
              <th scope="col">Series</th>
              <th scope="col">Total</th>
              <th scope="col">Peak per bucket</th>
            </tr>
          </thead>
          <tbody>
            {series.map((s) => (
              <tr key={s.label}>
                <th scope="row">{s.label}</th>
                <td>{s.values.reduce((a, b) => a + b, 0)}</td>
                <td>{Math.max(0, ...s.values)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </figure>
  );
}

/** A chart with what its query has to say under it: a status line (totals, loading) and any error. */
export function ChartPanel(props: ChartProps & { readonly error?: unknown; readonly status?: ComponentChildren }) {
  const { error, status, ...chart } = props;
  return (
    <div class="panel">
      <Chart {...chart} />
      {status !== undefined ? <Status>{status}</Status> : null}
      <ErrorBanner error={error ?? undefined} />
    </div>
  );
}
