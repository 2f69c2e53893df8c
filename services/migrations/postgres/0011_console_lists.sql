-- The console lists Seen api deliveries newest first, of all integrations or
-- one, a page at a time ((created_at, id) after the last row): without these
-- every page sorted the whole table.
CREATE INDEX IF NOT EXISTS seen_deliveries_created ON seen_deliveries (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS seen_deliveries_integration_created ON seen_deliveries (integration, created_at DESC, id DESC);
