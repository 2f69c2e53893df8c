-- Ingest: the state behind de-duplication, gap detection, page-view pairing
-- and the quality counters. Event rows themselves travel through the
-- analytics stream (analytics_outbox) to their ClickHouse tables.

-- Client event ids seen recently: a repeat is a duplicate and is not stored.
-- Kept INGEST_DEDUP_DAYS.
CREATE TABLE ingest_event_ids (
  event_id uuid PRIMARY KEY,
  received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ingest_event_ids_received_at ON ingest_event_ids (received_at);

-- The highest sequence number seen per client session, for gap detection.
CREATE TABLE ingest_sessions (
  session_id text PRIMARY KEY,
  max_seq bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ingest_sessions_updated_at ON ingest_sessions (updated_at);

-- Pairing state of one page view (user, client-generated id): the start and
-- the end as they arrive, in either order. `emitted_at` is set in the same
-- transaction that appends its page_view row, so one view yields one row
-- whatever is repeated or restarted.
CREATE TABLE ingest_page_views (
  user_id text NOT NULL,
  page_view_id uuid NOT NULL,
  page_type text NOT NULL,
  started_at timestamptz,
  start_client_time timestamptz,
  starts integer NOT NULL DEFAULT 0,
  ended_at timestamptz,
  end_client_time timestamptz,
  ends integer NOT NULL DEFAULT 0,
  emitted_at timestamptz,
  paired boolean,
  -- An end that found no start within the timeout is counted once.
  unmatched_counted boolean NOT NULL DEFAULT false,
  PRIMARY KEY (user_id, page_view_id)
);
-- Starts waiting for their end: what the timeout sweep scans.
CREATE INDEX ingest_page_views_open ON ingest_page_views (started_at) WHERE emitted_at IS NULL AND ended_at IS NULL;
-- Ends waiting for their start: counted as unmatched after the timeout, dropped after retention.
CREATE INDEX ingest_page_views_ends ON ingest_page_views (ended_at) WHERE started_at IS NULL;
-- Finished or abandoned state, for retention.
CREATE INDEX ingest_page_views_emitted ON ingest_page_views (emitted_at) WHERE emitted_at IS NOT NULL;

-- Data-quality counters per UTC day, event type and counter (accepted,
-- duplicates, gaps, out_of_order, rejected:<reason>, page-view outcomes).
CREATE TABLE ingest_quality (
  day date NOT NULL,
  event_type text NOT NULL,
  counter text NOT NULL,
  value bigint NOT NULL,
  PRIMARY KEY (day, event_type, counter)
);
