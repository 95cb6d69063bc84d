/* cmf application state: one database connection per worker thread, and the counted keyring. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "cmf/app.h"
#include "cmf/log.h"

struct cmf_keyring_ref {
	struct crypto_keyring *kr;
	int refs; /* guarded by the app's key_mutex */
};

static pthread_key_t conn_key;
static pthread_once_t conn_once = PTHREAD_ONCE_INIT;
static const char *db_password;

static void
conn_destroy(void *p)
{
	db_conn_close(p);
}

static void
conn_key_init(void)
{
	if (pthread_key_create(&conn_key, conn_destroy) != 0)
		abort(); /* only fails when the process is out of keys: nothing sensible to do */
}

void
cmf_app_set_db_password(const char *password)
{
	db_password = password;
}

const char *
cmf_app_db_password(void)
{
	return db_password;
}

struct db_conn *
cmf_app_conn(struct cmf_app *app)
{
	struct db_conn *c;

	pthread_once(&conn_once, conn_key_init);
	c = pthread_getspecific(conn_key);
	if (c != NULL)
		return c;
	/* A failed first connect still yields a handle; the transaction runner reconnects later. */
	if (db_conn_open(app->cfg->database_url, db_password, &c) == DB_ERR_ALLOC)
		return NULL;
	pthread_setspecific(conn_key, c);
	return c;
}

void
cmf_app_init(struct cmf_app *app, const struct cmf_config *cfg)
{
	app->cfg = cfg;
	app->encryption_enabled = cfg->encryption_enabled;
	app->keyring = NULL;
	app->key_unavailable_reason[0] = '\0';
	pthread_mutex_init(&app->key_mutex, NULL);
}

/* Drop one reference; the last one wipes the DEKs. Called with key_mutex held. */
static void
ref_put_locked(struct cmf_keyring_ref *ref)
{
	if (ref != NULL && --ref->refs == 0) {
		crypto_keyring_free(ref->kr);
		free(ref);
	}
}

void
cmf_app_cleanup(struct cmf_app *app)
{
	pthread_mutex_lock(&app->key_mutex);
	ref_put_locked(app->keyring);
	app->keyring = NULL;
	pthread_mutex_unlock(&app->key_mutex);
	pthread_mutex_destroy(&app->key_mutex);
}

void
cmf_app_sealer_acquire(struct cmf_app *app, struct cmf_sealer_hold *hold)
{
	pthread_mutex_lock(&app->key_mutex);
	hold->ref = app->keyring;
	if (hold->ref != NULL)
		hold->ref->refs++;
	pthread_mutex_unlock(&app->key_mutex);
	hold->sealer.enabled = app->encryption_enabled;
	hold->sealer.keyring = hold->ref != NULL ? hold->ref->kr : NULL;
}

void
cmf_app_sealer_release(struct cmf_app *app, struct cmf_sealer_hold *hold)
{
	pthread_mutex_lock(&app->key_mutex);
	ref_put_locked(hold->ref);
	pthread_mutex_unlock(&app->key_mutex);
	hold->ref = NULL;
	hold->sealer.keyring = NULL;
}

void
cmf_app_keyring_set(struct cmf_app *app, struct crypto_keyring *kr)
{
	struct cmf_keyring_ref *ref = NULL;

	if (kr != NULL) {
		ref = calloc(1, sizeof(*ref));
		if (ref == NULL) {
			/* Without a ref the key stays unavailable (503), which is safe; wipe what we were given. */
			cmf_error("%s: out of memory", __func__);
			crypto_keyring_free(kr);
			return;
		}
		ref->kr = kr;
		ref->refs = 1;
	}
	pthread_mutex_lock(&app->key_mutex);
	ref_put_locked(app->keyring);
	app->keyring = ref;
	if (ref != NULL)
		app->key_unavailable_reason[0] = '\0';
	pthread_mutex_unlock(&app->key_mutex);
}

bool
cmf_app_keyring_revoke(struct cmf_app *app, const char *reason)
{
	bool was_loaded;

	pthread_mutex_lock(&app->key_mutex);
	was_loaded = app->keyring != NULL;
	ref_put_locked(app->keyring);
	app->keyring = NULL;
	snprintf(app->key_unavailable_reason, sizeof(app->key_unavailable_reason), "%s", reason);
	pthread_mutex_unlock(&app->key_mutex);
	return was_loaded;
}

bool
cmf_app_keyring_loaded(struct cmf_app *app, char *reason, size_t len)
{
	bool loaded;

	pthread_mutex_lock(&app->key_mutex);
	loaded = app->keyring != NULL;
	if (!loaded && reason != NULL && len > 0)
		snprintf(reason, len, "%s", app->key_unavailable_reason[0] != '\0' ? app->key_unavailable_reason
										    : "keyring not loaded");
	pthread_mutex_unlock(&app->key_mutex);
	return loaded;
}
