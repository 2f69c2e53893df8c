-- A claimed batch now carries its rows (JSONEachRow text) instead of marking
-- them in the outbox: claiming moves rows out of analytics_outbox in one
-- DELETE, and nothing is updated row by row. Each row is written once
-- (append) and deleted once (claim). The batch's content is fixed at claim
-- time, so a retried batch is the same rows under the same deduplication
-- token. `row` becomes json: kept as the appended text, never re-parsed.
ALTER TABLE analytics_batches
  ADD COLUMN content text,
  ADD COLUMN oldest_appended_at timestamptz;

-- Batches claimed under the previous scheme take their rows along.
UPDATE analytics_batches b
   SET content = claimed.content, oldest_appended_at = claimed.oldest
  FROM (SELECT batch_id, string_agg(row::text, E'\n' ORDER BY id) AS content, min(appended_at) AS oldest
          FROM analytics_outbox WHERE batch_id IS NOT NULL GROUP BY batch_id) AS claimed
 WHERE claimed.batch_id = b.id;
DELETE FROM analytics_outbox WHERE batch_id IS NOT NULL;
DELETE FROM analytics_batches WHERE content IS NULL;
ALTER TABLE analytics_batches
  ALTER COLUMN content SET NOT NULL,
  ALTER COLUMN oldest_appended_at SET NOT NULL;

DROP INDEX analytics_outbox_unclaimed;
DROP INDEX analytics_outbox_batch;
ALTER TABLE analytics_outbox DROP COLUMN batch_id;
ALTER TABLE analytics_outbox ALTER COLUMN row TYPE json USING row::json;
-- The claim query scans one stream's rows in order.
CREATE INDEX analytics_outbox_stream ON analytics_outbox (stream, id);
