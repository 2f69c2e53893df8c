-- Every attempt to deliver a mark to an integration's API (the Postgres table
-- seen_delivery_attempts, kept here for analysis after Postgres drops it).
CREATE TABLE IF NOT EXISTS {db}.seen_delivery_attempts (
  delivery_id UUID,
  attempt UInt32,
  integration LowCardinality(String),
  tag LowCardinality(String),
  item_id String,
  url String,
  http_status UInt16,
  response_body String,
  duration_ms Float64,
  error String,
  outcome LowCardinality(String),
  attempted_at DateTime64(3, 'UTC')
) ENGINE = MergeTree
PARTITION BY toYYYYMM(attempted_at)
ORDER BY (integration, attempted_at, delivery_id, attempt)
SETTINGS non_replicated_deduplication_window = 10000;
