-- A group of events is stored by one statement, which moves each session's
-- highest sequence number up and needs the number it started from to count
-- gaps: the upsert keeps it in `previous_max_seq` (0 for a new session).
ALTER TABLE ingest_sessions ADD COLUMN previous_max_seq bigint NOT NULL DEFAULT 0;
