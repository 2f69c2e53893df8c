import { create } from "@bufbuild/protobuf";
import { type QualityRow, QualityRowSchema, RejectReason } from "../../gen/funnel/ingest/v1/ingest_pb.js";

/** Counter names in `ingest_quality`. */
export const COUNTER = {
  accepted: "accepted",
  duplicates: "duplicates",
  gaps: "gaps",
  outOfOrder: "out_of_order",
  pageViewsPaired: "page_views_paired",
  pageViewsUnpaired: "page_views_unpaired",
  unmatchedEnds: "unmatched_ends",
  lateEnds: "late_ends",
} as const;

/** One quality counter increment. */
export interface CounterRow {
  readonly day: string;
  readonly eventType: string;
  /** One of {@link COUNTER}, or a rejection's ({@link rejectedCounter}). */
  readonly counter: string;
  readonly value: number;
}

const REJECTED_PREFIX = "rejected:";

/** `REJECT_REASON_TOO_LARGE` → `too_large`: the name used in counters, metrics and the CLI. */
export const reasonName = (reason: RejectReason): string => RejectReason[reason].replace(/^REJECT_REASON_/, "").toLowerCase();

/** The counter of events rejected for `reason`. */
export const rejectedCounter = (reason: RejectReason): string => `${REJECTED_PREFIX}${reasonName(reason)}`;

/** Increments gathered in memory, added to Postgres in one statement. */
export class Counters {
  readonly #values = new Map<string, CounterRow>();

  add(day: string, eventType: string, counter: string, value = 1): void {
    if (value === 0) return;
    const key = `${day}\u0000${eventType}\u0000${counter}`;
    const existing = this.#values.get(key);
    this.#values.set(key, { day, eventType, counter, value: (existing?.value ?? 0) + value });
  }

  merge(other: Counters): void {
    for (const row of other.rows()) this.add(row.day, row.eventType, row.counter, row.value);
  }

  rows(): CounterRow[] {
    return [...this.#values.values()];
  }

  get empty(): boolean {
    return this.#values.size === 0;
  }
}

/** Folds counter rows into one {@link QualityRow} per day and event type. */
export function qualityRows(counters: readonly CounterRow[]): QualityRow[] {
  const rows = new Map<string, QualityRow>();
  for (const { day, eventType, counter, value } of counters) {
    const key = `${day} ${eventType}`;
    let row = rows.get(key);
    if (row === undefined) {
      row = create(QualityRowSchema, { day, eventType });
      rows.set(key, row);
    }
    const n = BigInt(value);
    if (counter.startsWith(REJECTED_PREFIX)) row.rejected[counter.slice(REJECTED_PREFIX.length)] = n;
    else if (counter === COUNTER.accepted) row.accepted = n;
    else if (counter === COUNTER.duplicates) row.duplicates = n;
    else if (counter === COUNTER.gaps) row.gaps = n;
    else if (counter === COUNTER.outOfOrder) row.outOfOrder = n;
    else if (counter === COUNTER.pageViewsPaired) row.pageViewsPaired = n;
    else if (counter === COUNTER.pageViewsUnpaired) row.pageViewsUnpaired = n;
    else if (counter === COUNTER.unmatchedEnds) row.unmatchedEnds = n;
    else if (counter === COUNTER.lateEnds) row.lateEnds = n;
  }
  return [...rows.values()].sort((a, b) => a.day.localeCompare(b.day) || a.eventType.localeCompare(b.eventType));
}
