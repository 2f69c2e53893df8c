-- The analytics stream: rows durable in Postgres on their way to ClickHouse.
-- `stream` names the ClickHouse table; `batch_id` is set when a streamer claims
-- the row, fixing the batch's content before anything is sent, so a retried
-- batch is byte-for-byte the same and ClickHouse's insert deduplication drops it.
CREATE TABLE analytics_outbox (
  id bigserial PRIMARY KEY,
  stream text NOT NULL,
  row jsonb NOT NULL,
  appended_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  batch_id bigint
);
-- Unclaimed rows in order, per stream: what the claim query scans.
CREATE INDEX analytics_outbox_unclaimed ON analytics_outbox (stream, id) WHERE batch_id IS NULL;
CREATE INDEX analytics_outbox_batch ON analytics_outbox (batch_id) WHERE batch_id IS NOT NULL;

-- A claimed batch: leased by one streamer until `leased_until`; a batch whose
-- lease ran out (its streamer died) is taken over and sent again, same content,
-- same deduplication token.
CREATE TABLE analytics_batches (
  id bigserial PRIMARY KEY,
  stream text NOT NULL,
  rows integer NOT NULL,
  leased_until timestamptz NOT NULL,
  attempts integer NOT NULL DEFAULT 0,
  last_error text,
  created_at timestamptz NOT NULL DEFAULT now()
);
