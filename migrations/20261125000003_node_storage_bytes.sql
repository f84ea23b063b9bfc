-- What each broker last reported storing per tenant: {"<tenant_id>": <bytes>, ...}.
-- A whole report replaces the previous one (a broker measures everything it
-- holds each time), so a tenant's usage is the sum over live nodes' rows,
-- and a node that stops heartbeating stops counting without any cleanup.
ALTER TABLE nodes ADD COLUMN storage_bytes JSONB NOT NULL DEFAULT '{}'::jsonb;
