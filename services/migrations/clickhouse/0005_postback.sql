-- Every funnel event the postback service recorded, with what it did about the postback.
CREATE TABLE IF NOT EXISTS {db}.postback_events (
  event LowCardinality(String),
  stag String,
  partner_id String,
  click_id String,
  outcome LowCardinality(String),
  delivery_id String,
  attributed UInt8,
  params Map(String, String),
  user_id String,
  device_id String,
  url String,
  ip String,
  user_agent String,
  occurred_at DateTime64(3, 'UTC'),
  recorded_at DateTime64(3, 'UTC')
) ENGINE = MergeTree
PARTITION BY toYYYYMM(recorded_at)
ORDER BY (partner_id, event, recorded_at)
SETTINGS non_replicated_deduplication_window = 10000;

-- Every attempt to send a postback (the Postgres table of the same name, kept here for good).
CREATE TABLE IF NOT EXISTS {db}.postback_deliveries (
  delivery_id UUID,
  attempt UInt32,
  partner_id String,
  event LowCardinality(String),
  stag String,
  click_id String,
  method LowCardinality(String),
  url String,
  http_status UInt16,
  response_body String,
  duration_ms Float64,
  error String,
  outcome LowCardinality(String),
  attempted_at DateTime64(3, 'UTC')
) ENGINE = MergeTree
PARTITION BY toYYYYMM(attempted_at)
ORDER BY (partner_id, attempted_at, delivery_id, attempt)
SETTINGS non_replicated_deduplication_window = 10000;
