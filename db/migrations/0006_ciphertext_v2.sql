-- cmf schema 6: ciphertext version 2, whose identity (AAD) binds each secret's name as well as its uid and
-- version, so a ciphertext moved to another secret, uid and version included, does not open.
--
-- seal_version is the version cmf writes: the flag that switches a new version on. A release that can read
-- a version must run everywhere before a migration raises this flag (this one raises it to 2).
-- min_open_version is the lowest version cmf opens: raised to seal_version at start, under the
-- initialization lock, once every stored secret is re-sealed, so an older ciphertext put back later
-- (a restore of one row, an UPDATE) is refused.
ALTER TABLE cmf_encryption_state
    ADD COLUMN seal_version smallint NOT NULL DEFAULT 2 CHECK (seal_version BETWEEN 1 AND 2),
    ADD COLUMN min_open_version smallint NOT NULL DEFAULT 1,
    ADD CHECK (min_open_version BETWEEN 1 AND seal_version);

-- Nothing writes a sealed secret below seal_version: not a pod of an older release still running during
-- the upgrade (its write fails instead of storing what could not be opened after the re-seal), not SQL
-- run outside cmf.
CREATE FUNCTION cmf_secrets_check_seal_version() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    want smallint;
BEGIN
    IF NEW.sealed THEN
        SELECT seal_version INTO want FROM cmf_encryption_state WHERE id = 1;
        IF length(NEW.data) = 0 THEN
            RAISE EXCEPTION 'secret % has empty sealed data', NEW.name USING ERRCODE = 'check_violation';
        END IF;
        IF get_byte(NEW.data, 0) < want THEN
            RAISE EXCEPTION 'secret % is sealed in ciphertext version %, below version % that this database writes',
                NEW.name, get_byte(NEW.data, 0), want USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER cmf_secrets_seal_version BEFORE INSERT OR UPDATE OF sealed, data ON cmf_secrets
    FOR EACH ROW EXECUTE FUNCTION cmf_secrets_check_seal_version();
