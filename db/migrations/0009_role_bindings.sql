-- cmf schema 9: role bindings. A principal that is not a cmf token (a client certificate's mapped name,
-- "cert:<name>") gets its role here: admin, environment-reader (scoped to environments) or
-- metrics-reader. One binding per principal, so a principal has exactly one role, as a token has.
-- Every process keeps all bindings in memory (cmf/cache.c), reloaded whole on this table's notification.
CREATE TABLE cmf_role_bindings (
    name         text PRIMARY KEY,
    uid          uuid NOT NULL UNIQUE,
    principal    text NOT NULL UNIQUE CHECK (principal ~ '^(cert|oidc):.'),
    role         text NOT NULL CHECK (role IN ('admin', 'environment-reader', 'metrics-reader')),
    environments text[] NOT NULL DEFAULT '{}',
    labels       jsonb NOT NULL DEFAULT '{}',
    annotations  jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    CHECK ((role = 'environment-reader') = (cardinality(environments) > 0))
);
CREATE TRIGGER cmf_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON cmf_role_bindings
    FOR EACH STATEMENT EXECUTE FUNCTION cmf_notify_change();
