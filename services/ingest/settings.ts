import { defineSettings, duration, integer, setting } from "../core/settings.js";

/** The ingest service's limits and its page-view pairing. */
export const ingestSettings = defineSettings({
  owner: "services/ingest",
  title: "Ingest",
  settings: {
    ingestMaxEventBytes: setting({
      variable: "INGEST_MAX_EVENT_BYTES",
      kind: integer(256, 4 * 1024 * 1024, "bytes"),
      default: "65536",
      doc: "largest event: a `Send` body, or one event of a batch",
    }),
    ingestMaxBatchBytes: setting({
      variable: "INGEST_MAX_BATCH_BYTES",
      kind: integer(1024, 4 * 1024 * 1024, "bytes"),
      default: "1048576",
      doc: "largest `SendBatch` body",
    }),
    ingestMaxBatchEvents: setting({
      variable: "INGEST_MAX_BATCH_EVENTS",
      kind: integer(1, 100_000),
      default: "1000",
      doc: "most events in one `SendBatch`",
    }),
    ingestDedupDays: setting({
      variable: "INGEST_DEDUP_DAYS",
      kind: duration({ unit: "d", min: "1d", max: "365d", bare: "d" }),
      default: "7",
      doc: "how long event ids (duplicates), session sequence numbers and page-view pairing state are kept; a bare number counts days",
    }),
    pageViewTimeoutSeconds: setting({
      variable: "PAGE_VIEW_TIMEOUT",
      kind: duration({ unit: "s", min: "1s", max: "30d" }),
      default: "12h",
      doc: "a page-view start with no end after this becomes an unpaired `page_view` row",
    }),
    ingestSweepSeconds: setting({
      variable: "INGEST_SWEEP_SECONDS",
      kind: duration({ unit: "s", min: "1s", max: "1h" }),
      default: "60",
      doc: "how often workers run the page-view timeout sweep and the ingest retention clean-up",
    }),
  },
});
