/* crypto: master-key parsing, AES-GCM sealing in cmf's versioned format, and the DEK keyring. */
#ifndef CMF_CRYPTO_H
#define CMF_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

/*
 * Return codes: 0 on success, one of these on failure. Library error text (OpenSSL) is logged by the
 * function that saw it, with the function name; it is never part of these codes or their strings.
 */
enum {
	CRYPTO_OK = 0,
	CRYPTO_ERR_INTERNAL = -1,      /* OpenSSL failed unexpectedly (logged) */
	CRYPTO_ERR_ALLOC = -2,         /* out of memory */
	CRYPTO_ERR_INVALID_ARG = -3,   /* NULL where not allowed, bad length argument */
	CRYPTO_ERR_KEY_FORMAT = -4,    /* key material is neither raw 16/32 bytes nor base64 of 16/32 */
	CRYPTO_ERR_TRUNCATED = -5,     /* ciphertext shorter than header + tag */
	CRYPTO_ERR_VERSION = -6,       /* unknown ciphertext format version */
	CRYPTO_ERR_UNKNOWN_TERM = -7,  /* ciphertext names a DEK term the keyring does not hold */
	CRYPTO_ERR_MAC_INVALID = -8,   /* GCM tag did not verify: wrong key, wrong AAD or tampering */
	CRYPTO_ERR_RANDOM = -9,        /* RAND_bytes failed; callers treat it as fatal */
	CRYPTO_ERR_NONCE_BUDGET = -10, /* the DEK reached its encryption limit; rotate before sealing more */
	CRYPTO_ERR_NO_KEY = -11,       /* keyring holds no DEK yet */
	CRYPTO_ERR_TOO_LARGE = -12,    /* the data would exceed a buffer's cap (crypto/buf.h) */
};

/* Static English text for a CRYPTO_* code; never NULL. */
const char *crypto_strerror(int err);

/*
 * Free a buffer that held secret bytes, as OpenBSD's freezero(3): wipe its first `n` bytes with
 * OPENSSL_cleanse (which the compiler may not optimise away), then free(3) it. `p` is taken over and
 * must come from malloc (or a function documented to return malloc'd memory); NULL is a no-op.
 * Every buffer this module and k8s/ hand over as "caller wipes and frees" is freed with this.
 */
void crypto_freezero(void *p, size_t n);

/* ---- Master key (KEK) and data keys ------------------------------------------------------------- */

/* Opaque key: 16 or 32 bytes of AES key material, wiped by crypto_key_free. */
struct crypto_key;

/* Hex characters of a key id (8 bytes of HMAC-SHA256 → 16 hex characters) plus NUL. */
#define CRYPTO_KEY_ID_SIZE 17

/*
 * Parse master-key material as read from a key file, in this order (DESIGN.md):
 *  1. exactly 16 or 32 bytes: the raw key;
 *  2. otherwise trailing whitespace (space, \t, \r, \n) is stripped and the text must be base64
 *     (standard alphabet, padding required as EVP_DecodeBlock produces) that decodes to exactly 16 or
 *     32 bytes.
 * Anything else → CRYPTO_ERR_KEY_FORMAT, and `why` (if non-NULL, size `whylen`) receives one sentence
 * naming the length found and the lengths allowed, e.g.
 *   "the key is 24 bytes; an AES-GCM key must be exactly 16 or 32 bytes raw, or base64 text that
 *    decodes to exactly 16 or 32 bytes"
 * and, when the base64 text decodes to base64 text that itself decodes to 16 or 32 bytes, a hint that
 * the key was base64-encoded twice (kubectl create secret --from-file already encodes once).
 * `why` never contains key bytes. An empty input is its own message ("the key file is empty").
 * `buf` is borrowed and not modified; any internal copy of it is wiped.
 * On success *out owns a new key (free with crypto_key_free); on failure *out is NULL.
 */
int crypto_key_parse(const uint8_t *buf, size_t len, struct crypto_key **out, char *why, size_t whylen);

/* A new random key of `len` bytes (16 or 32). CRYPTO_ERR_RANDOM if RAND_bytes fails. */
int crypto_key_generate(size_t len, struct crypto_key **out);

/* A key holding a copy of `len` (16 or 32) bytes; `bytes` is borrowed. */
int crypto_key_from_bytes(const uint8_t *bytes, size_t len, struct crypto_key **out);

