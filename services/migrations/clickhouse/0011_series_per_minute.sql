-- Counts per minute for the console's charts (OpsService/GetTimeSeries with a
-- step of whole minutes and no partner, integration or tracker filter): a week
-- is at most 10,080 rows per key here instead of every row of the week.
-- Materialized views fill it as rows arrive. A batch the analytics stream sends
-- again is dropped by the source table (its insert_deduplication_token) and,
-- as the stream inserts with deduplicate_blocks_in_dependent_materialized_views,
-- by this table too (hence its own deduplication window), so it is counted once.
-- SummingMergeTree adds up the rows of one (metric, minute, key) as parts merge;
-- readers sum(n) anyway. Ingest events are not rolled up: their tables are
-- sorted by day first, and a new event type would need a view of its own.
CREATE TABLE IF NOT EXISTS {db}.series_per_minute (
  metric LowCardinality(String),
  minute DateTime('UTC'),
  key LowCardinality(String),
  n UInt64
) ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (metric, minute, key)
SETTINGS non_replicated_deduplication_window = 10000;

-- Rows stored before the views existed.
INSERT INTO {db}.series_per_minute
SELECT 'postback_attempts', toStartOfMinute(attempted_at) AS m, toString(outcome) AS k, count() FROM {db}.postback_deliveries GROUP BY m, k;

INSERT INTO {db}.series_per_minute
SELECT 'postback_events', toStartOfMinute(recorded_at) AS m, toString(outcome) AS k, count() FROM {db}.postback_events GROUP BY m, k;

INSERT INTO {db}.series_per_minute
SELECT 'seen_attempts', toStartOfMinute(attempted_at) AS m, toString(outcome) AS k, count() FROM {db}.seen_delivery_attempts GROUP BY m, k;

INSERT INTO {db}.series_per_minute
SELECT 'tracker_hits', toStartOfMinute(date_time) AS m, 'hits', count() FROM {db}.tracker_events GROUP BY m;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.postback_attempts_per_minute TO {db}.series_per_minute AS
SELECT 'postback_attempts' AS metric, toStartOfMinute(attempted_at) AS minute, toString(outcome) AS key, count() AS n
FROM {db}.postback_deliveries GROUP BY minute, key;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.postback_events_per_minute TO {db}.series_per_minute AS
SELECT 'postback_events' AS metric, toStartOfMinute(recorded_at) AS minute, toString(outcome) AS key, count() AS n
FROM {db}.postback_events GROUP BY minute, key;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.seen_attempts_per_minute TO {db}.series_per_minute AS
SELECT 'seen_attempts' AS metric, toStartOfMinute(attempted_at) AS minute, toString(outcome) AS key, count() AS n
FROM {db}.seen_delivery_attempts GROUP BY minute, key;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.tracker_hits_per_minute TO {db}.series_per_minute AS
SELECT 'tracker_hits' AS metric, toStartOfMinute(date_time) AS minute, 'hits' AS key, count() AS n
FROM {db}.tracker_events GROUP BY minute;
