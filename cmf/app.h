/* cmf application state shared by every request: configuration, encryption state, per-thread DB. */
#ifndef CMF_APP_H
#define CMF_APP_H

#include <pthread.h>
#include <stdbool.h>

#include "cmf/config.h"
#include "crypto/crypto.h"
#include "db/db.h"

struct cmf_app {
	const struct cmf_config *cfg;  /* borrowed from main */
	bool encryption_enabled;       /* the locked mode */
	char key_id[CRYPTO_KEY_ID_SIZE];
	/*
	 * The loaded keyring, NULL while the key is unavailable. Requests hold key_lock for reading
	 * while they use it; whoever replaces or wipes it holds it for writing.
	 */
	pthread_rwlock_t key_lock;
	struct crypto_keyring *keyring;
	const char *key_unavailable_reason; /* static text when keyring is NULL with encryption on */
};

/*
 * The calling thread's database connection, opened on first use with the configured URL and
 * password and closed when the thread exits. NULL only if memory is exhausted. A connection that
 * failed to connect is still returned; the transaction runner reconnects.
 */
struct db_conn *cmf_app_conn(struct cmf_app *app);

/* Set the password read at start (borrowed for the process lifetime; may be NULL). */
void cmf_app_set_db_password(const char *password);

/*
 * Take the key lock for reading and fill `sealer`; call cmf_app_sealer_release when done with it.
 * With encryption enabled and no keyring, sealer->keyring is NULL (the store answers
 * DB_ERR_KEY_UNAVAILABLE).
 */
void cmf_app_sealer_acquire(struct cmf_app *app, struct db_sealer *sealer);
void cmf_app_sealer_release(struct cmf_app *app);

#endif
