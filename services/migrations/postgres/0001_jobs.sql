-- Attempt history of durable jobs. pg-boss keeps one row per job with the
-- last error only; every failed attempt is recorded here so a dead letter can
-- be analysed with its whole history. Rows follow the dead-letter retention.
CREATE TABLE job_failures (
  job_id uuid NOT NULL,
  queue text NOT NULL,
  attempt integer NOT NULL,
  error text NOT NULL,
  failed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (job_id, attempt)
);
CREATE INDEX job_failures_failed_at ON job_failures (failed_at);
