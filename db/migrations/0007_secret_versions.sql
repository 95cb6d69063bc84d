-- cmf schema 7: secret versions. Every version of a secret, the current one included, is a row here:
-- its sealed data (the same ciphertext as cmf_secrets holds for the current version, bound by its AAD to
-- the secret's name, uid and this version, so a version's ciphertext copied over another's does not
-- open), when it was written and by whom. A version beyond secrets.maxVersions is destroyed: its data set
-- to NULL, its row (the metadata) kept. Deleting the secret deletes its versions with it.
--
-- No change-notification trigger: the caches hold no version (GET ?version=N and the version list read
-- the database every time), and every write to this table happens in the statement that writes the
-- secret's row in cmf_secrets, which notifies.
CREATE TABLE cmf_secret_versions (
    name         text NOT NULL REFERENCES cmf_secrets (name) ON DELETE CASCADE,
    version      bigint NOT NULL CHECK (version > 0),
    uid          uuid NOT NULL,
    sealed       boolean NOT NULL,
    data         bytea,
    created_at   timestamptz NOT NULL,
    created_by   text NOT NULL,
    destroyed_at timestamptz CHECK ((data IS NULL) = (destroyed_at IS NOT NULL)),
    PRIMARY KEY (name, version)
);

-- The secrets stored before this schema: their current version, written by an unknown principal.
INSERT INTO cmf_secret_versions (name, version, uid, sealed, data, created_at, created_by)
    SELECT name, version, uid, sealed, data, updated_at, '' FROM cmf_secrets;

-- The same guard as cmf_secrets: nothing writes a kept version below the ciphertext version in force
-- (a destroyed version, NULL data, passes).
CREATE TRIGGER cmf_secret_versions_seal_version BEFORE INSERT OR UPDATE OF sealed, data ON cmf_secret_versions
    FOR EACH ROW EXECUTE FUNCTION cmf_secrets_check_seal_version();