/* Key length in bytes (16 or 32). */
size_t crypto_key_len(const struct crypto_key *k);

/* Borrowed pointer to the key bytes, valid until crypto_key_free. Used to write keygen output only. */
const uint8_t *crypto_key_bytes(const struct crypto_key *k);

/*
 * The key id: lowercase hex of the first 8 bytes of HMAC-SHA256(key, "cmf key id v1"). Safe to log and
 * store: it identifies the key without revealing it. `out` must hold CRYPTO_KEY_ID_SIZE bytes.
 */
int crypto_key_id(const struct crypto_key *k, char out[CRYPTO_KEY_ID_SIZE]);

/* Constant-time equality of two keys (length and bytes). 1 if equal, 0 otherwise. */
int crypto_key_equal(const struct crypto_key *a, const struct crypto_key *b);

/* Wipes (OPENSSL_cleanse) and frees; NULL is a no-op. */
void crypto_key_free(struct crypto_key *k);

/* ---- Ciphertext format ---------------------------------------------------------------------------
 *   format(1) | term(4, big endian) | nonce(12, random) | ciphertext | tag(16)
 * AAD given to GCM = the 17-byte header followed by the caller's identity bytes (db, format 2:
 * "secret/<name>/<uid>/<version>"). AES-128-GCM for 16-byte keys, AES-256-GCM for 32-byte keys.
 * Formats 1 and 2 have the same layout. The format byte tells the caller which identity it bound (db:
 * format 2 adds the secret's name); it is authenticated with the header, so it cannot be changed.
 */
#define CRYPTO_FORMAT_V1 1
#define CRYPTO_FORMAT_V2 2
#define CRYPTO_FORMAT_MAX CRYPTO_FORMAT_V2
#define CRYPTO_HEADER_LEN 17
#define CRYPTO_NONCE_LEN 12
#define CRYPTO_TAG_LEN 16
#define CRYPTO_OVERHEAD (CRYPTO_HEADER_LEN + CRYPTO_TAG_LEN)

/* Largest plaintext accepted by seal/open: far above any secret, far below size_t/int overflow. */
#define CRYPTO_MAX_PLAINTEXT (16u * 1024u * 1024u)

/*
 * Seal `pt` (may be empty; ptlen ≤ CRYPTO_MAX_PLAINTEXT) under `key` in `format` (CRYPTO_FORMAT_V1 or
 * _V2, else CRYPTO_ERR_INVALID_ARG), writing `term` into the header and binding `ident` (identity bytes,
 * may be NULL when identlen is 0) as AAD.
 * On success *out is a new malloc'd buffer of *outlen = ptlen + CRYPTO_OVERHEAD bytes (caller frees);
 * on failure *out is NULL and *outlen 0. A RAND_bytes failure returns CRYPTO_ERR_RANDOM.
 */
int crypto_aead_seal_format(const struct crypto_key *key, uint8_t format, uint32_t term, const uint8_t *ident,
			    size_t identlen, const uint8_t *pt, size_t ptlen, uint8_t **out, size_t *outlen);

/* crypto_aead_seal_format in CRYPTO_FORMAT_V1 (wrapped data keys). */
int crypto_aead_seal(const struct crypto_key *key, uint32_t term, const uint8_t *ident, size_t identlen,
		     const uint8_t *pt, size_t ptlen, uint8_t **out, size_t *outlen);

/*
 * Open a ciphertext produced by crypto_aead_seal(_format) with the same key and identity.
 * Checks, before any decryption: length ≥ CRYPTO_OVERHEAD (else CRYPTO_ERR_TRUNCATED), format byte 1 or 2
 * (CRYPTO_ERR_VERSION). A tag mismatch is CRYPTO_ERR_MAC_INVALID. Nothing is written to *out unless the
 * tag verifies: on success *out is a new malloc'd buffer (always allocated, even for an empty plaintext;
 * one extra NUL byte is appended after *outlen bytes for convenience) that the caller must free with
 * crypto_freezero(*out, *outlen); on failure *out is NULL and *outlen 0. Intermediate buffers are wiped.
 */
int crypto_aead_open(const struct crypto_key *key, const uint8_t *ident, size_t identlen,
		     const uint8_t *ct, size_t ctlen, uint8_t **out, size_t *outlen);

/* Read the format byte from a ciphertext header without decrypting (TRUNCATED/VERSION checks apply). */
int crypto_aead_format(const uint8_t *ct, size_t ctlen, uint8_t *format);

