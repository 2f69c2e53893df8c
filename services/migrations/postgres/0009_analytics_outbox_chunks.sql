-- An outbox row now carries a chunk: every row one commit appended to one
-- stream, as JSONEachRow lines (`rows` of them). A group commit of 200 events
-- writes one outbox row instead of 200, and a claim moves a few chunks
-- instead of thousands of rows. The text is not re-parsed by Postgres: it is
-- written by JSON.stringify and read only by ClickHouse.
ALTER TABLE analytics_outbox RENAME COLUMN row TO content;
ALTER TABLE analytics_outbox ALTER COLUMN content TYPE text;
ALTER TABLE analytics_outbox ADD COLUMN rows integer NOT NULL DEFAULT 1;
