-- Trackers: rows are only added, never deleted; `value` may change.
CREATE TABLE trackers (
  uuid uuid PRIMARY KEY,
  value text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- ListTrackers pages through trackers in creation order.
CREATE INDEX trackers_created ON trackers (created_at, uuid);

-- Every insert or change of a tracker wakes the caches of all API processes,
-- whoever made it (an RPC or an operator's UPDATE in psql).
CREATE FUNCTION trackers_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('funnel_trackers', NEW.uuid::text);
  RETURN NULL;
END
$$;
CREATE TRIGGER trackers_notify AFTER INSERT OR UPDATE ON trackers
  FOR EACH ROW EXECUTE FUNCTION trackers_notify();
