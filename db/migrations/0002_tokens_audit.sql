-- cmf schema 2: API tokens (stored only as hashes) and the audit trail.

-- A token is "cmf_<id>_<secret>": the id finds the row, SHA-256 of the secret is compared in constant
-- time. The token itself is never stored; it is shown once, when created.
CREATE TABLE cmf_tokens (
    id           text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
    name         text NOT NULL,
    uid          uuid NOT NULL UNIQUE,
    role         text NOT NULL CHECK (role IN ('admin', 'environment-reader')),
    environments text[] NOT NULL DEFAULT '{}',
    secret_hash  bytea NOT NULL CHECK (length(secret_hash) = 32),
    expires_at   timestamptz,
    created_at   timestamptz NOT NULL,
    created_by   text NOT NULL,
    revoked_at   timestamptz,
    revoked_by   text
);
-- Names are unique among live tokens; a revoked token keeps its row (the audit trail names it).
CREATE UNIQUE INDEX cmf_tokens_live_name ON cmf_tokens (name) WHERE revoked_at IS NULL;

-- Every write, every response carrying decrypted data, every refused authentication. Never a value.
CREATE TABLE cmf_audit_events (
    id             bigserial PRIMARY KEY,
    time           timestamptz NOT NULL DEFAULT clock_timestamp(),
    principal      text NOT NULL,
    action         text NOT NULL,
    resource       text NOT NULL DEFAULT '',
    -- unknown: the connection was lost during COMMIT, so whether the write applied is not known.
    outcome        text NOT NULL CHECK (outcome IN ('success', 'failure', 'denied', 'unknown')),
    status         integer NOT NULL,
    request_id     text NOT NULL,
    client_address text NOT NULL DEFAULT '',
    client_cert    text NOT NULL DEFAULT ''
);
CREATE INDEX cmf_audit_events_time ON cmf_audit_events (time);
CREATE INDEX cmf_audit_events_principal ON cmf_audit_events (principal, time);
CREATE INDEX cmf_audit_events_resource ON cmf_audit_events (resource, time);
