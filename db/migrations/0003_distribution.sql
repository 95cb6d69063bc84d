-- cmf schema 3: environments and their secret mappings, Kafka catalogs and databases.

CREATE TABLE cmf_environments (
    name                 text PRIMARY KEY,
    uid                  uuid NOT NULL UNIQUE,
    kubernetes_namespace text NOT NULL,
    labels               jsonb NOT NULL DEFAULT '{}',
    annotations          jsonb NOT NULL DEFAULT '{}',
    -- flinkApplicationDefaults, computePoolDefaults, statementDefaults: kept as given, returned as given.
    defaults             jsonb NOT NULL DEFAULT '{}',
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);

-- metadata.name of an EnvironmentSecretMapping is the connectionSecretId it maps in its environment.
-- A mapping never dangles: deleting its environment deletes it; deleting its secret is refused.
CREATE TABLE cmf_secret_mappings (
    environment text NOT NULL REFERENCES cmf_environments (name) ON DELETE CASCADE,
    name        text NOT NULL,
    uid         uuid NOT NULL UNIQUE,
    secret_name text NOT NULL REFERENCES cmf_secrets (name) ON DELETE RESTRICT,
    labels      jsonb NOT NULL DEFAULT '{}',
    annotations jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (environment, name)
);
CREATE INDEX cmf_secret_mappings_secret ON cmf_secret_mappings (secret_name);

-- connectionConfig maps are public configuration (sensitive keys are refused by the API).
CREATE TABLE cmf_kafka_catalogs (
    name                    text PRIMARY KEY,
    uid                     uuid NOT NULL UNIQUE,
    labels                  jsonb NOT NULL DEFAULT '{}',
    annotations             jsonb NOT NULL DEFAULT '{}',
    sr_connection_config    jsonb NOT NULL,
    sr_connection_secret_id text,
    created_at              timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL
);

-- A catalog with databases cannot be deleted (RESTRICT), so a database never loses its catalog.
CREATE TABLE cmf_kafka_databases (
    catalog                    text NOT NULL REFERENCES cmf_kafka_catalogs (name) ON DELETE RESTRICT,
    name                       text NOT NULL,
    uid                        uuid NOT NULL UNIQUE,
    labels                     jsonb NOT NULL DEFAULT '{}',
    annotations                jsonb NOT NULL DEFAULT '{}',
    kafka_connection_config    jsonb NOT NULL,
    kafka_connection_secret_id text,
    created_at                 timestamptz NOT NULL,
    updated_at                 timestamptz NOT NULL,
    PRIMARY KEY (catalog, name)
);
