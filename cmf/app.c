/* cmf application state: one database connection per worker thread, and the counted keyring. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmf/app.h"
#include "cmf/log.h"
#include "cmf/metrics.h"

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
	app->master = NULL;
	app->previous = NULL;
	pthread_mutex_init(&app->key_mutex, NULL);
	pthread_mutex_init(&app->reload_mutex, NULL);
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
	crypto_key_free(app->master);
	app->master = NULL;
	crypto_key_free(app->previous);
	app->previous = NULL;
	pthread_mutex_unlock(&app->key_mutex);
	pthread_mutex_destroy(&app->key_mutex);
	pthread_mutex_destroy(&app->reload_mutex);
}

/* A copy of a kept key (NULL: none kept, or out of memory), so no lock is held while it is used. */
static struct crypto_key *
key_copy(struct cmf_app *app, struct crypto_key *const *slot)
{
	struct crypto_key *k = NULL;

	pthread_mutex_lock(&app->key_mutex);
	if (*slot != NULL && crypto_key_from_bytes(crypto_key_bytes(*slot), crypto_key_len(*slot), &k) != CRYPTO_OK)
		k = NULL;
	pthread_mutex_unlock(&app->key_mutex);
	return k;
}

static struct crypto_key *
master_copy(struct cmf_app *app)
{
	return key_copy(app, &app->master);
}

struct crypto_key *
cmf_app_master_copy(struct cmf_app *app)
{
	return master_copy(app);
}

int
cmf_app_previous_set(struct cmf_app *app, const struct crypto_key *previous)
{
	struct crypto_key *k = NULL;

	if (previous != NULL &&
	    crypto_key_from_bytes(crypto_key_bytes(previous), crypto_key_len(previous), &k) != CRYPTO_OK) {
		cmf_error("%s: cannot keep the previous master key (out of secure memory?)", __func__);
		return -1;
	}
	pthread_mutex_lock(&app->key_mutex);
	crypto_key_free(app->previous);
	app->previous = k;
	pthread_mutex_unlock(&app->key_mutex);
	return 0;
}

int
cmf_app_master_set(struct cmf_app *app, const struct crypto_key *master)
{
	struct crypto_key *k = NULL;

	if (crypto_key_from_bytes(crypto_key_bytes(master), crypto_key_len(master), &k) != CRYPTO_OK) {
		cmf_error("%s: cannot keep the master key (out of secure memory?): data keys cannot be rotated", __func__);
		return -1;
	}
	pthread_mutex_lock(&app->key_mutex);
	crypto_key_free(app->master);
	app->master = k;
	pthread_mutex_unlock(&app->key_mutex);
	return 0;
}

/* The current term of the installed keyring (0: none). */
static uint32_t
current_term(struct cmf_app *app)
{
	uint32_t term;

	pthread_mutex_lock(&app->key_mutex);
	term = app->keyring != NULL ? crypto_keyring_current_term(app->keyring->kr) : 0;
	pthread_mutex_unlock(&app->key_mutex);
	return term;
}

int
cmf_app_keyring_reload(struct cmf_app *app, uint32_t at_least, char *why, size_t len)
{
	char scratch[8], *w = why != NULL && len > 0 ? why : scratch;
	size_t wl = why != NULL && len > 0 ? len : sizeof(scratch);
	struct crypto_keyring *kr = NULL;
	struct crypto_key *master = NULL;
	struct db_conn *c = NULL;
	int r = -1;

	w[0] = '\0';
	pthread_mutex_lock(&app->reload_mutex);
	/* Threads that found the same new term together: the first loads it, the others find it loaded. */
	if (at_least > 0 && current_term(app) >= at_least) {
		r = 0;
		goto out;
	}
	if ((master = master_copy(app)) == NULL) {
		snprintf(w, wl, "the master key is not available (revoked, or not yet restored)");
		goto out;
	}
	if (db_conn_open(app->cfg->database_url, db_password, &c) != DB_OK) {
		snprintf(w, wl, "out of memory");
		goto out;
	}
	if (db_keyring_load(c, master, &kr, w, wl) != DB_OK)
		goto out;
	if (at_least > 0 && crypto_keyring_current_term(kr) < at_least) {
		snprintf(w, wl, "the database holds no data key term %" PRIu32, at_least);
		goto out;
	}
	pthread_mutex_lock(&app->key_mutex);
	/* A revocation while loading wins: the key went away, so does what it opened. */
	if (app->master != NULL && app->keyring != NULL) {
		struct cmf_keyring_ref *ref = calloc(1, sizeof(*ref));

		if (ref != NULL) {
			ref->kr = kr;
			ref->refs = 1;
			kr = NULL;
			ref_put_locked(app->keyring);
			app->keyring = ref;
			r = 0;
		} else {
			snprintf(w, wl, "out of memory");
		}
	} else {
		snprintf(w, wl, "the key was revoked while the keyring was loading");
	}
	pthread_mutex_unlock(&app->key_mutex);
	if (r == 0)
		cmf_info("data keys reloaded: current term %" PRIu32, current_term(app));
out:
	pthread_mutex_unlock(&app->reload_mutex);
	crypto_keyring_free(kr);
	crypto_key_free(master);
	db_conn_close(c);
	return r;
}

