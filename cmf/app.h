/* cmf application state shared by every request: configuration, encryption state, per-thread DB. */
#ifndef CMF_APP_H
#define CMF_APP_H

#include <pthread.h>
#include <stdbool.h>

#include "cmf/config.h"
#include "crypto/crypto.h"
#include "db/db.h"

/* Key files are 16/32 raw bytes or ~45 bytes of base64; 4 KiB leaves room for whitespace, not abuse. */
#define CMF_KEY_FILE_MAX 4096

/* A counted reference to a loaded keyring; the last release wipes it (crypto_keyring_free). */
struct cmf_keyring_ref;

struct cmf_app {
	const struct cmf_config *cfg;  /* borrowed from main */
	bool encryption_enabled;       /* the locked mode */
	char key_id[CRYPTO_KEY_ID_SIZE];
	/* Everything below is guarded by key_mutex; use the functions, not the fields. */
	pthread_mutex_t key_mutex;
	struct cmf_keyring_ref *keyring;        /* NULL while the key is unavailable */
	char key_unavailable_reason[512];       /* why, while keyring is NULL with encryption on */
	/* The master key, kept (in the secure heap) while the keyring is loaded: new DEK terms are wrapped
	 * by it and reloaded keyrings unwrapped. Wiped with the keyring on revocation. */
	struct crypto_key *master;
	/* During a master-key rotation, the previous key (encryption.key.previousFile), so new data-key terms
	 * are wrapped by it too and replicas that still have only it keep up. NULL otherwise. */
	struct crypto_key *previous;
	pthread_mutex_t reload_mutex; /* one keyring reload at a time (not key_mutex: requests never wait) */
};

/* Initialize the app's lock and state (cfg borrowed). */
void cmf_app_init(struct cmf_app *app, const struct cmf_config *cfg);

/* Drop the app's keyring (wiped once no request holds it) and destroy the lock. */
void cmf_app_cleanup(struct cmf_app *app);

/*
 * The calling thread's database connection, opened on first use with the configured URL and
 * password and closed when the thread exits. NULL only if memory is exhausted; every db_ call answers
 * DB_ERR_ALLOC for a NULL connection, so callers pass it on unchecked. A connection that failed to
 * connect is still returned; the transaction runner reconnects.
 */
struct db_conn *cmf_app_conn(struct cmf_app *app);

/* Set the password read at start (borrowed for the process lifetime; may be NULL). */
void cmf_app_set_db_password(const char *password);

/* The database password set above (NULL if none), for connections opened outside worker threads. */
const char *cmf_app_db_password(void);

/* A request's hold on the keyring: `sealer` is valid until cmf_app_sealer_release. */
struct cmf_sealer_hold {
	struct db_sealer sealer;
	struct cmf_keyring_ref *ref;
};

/*
 * Take a reference to the current keyring (or none while the key is unavailable: then, with
 * encryption enabled, sealer.keyring is NULL and the store answers DB_ERR_KEY_UNAVAILABLE). Holding it
 * never blocks a revocation: that drops the app's reference, and the last holder wipes the keyring.
 */
void cmf_app_sealer_acquire(struct cmf_app *app, struct cmf_sealer_hold *hold);
void cmf_app_sealer_release(struct cmf_app *app, struct cmf_sealer_hold *hold);

/* Install `kr` (taken over) as the current keyring, dropping any previous one. */
void cmf_app_keyring_set(struct cmf_app *app, struct crypto_keyring *kr);

/*
 * Make the key unavailable: drop the current keyring (wiped as soon as in-flight requests release it)
 * and record `reason` for /readyz. Returns true if a keyring was loaded (a transition).
 */
bool cmf_app_keyring_revoke(struct cmf_app *app, const char *reason);

/* Keep a copy of `master` (borrowed) for rotations and reloads, replacing any kept one. 0, or -1 (logged). */
int cmf_app_master_set(struct cmf_app *app, const struct crypto_key *master);

/* A copy of the kept master key (free with crypto_key_free), or NULL when none is kept. */
struct crypto_key *cmf_app_master_copy(struct cmf_app *app);

/* Keep a copy of the previous key of a master-key rotation (borrowed; NULL forgets it). 0, or -1 (logged). */
int cmf_app_previous_set(struct cmf_app *app, const struct crypto_key *previous);

/*
 * Load the keyring again from the database with the kept master key, on a connection of its own, and
 * install it, unless the loaded one already holds term `at_least` (0: reload anyway). 0 when the
 * installed keyring holds `at_least`; -1 (why in `why`, size len; may be NULL) without a master key
 * (revoked) or when the load fails: the installed keyring stays.
 */
int cmf_app_keyring_reload(struct cmf_app *app, uint32_t at_least, char *why, size_t len);

/*
 * Create a new DEK term with the kept master key (db_dek_rotate: `expect`, `audit`, *term,
 * *created as there) on `c`, then load it. DB_ERR_KEY_UNAVAILABLE without a master key.
 */
int cmf_app_dek_rotate(struct cmf_app *app, struct db_conn *c, uint32_t expect, const struct db_audit *audit,
		       uint32_t *term, bool *created, char *why, size_t len);

/* Whether a keyring is loaded; when not, copy the reason into `reason` (size len). */
bool cmf_app_keyring_loaded(struct cmf_app *app, char *reason, size_t len);

/*
 * Watch the mounted secret files every encryption.key.reloadIntervalSeconds, from a thread of its own:
 * - the master key (encryption enabled): a key file that disappears, becomes unreadable or holds
 *   another key revokes the keyring; the right key coming back reloads it from the database;
 * - the admin token (auth enabled): new content becomes the bootstrap token; a missing or invalid
 *   file disables the bootstrap token until a valid one is back.
 * Transitions are logged. Returns 0, or -1 (logged) if the thread cannot start.
 */
int cmf_keywatch_start(struct cmf_app *app);

/* Stop and join the watcher (no-op if not started). */
void cmf_keywatch_stop(void);

#endif
