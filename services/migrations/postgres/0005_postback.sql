-- Partners: who receives which postback. `config` holds the per-event
-- requests, timeout, retry policy and download policy as the service
-- validated them (services/postback/partner.ts).
CREATE TABLE postback_partners (
  id text PRIMARY KEY,
  name text NOT NULL,
  enabled boolean NOT NULL,
  config jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- The latest download of each stag, with its link's query parameters, kept
-- for the attribution window so the install and authorization of the same
-- stag can use them. Expired rows are deleted by the worker.
CREATE TABLE postback_downloads (
  stag text PRIMARY KEY,
  params jsonb NOT NULL,
  occurred_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX postback_downloads_expires_at ON postback_downloads (expires_at);

-- The once-per-click ledger: one row per stag and event ('i' install,
-- 'a' authorization, 'd' download of a partner with download policy `once`),
-- written in the transaction that queues the postback. The primary key is the
-- guarantee: a second install of a stag finds the row and queues nothing.
-- Rows are kept for good.
CREATE TABLE postback_ledger (
  stag text NOT NULL,
  event "char" NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (stag, event)
);

-- One row per postback to send (a delivery); its id is `{delivery_id}`.
-- `generation` grows on every replay, so a retry scheduled before the replay
-- recognises itself as stale; `attempt_base` is the attempt count when the
-- current retry budget began.
CREATE TABLE postbacks (
  id uuid PRIMARY KEY,
  partner_id text NOT NULL,
  event text NOT NULL,
  stag text NOT NULL,
  click_id text NOT NULL,
  params jsonb NOT NULL,
  user_id text NOT NULL DEFAULT '',
  device_id text NOT NULL DEFAULT '',
  occurred_at timestamptz NOT NULL,
  status text NOT NULL DEFAULT 'pending',
  attempts integer NOT NULL DEFAULT 0,
  attempt_base integer NOT NULL DEFAULT 0,
  generation integer NOT NULL DEFAULT 0,
  last_http_status integer,
  last_error text,
  next_attempt_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX postbacks_created ON postbacks (created_at DESC, id DESC);
CREATE INDEX postbacks_partner_created ON postbacks (partner_id, created_at DESC);
CREATE INDEX postbacks_stag ON postbacks (stag);
-- Only unfinished postbacks: what the backlog metrics and status filters scan.
CREATE INDEX postbacks_unfinished ON postbacks (status, created_at) WHERE status IN ('pending', 'retrying', 'dead');

-- Every attempt to send a postback, also streamed to ClickHouse
-- (`postback_deliveries` there) for long-term analysis.
CREATE TABLE postback_deliveries (
  delivery_id uuid NOT NULL REFERENCES postbacks (id) ON DELETE CASCADE,
  attempt integer NOT NULL,
  partner_id text NOT NULL,
  event text NOT NULL,
  stag text NOT NULL,
  click_id text NOT NULL,
  method text NOT NULL,
  url text NOT NULL,
  http_status integer,
  response_body bytea NOT NULL,
  duration_ms double precision NOT NULL,
  error text NOT NULL,
  outcome text NOT NULL,
  attempted_at timestamptz NOT NULL,
  PRIMARY KEY (delivery_id, attempt)
);