int
cmf_app_dek_rotate(struct cmf_app *app, struct db_conn *c, uint32_t expect, const struct db_audit *audit, uint32_t *term,
		   bool *created, char *why, size_t len)
{
	struct crypto_key *master = master_copy(app), *previous = NULL;
	int r;

	*term = 0;
	*created = false;
	if (master == NULL) {
		if (why != NULL && len > 0)
			snprintf(why, len, "the master key is not available (revoked, or not yet restored)");
		return DB_ERR_KEY_UNAVAILABLE;
	}
	previous = key_copy(app, &app->previous);
	r = db_dek_rotate(c, master, previous, expect, audit, term, created, why, len);
	crypto_key_free(master);
	crypto_key_free(previous);
	if (r != DB_OK)
		return r;
	if (cmf_app_keyring_reload(app, *term, why, len) != 0)
		cmf_warn("data key term %" PRIu32 " was created but this process could not load it yet: %s; it keeps "
			 "sealing under its current term and loads it on the next change notification",
			 *term, why != NULL ? why : "");
	return DB_OK;
}

/* The sealer's hooks (db.h): the keyring follows rotations without a restart. */
static void
hook_advance(void *cls, struct db_conn *c, uint32_t term, bool rotate)
{
	struct cmf_app *app = cls;
	char why[512];
	uint32_t now = 0;
	bool created = false;

	if (rotate) {
		/* cmf's own act, not a request's: its principal is "cmf", its status 0 (no HTTP reply). */
		struct db_audit a = { .principal = "cmf", .outcome = "success", .route = "" };

		if (cmf_app_dek_rotate(app, c, term, &a, &now, &created, why, sizeof(why)) != DB_OK)
			cmf_error("data key term %" PRIu32 " reached encryption.dek.rotateAfterEncryptions but cannot be "
				  "rotated: %s; writes go on under it until its hard limit",
				  term, why);
		return;
	}
	if (cmf_app_keyring_reload(app, term + 1, why, sizeof(why)) != 0)
		cmf_warn("the database holds a data key newer than term %" PRIu32 " but it cannot be loaded: %s", term, why);
}

static int
hook_open_newer(void *cls, const uint8_t *ident, size_t identlen, const uint8_t *ct, size_t ctlen, uint8_t **out,
		size_t *outlen)
{
	struct cmf_app *app = cls;
	struct cmf_sealer_hold hold;
	char why[512];
	uint32_t term = 0;
	int r;

	*out = NULL;
	*outlen = 0;
	if ((r = crypto_aead_term(ct, ctlen, &term)) != CRYPTO_OK)
		return r;
	/*
	 * Only a term newer than the installed keyring's is loaded from the database; the installed one may
	 * already hold it (this request took an older keyring), and an older unknown term stays an error.
	 */
	if (term > current_term(app) && cmf_app_keyring_reload(app, term, why, sizeof(why)) != 0) {
		cmf_warn("a secret is sealed under data key term %" PRIu32 ", which cannot be loaded: %s", term, why);
		return CRYPTO_ERR_UNKNOWN_TERM;
	}
	cmf_app_sealer_acquire(app, &hold);
	r = hold.sealer.keyring != NULL
		    ? crypto_keyring_open(hold.sealer.keyring, ident, identlen, ct, ctlen, out, outlen)
		    : CRYPTO_ERR_NO_KEY;
	cmf_app_sealer_release(app, &hold);
	return r;
}

static void
hook_reserved(void *cls, uint32_t term, uint64_t encryptions)
{
	(void)cls;
	cmf_metrics_dek_reserved(term, encryptions);
}

static const struct db_keyring_hooks app_hooks = { hook_advance, hook_open_newer, hook_reserved };

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
	hold->sealer.hooks = &app_hooks;
	hold->sealer.hooks_cls = app;
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
	crypto_key_free(app->master);
	app->master = NULL;
	crypto_key_free(app->previous);
	app->previous = NULL;
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