/* Read the DEK term from a ciphertext header without decrypting (TRUNCATED/VERSION checks apply). */
int crypto_aead_term(const uint8_t *ct, size_t ctlen, uint32_t *term);

/* ---- Keyring: data keys (DEKs, AES-256) wrapped by the master key --------------------------------
 * Each DEK has a term (1, 2, ...). A wrapped DEK is crypto_aead_seal(master, term, ident, dek) with
 * ident = "cmf/keyring/dek/<term>", so a wrapped DEK copied to another term fails to unwrap.
 * New data is sealed under the highest term. The keyring is immutable after loading except through
 * crypto_keyring_add*, and is safe to share read-only between threads once loaded.
 */
struct crypto_keyring;

int crypto_keyring_new(struct crypto_keyring **out);

/*
 * Unwrap `wrapped` (as stored) with `master` and add it under `term`.
 * CRYPTO_ERR_MAC_INVALID means `master` is not the key the keyring was sealed with.
 */
int crypto_keyring_add_wrapped(struct crypto_keyring *kr, const struct crypto_key *master, uint32_t term,
			       const uint8_t *wrapped, size_t wrappedlen);

/*
 * Generate a new 32-byte DEK under `term` (must be greater than every term held), wrap it with
 * `master`, add it to the keyring, and hand the wrapped bytes to the caller (*wrapped malloc'd, caller
 * frees) so they can be stored.
 */
int crypto_keyring_create(struct crypto_keyring *kr, const struct crypto_key *master, uint32_t term,
			  uint8_t **wrapped, size_t *wrappedlen);

/*
 * The DEK of `term` wrapped by `from` (as stored), wrapped again by `to`: a master-key rotation moves the
 * keyring without any data key leaving this function (it is wiped here). *out as crypto_keyring_create's
 * *wrapped. CRYPTO_ERR_MAC_INVALID when `from` does not open it.
 */
int crypto_keyring_rewrap(const struct crypto_key *from, const struct crypto_key *to, uint32_t term,
			  const uint8_t *wrapped, size_t wrappedlen, uint8_t **out, size_t *outlen);

/* The highest term held, 0 if empty. */
uint32_t crypto_keyring_current_term(const struct crypto_keyring *kr);

/* Number of DEKs held. */
size_t crypto_keyring_count(const struct crypto_keyring *kr);

/* Seal in `format` under the current (highest) DEK; CRYPTO_ERR_NO_KEY if empty. As crypto_aead_seal_format. */
int crypto_keyring_seal(const struct crypto_keyring *kr, uint8_t format, const uint8_t *ident, size_t identlen,
			const uint8_t *pt, size_t ptlen, uint8_t **out, size_t *outlen);

/* Open with the DEK named in the header; CRYPTO_ERR_UNKNOWN_TERM if not held. Output as crypto_aead_open. */
int crypto_keyring_open(const struct crypto_keyring *kr, const uint8_t *ident, size_t identlen,
			const uint8_t *ct, size_t ctlen, uint8_t **out, size_t *outlen);

/* Wipes every DEK and frees; NULL is a no-op. */
void crypto_keyring_free(struct crypto_keyring *kr);

/*
 * NIST SP 800-38D §8.3: with random 96-bit nonces, at most 2^32 encryptions per key. We stop at half of
 * that so a DEK is rotated well before the bound (the count is kept in PostgreSQL by db/).
 */
#define CRYPTO_DEK_MAX_ENCRYPTIONS (UINT64_C(1) << 31)

/* Random bytes; CRYPTO_ERR_RANDOM on failure (callers treat it as fatal). */
int crypto_random(uint8_t *buf, size_t len);

/*
 * SHA-256 of `len` bytes into `out`, with the digest fetched from the provider once per process (OpenSSL 3
 * otherwise looks it up on every call: the token check and the ETag run on every request).
 * CRYPTO_OK or CRYPTO_ERR_INTERNAL (logged).
 */
int crypto_sha256(const void *data, size_t len, uint8_t out[32]);

/* CLOCK_MONOTONIC in nanoseconds: deadlines and windows (the lowest module every other one links). */
long long crypto_mono_ns(void);

/* Write a random RFC 4122 version-4 UUID, lowercase, into out[37]. */
int crypto_uuid4(char out[37]);

#endif
