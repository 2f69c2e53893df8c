-- One row per tracking-pixel hit, written by the analytics stream.
--
-- The question asked of this table is "how many hits did tracker T get from
-- day A to day B", so the sorting key starts with tracker_id then date: the
-- primary index narrows a count to the granules of one tracker's days and
-- reads nothing else. Monthly partitions let whole months be skipped (or
-- dropped, for retention) while keeping the number of parts small; daily
-- partitions would make thousands of parts for little gain.
--
-- ip is IPv6; IPv4 clients are stored IPv4-mapped (::ffff:a.b.c.d).
-- non_replicated_deduplication_window lets a retried stream batch (same
-- insert_deduplication_token) be dropped instead of counted twice.
CREATE TABLE IF NOT EXISTS {db}.tracker_events (
  date Date,
  date_time DateTime64(3, 'UTC'),
  event_id UUID,
  tracker_id UUID,
  ip IPv6,
  user_id UUID,
  user_agent String,
  url String,
  value String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(date)
ORDER BY (tracker_id, date, date_time)
SETTINGS non_replicated_deduplication_window = 10000;
