-- cmf schema 8: data-key rotation. A new DEK term (an INSERT into cmf_deks, by any replica or `cmf rotate
-- dek`) is announced on cmf_change like the other tables, so every replica loads the keyring again
-- without a restart. Not on the encryptions counter: every process updates it once per 1,024 writes, and
-- that changes nothing the others hold.
CREATE TRIGGER cmf_notify AFTER INSERT OR UPDATE OF term, wrapped OR DELETE OR TRUNCATE ON cmf_deks
    FOR EACH STATEMENT EXECUTE FUNCTION cmf_notify_change();
