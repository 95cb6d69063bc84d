-- cmf schema 4: CsfleConfigs (client-side field-level encryption declarations) and the databases using them.

-- spec is the checked declaration as given (it holds no secret: KMS credentials are a Secret that
-- credentials_secret_id, a copy of spec.kms.credentialsSecretId, names per environment).
CREATE TABLE cmf_csfle_configs (
    name                  text PRIMARY KEY,
    uid                   uuid NOT NULL UNIQUE,
    labels                jsonb NOT NULL DEFAULT '{}',
    annotations           jsonb NOT NULL DEFAULT '{}',
    spec                  jsonb NOT NULL,
    credentials_secret_id text,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL
);

-- A CsfleConfig in use cannot be deleted (RESTRICT): a database never silently loses its encryption.
ALTER TABLE cmf_kafka_databases
    ADD COLUMN csfle_config text REFERENCES cmf_csfle_configs (name) ON DELETE RESTRICT;
CREATE INDEX cmf_kafka_databases_csfle ON cmf_kafka_databases (csfle_config);
