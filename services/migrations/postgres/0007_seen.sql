-- Seen: marks ("shown to this identity"), per-tag retention, integrations,
-- api deliveries with every attempt, and topic feeds with consumer positions.

-- Tags with a retention of their own; other tags use SEEN_DEFAULT_RETENTION.
CREATE TABLE seen_tags (
  tag text PRIMARY KEY,
  retention_seconds bigint NOT NULL CHECK (retention_seconds > 0),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per (identity, tag, id). A mark's expiry is first_seen_at plus the
-- tag's retention as it is now, so a changed retention applies to old marks too.
CREATE TABLE seen_marks (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  identity_key text NOT NULL,
  tag text NOT NULL,
  item_id text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('client', 'driver', 'unauthorized')),
  -- The identity's ids as delivered (JSON, per kind).
  identity jsonb NOT NULL,
  first_seen_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (identity_key, tag, item_id)
);
CREATE INDEX seen_marks_by_caller ON seen_marks (identity_key, first_seen_at, id);
CREATE INDEX seen_marks_by_age ON seen_marks (first_seen_at);

CREATE TABLE seen_integrations (
  name text PRIMARY KEY,
  tags text[] NOT NULL,
  enabled boolean NOT NULL DEFAULT true,
  kind text NOT NULL CHECK (kind IN ('api', 'topic')),
  url text,
  timeout_ms integer,
  max_attempts integer,
  initial_backoff_ms integer,
  max_backoff_ms integer,
  topic text,
  topic_retention_seconds bigint,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CHECK ((kind = 'api') = (url IS NOT NULL)),
  CHECK ((kind = 'topic') = (topic IS NOT NULL))
);
CREATE INDEX seen_integrations_by_tag ON seen_integrations USING gin (tags);

-- One row per (mark, api integration): the delivery's state. Each attempt is
-- a job of the `seen.deliver` queue; the row says which attempt is current.
CREATE TABLE seen_deliveries (
  id uuid PRIMARY KEY,
  mark_id uuid NOT NULL,
  integration text NOT NULL,
  tag text NOT NULL,
  item_id text NOT NULL,
  -- The request body, fixed when the mark is stored.
  body jsonb NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead', 'cancelled')),
  attempts integer NOT NULL DEFAULT 0,
  -- Attempts before the current round (a redriven dead delivery starts a new round).
  attempt_base integer NOT NULL DEFAULT 0,
  -- Without max_attempts, retries stop here: when the mark's retention ends.
  give_up_at timestamptz NOT NULL,
  last_error text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  next_attempt_at timestamptz,
  finished_at timestamptz,
  UNIQUE (mark_id, integration)
);
CREATE INDEX seen_deliveries_pending ON seen_deliveries (integration, created_at) WHERE status = 'pending';
CREATE INDEX seen_deliveries_finished ON seen_deliveries (finished_at) WHERE finished_at IS NOT NULL;

-- Every attempt of every api delivery (also streamed to ClickHouse).
CREATE TABLE seen_delivery_attempts (
  delivery_id uuid NOT NULL,
  attempt integer NOT NULL,
  integration text NOT NULL,
  url text NOT NULL,
  http_status integer,
  response_body text NOT NULL,
  duration_ms double precision NOT NULL,
  error text NOT NULL,
  outcome text NOT NULL CHECK (outcome IN ('delivered', 'retry', 'dead')),
  attempted_at timestamptz NOT NULL,
  PRIMARY KEY (delivery_id, attempt)
);
CREATE INDEX seen_delivery_attempts_by_age ON seen_delivery_attempts (attempted_at);

-- Topic feeds. Readers take messages in (tx_id, seq) order and only from
-- transactions older than every one still running, so a message committed
-- late can never fall behind a consumer's position.
CREATE TABLE seen_topic_messages (
  topic text NOT NULL,
  tx_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
  seq bigint GENERATED ALWAYS AS IDENTITY,
  message_id uuid NOT NULL,
  tag text NOT NULL,
  item_id text NOT NULL,
  kind text NOT NULL,
  identity jsonb NOT NULL,
  seen_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (topic, tx_id, seq)
);
CREATE INDEX seen_topic_messages_by_age ON seen_topic_messages (created_at);

-- Each consumer's acknowledged position per topic.
CREATE TABLE seen_topic_consumers (
  topic text NOT NULL,
  consumer text NOT NULL,
  acked_tx_id xid8 NOT NULL,
  acked_seq bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (topic, consumer)
);
