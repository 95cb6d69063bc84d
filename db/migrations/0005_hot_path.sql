-- cmf schema 5: change notification for the in-memory caches, an audit trail that takes batches and
-- merged events cheaply, and the metrics-reader role.

-- Every table that a token check or a resolution reads notifies channel 'cmf_change' with its name, once
-- per statement. PostgreSQL delivers notifications at commit and folds duplicates within a transaction,
-- so a write costs one notification; SQL run outside cmf (a restore, an emergency DELETE of a token row)
-- invalidates the caches just the same.
CREATE FUNCTION cmf_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('cmf_change', TG_TABLE_NAME);
    RETURN NULL;
END
$$;
CREATE TRIGGER cmf_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON cmf_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION cmf_notify_change();
CREATE TRIGGER cmf_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON cmf_environments
    FOR EACH STATEMENT EXECUTE FUNCTION cmf_notify_change();
CREATE TRIGGER cmf_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON cmf_secret_mappings
    FOR EACH STATEMENT EXECUTE FUNCTION cmf_notify_change();
CREATE TRIGGER cmf_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON cmf_secrets
    FOR EACH STATEMENT EXECUTE FUNCTION cmf_notify_change();
CREATE TRIGGER cmf_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON cmf_kafka_catalogs
    FOR EACH STATEMENT EXECUTE FUNCTION cmf_notify_change();
CREATE TRIGGER cmf_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON cmf_kafka_databases
    FOR EACH STATEMENT EXECUTE FUNCTION cmf_notify_change();
CREATE TRIGGER cmf_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON cmf_csfle_configs
    FOR EACH STATEMENT EXECUTE FUNCTION cmf_notify_change();

-- Identical events (same client address, principal, action, route and status) within one second are one
-- row: count of them, the first (time) and last time, the first request id. resource is cut at 256 bytes
-- (resource_cut says so); route is the route's pattern, or 'unrouted'.
ALTER TABLE cmf_audit_events
    ADD COLUMN count integer NOT NULL DEFAULT 1 CHECK (count >= 1),
    ADD COLUMN last_time timestamptz,
    ADD COLUMN route text NOT NULL DEFAULT '',
    ADD COLUMN resource_cut boolean NOT NULL DEFAULT false;
-- The trail is listed newest first by event time, ties by id: events that waited in a merge window are
-- inserted up to a second after later ones, so insertion order (id) is not event order. A B-tree on an
-- ever-increasing key only ever appends to its rightmost page, so it stays cheap for the writer.
DROP INDEX cmf_audit_events_time;
CREATE INDEX cmf_audit_events_time ON cmf_audit_events (time, id);

ALTER TABLE cmf_tokens DROP CONSTRAINT cmf_tokens_role_check;
ALTER TABLE cmf_tokens ADD CONSTRAINT cmf_tokens_role_check
    CHECK (role IN ('admin', 'environment-reader', 'metrics-reader'));
