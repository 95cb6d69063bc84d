-- cmf schema 1: the encryption-mode lock, the DEK keyring and secrets.

-- The mode lock: exactly one row, written by the first start (db_init), compared by every later one.
CREATE TABLE cmf_encryption_state (
    id             smallint PRIMARY KEY CHECK (id = 1),
    enabled        boolean NOT NULL,
    -- HMAC-SHA256 fingerprint of the master key (crypto_key_id); NULL when encryption is disabled.
    key_id         text CHECK ((enabled AND key_id IS NOT NULL) OR (NOT enabled AND key_id IS NULL)),
    initialized_at timestamptz NOT NULL DEFAULT now()
);

-- Data keys wrapped by the master key. New data is sealed under the highest term.
CREATE TABLE cmf_deks (
    term        integer PRIMARY KEY CHECK (term > 0),
    wrapped     bytea NOT NULL,
    -- Encryptions reserved under this DEK: random 96-bit nonces allow 2^32 per key (NIST SP 800-38D).
    -- Each process reserves blocks (db/secrets.c) and counts them off in memory; unused reservations
    -- count as used, so this is an upper bound on the encryptions made.
    encryptions bigint NOT NULL DEFAULT 0 CHECK (encryptions >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cmf_secrets (
    name        text PRIMARY KEY,
    uid         uuid NOT NULL UNIQUE,
    version     bigint NOT NULL CHECK (version > 0),
    labels      jsonb NOT NULL DEFAULT '{}',
    annotations jsonb NOT NULL DEFAULT '{}',
    -- true: data is a cmf ciphertext (AAD binds secret/<uid>/<version>); false: plaintext JSON
    -- (only in a database initialized with encryption disabled).
    sealed      boolean NOT NULL,
    data        bytea NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
