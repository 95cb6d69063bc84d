-- cmf schema 10: the rewrap (every stored ciphertext moved to the newest data key), the retirement of
-- unused data keys (crypto-shredding) and the master key's previous wrapping during its rotation.

-- min_dek_term: the lowest data-key term still held. Lower terms were retired (their wrapped DEKs
-- deleted): a ciphertext naming one, restored from an old backup, is refused by every reader and by the
-- trigger below, never decrypted.
-- previous_key_id: during a master-key rotation, the key the keyring is also still wrapped by
-- (cmf_deks.wrapped_previous), so a replica whose kubelet has not yet delivered the new key keeps serving.
ALTER TABLE cmf_encryption_state
    ADD COLUMN min_dek_term integer NOT NULL DEFAULT 1 CHECK (min_dek_term >= 1),
    ADD COLUMN previous_key_id text CHECK (previous_key_id IS NULL OR enabled),
    ADD COLUMN key_rotated_at timestamptz;
ALTER TABLE cmf_deks ADD COLUMN wrapped_previous bytea;

-- One row: the latest rewrap's progress. Liveness is not stored here: the rewrap holds a session-level
-- advisory lock (db/rewrap.c) that PostgreSQL frees when its process dies, so a rewrap killed at any point
-- is simply run again; this row only says how far it got.
CREATE TABLE cmf_rewrap (
    id            smallint PRIMARY KEY CHECK (id = 1),
    state         text NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    started_by    text NOT NULL,
    target_term   integer NOT NULL,
    total         bigint NOT NULL DEFAULT 0,
    done          bigint NOT NULL DEFAULT 0,
    unreadable    bigint NOT NULL DEFAULT 0,
    batches       bigint NOT NULL DEFAULT 0,
    started_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    finished_at   timestamptz,
    error         text
);

-- The write guard of schema 6, now also refusing a ciphertext under a retired data-key term: a stale
-- replica still sealing under it, or a restore of one row from an old backup.
CREATE OR REPLACE FUNCTION cmf_secrets_check_seal_version() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    want smallint;
    min_term integer;
    term bigint;
BEGIN
    IF NEW.sealed AND NEW.data IS NOT NULL THEN
        SELECT seal_version, min_dek_term INTO want, min_term FROM cmf_encryption_state WHERE id = 1;
        IF length(NEW.data) = 0 THEN
            RAISE EXCEPTION 'secret % has empty sealed data', NEW.name USING ERRCODE = 'check_violation';
        END IF;
        IF get_byte(NEW.data, 0) < want THEN
            RAISE EXCEPTION 'secret % is sealed in ciphertext version %, below version % that this database writes',
                NEW.name, get_byte(NEW.data, 0), want USING ERRCODE = 'check_violation';
        END IF;
        IF length(NEW.data) >= 5 THEN
            term := (get_byte(NEW.data, 1)::bigint << 24) | (get_byte(NEW.data, 2) << 16)
                    | (get_byte(NEW.data, 3) << 8) | get_byte(NEW.data, 4);
            IF term < min_term THEN
                RAISE EXCEPTION 'secret % is sealed under data key term %, retired (the lowest term held is %)',
                    NEW.name, term, min_term USING ERRCODE = 'check_violation';
            END IF;
        END IF;
    END IF;
    RETURN NEW;
END
$$;

-- A rewrap changes ciphertexts, never what they hold: its transactions set cmf.quiet so the replicas'
-- caches are not emptied once per batch (a rewrap of 100,000 secrets would otherwise reload every
-- resolution a thousand times). Every other change still notifies.
CREATE OR REPLACE FUNCTION cmf_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('cmf.quiet', true), '') <> 'on' THEN
        PERFORM pg_notify('cmf_change', TG_TABLE_NAME);
    END IF;
    RETURN NULL;
END
$$;

-- During a master-key rotation, each replica says which key it serves with (db_key_holder_beat), so the
-- previous key's wrapping is destroyed only once no live replica still depends on it.
CREATE TABLE cmf_key_holders (
    holder  text PRIMARY KEY,
    key_id  text NOT NULL,
    seen_at timestamptz NOT NULL
);
