/* cmf key watch: re-reads mounted files — the master key (keyring revoked/reloaded, rotated through the
 * previous-key file), the admin token and the OIDC JWKS. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmf/app.h"
#include "cmf/cache.h"
#include "cmf/http/auth.h"
#include "cmf/http/oidc.h"
#include "cmf/log.h"
#include "crypto/crypto.h"
#include "k8s/k8s.h"

static pthread_mutex_t watch_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t watch_cond;
static pthread_t watch_thread;
static bool watch_started, watch_stopping;

static void
key_revoke(struct cmf_app *app, const char *reason)
{
	/* What was read under the key goes with it (the snapshots hold only sealed values, but all the same). */
	cmf_cache_invalidate();
	if (cmf_app_keyring_revoke(app, reason))
		cmf_warn("encryption key unavailable: %s; the keyring is wiped from memory and requests that need "
			 "encryption get 503 until the key is restored",
			 reason);
}

/* Reload the keyring with the restored master key. Returns 0, or -1 to retry at the next poll. */
static int
restore(struct cmf_app *app, const struct crypto_key *master, struct db_conn **conn)
{
	struct crypto_keyring *kr = NULL;
	char why[512], reason[640];
	int r;

	if (*conn == NULL && db_conn_open(app->cfg->database_url, cmf_app_db_password(), conn) == DB_ERR_ALLOC)
		return -1;
	r = db_keyring_load(*conn, master, &kr, why, sizeof(why));
	if (r != DB_OK) {
		snprintf(reason, sizeof(reason), "the key file is back but the keyring cannot be loaded: %s", why);
		key_revoke(app, reason);
		cmf_warn("%s; retrying", reason);
		return -1;
	}
	/* The key first: a keyring loaded without it could not follow a rotation. */
	if (cmf_app_master_set(app, master) != 0) {
		crypto_keyring_free(kr);
		return -1;
	}
	cmf_app_keyring_set(app, kr);
	cmf_info("encryption key restored (key id %s): the keyring is loaded again and secrets are served", app->key_id);
	return 0;
}

/* The previous key of a master-key rotation, as last read from encryption.key.previousFile (NULL: absent). */
struct previous_state {
	struct k8s_watch *w;
	struct crypto_key *key;
};

/* Follow the previous-key file: mounted during a rotation only; absent or invalid means none. */
static void
poll_previous(struct cmf_app *app, struct previous_state *ps)
{
	struct crypto_key *key = NULL;
	char why[512];
	int r;

	if (ps->w == NULL)
		return;
	r = k8s_master_key_poll(ps->w, &key, NULL, why, sizeof(why));
	if (r == K8S_WATCH_UNCHANGED)
		return;
	crypto_key_free(ps->key);
	ps->key = r == K8S_WATCH_CHANGED ? key : NULL;
	if (r == K8S_ERR_KEY_INVALID)
		cmf_warn("the previous key file %s does not hold a valid key (ignored): %s",
			 app->cfg->encryption_key_previous_file, why);
	/* Kept only while it is the database's previous key: new data-key terms are wrapped by it too. */
	(void)cmf_app_previous_set(app, ps->key);
}

enum follow { FOLLOW_DONE, FOLLOW_NO, FOLLOW_RETRY };

/*
 * The mounted key is a new one, `key` (id `kid`): a master-key rotation when the previous-key file holds the
 * key this process serves with (the kubelet swaps both properties at once), or when the database already
 * records `kid` as its key (another replica, or `cmf rotate master-key`, rotated; the keyring reload proves
 * the key). FOLLOW_DONE: this process now serves with `key`; FOLLOW_NO: `key` is another key (revoke);
 * FOLLOW_RETRY: PostgreSQL could not say (keep serving, try again at the next poll).
 */
static enum follow
follow_rotation(struct cmf_app *app, const struct crypto_key *key, const char *kid, struct previous_state *ps,
		struct db_conn **conn)
{
	char why[512], old_id[CRYPTO_KEY_ID_SIZE], pid[CRYPTO_KEY_ID_SIZE] = "";
	struct db_audit a = { .principal = "cmf", .outcome = "success", .route = "" };
	struct db_master_state st;
	bool rotated = false;
	int r;

	if (*conn == NULL && db_conn_open(app->cfg->database_url, cmf_app_db_password(), conn) == DB_ERR_ALLOC)
		return FOLLOW_RETRY;
	if (ps->key != NULL)
		crypto_key_id(ps->key, pid);
	snprintf(old_id, sizeof(old_id), "%s", app->key_id);
	if (strcmp(pid, old_id) == 0) {
		r = db_master_rotate(*conn, ps->key, key, &a, &rotated, why, sizeof(why));
		if (r != DB_OK) {
			cmf_warn("the mounted key (key id %s) is new and the previous key file holds key id %s, but the "
				 "master key cannot be rotated: %s",
				 kid, pid, why);
			return r == DB_ERR_KEY_MISMATCH || r == DB_ERR_MODE_MISMATCH ? FOLLOW_NO : FOLLOW_RETRY;
		}
	} else {
		r = db_master_state_get(*conn, &st);
		if (r != DB_OK)
			return r == DB_ERR_MODE_MISMATCH || r == DB_ERR_NOT_INITIALIZED ? FOLLOW_NO : FOLLOW_RETRY;
		if (strcmp(st.key_id, kid) != 0)
			return FOLLOW_NO;
	}
	if (cmf_app_master_set(app, key) != 0)
		return FOLLOW_RETRY;
	pthread_mutex_lock(&app->key_mutex);
	snprintf(app->key_id, sizeof(app->key_id), "%s", kid);
	pthread_mutex_unlock(&app->key_mutex);
	if (cmf_app_keyring_reload(app, 0, why, sizeof(why)) != 0)
		cmf_warn("master key changed to key id %s but the keyring cannot be reloaded yet: %s", kid, why);
	cmf_info("master key %s: key id %s -> %s; the keyring stays wrapped by the previous key too until no replica "
		 "serves with it and its file is removed (or `cmf rotate finish`)",
		 rotated ? "rotated" : "followed the rotation", old_id, kid);
	return FOLLOW_DONE;
}

/*
 * During a rotation, say which key this replica serves with, and end the rotation once nobody needs the
 * previous key any more: this replica serves with the new key, its previous-key file is gone (the operator
 * removed the property), no other replica was seen serving with the previous key for three polls, and the
 * rotation is older than that. Then the keyring's wrapping by the previous key is destroyed.
 */
static void
beat(struct cmf_app *app, struct previous_state *ps, struct db_conn **conn)
{
	char holder[300], host[256] = "", why[512];
	int window = 3 * app->cfg->encryption_key_reload_interval_seconds + 2;
	struct db_master_state st;
	long long others = 0;
	struct crypto_key *master;
	bool finished = false;

	if (!cmf_app_keyring_loaded(app, NULL, 0))
		return;
	if (*conn == NULL && db_conn_open(app->cfg->database_url, cmf_app_db_password(), conn) == DB_ERR_ALLOC)
		return;
	gethostname(host, sizeof(host) - 1);
	snprintf(holder, sizeof(holder), "%s:%ld", host, (long)getpid());
	if (db_key_holder_beat(*conn, holder, app->key_id, window, &st, &others) != DB_OK)
		return;
	if (st.previous_key_id[0] == '\0' || strcmp(st.key_id, app->key_id) != 0 || ps->key != NULL || others > 0 ||
	    st.rotated_seconds_ago < window)
		return;
	master = cmf_app_master_copy(app);
	if (master == NULL)
		return;
	{
		struct db_audit a = { .principal = "cmf", .outcome = "success", .route = "" };

		if (db_master_finish(*conn, master, &a, &finished, why, sizeof(why)) != DB_OK)
			cmf_warn("cannot finish the master-key rotation: %s", why);
		else if (finished)
			cmf_info("master-key rotation finished: the previous key (key id %s) is gone from every replica, and "
				 "the keyring's wrapping by it is destroyed",
				 st.previous_key_id);
	}
	crypto_key_free(master);
}

static void
poll_once(struct cmf_app *app, struct k8s_watch *w, struct previous_state *ps, struct db_conn **conn)
{
	char why[512], reason[640], kid[CRYPTO_KEY_ID_SIZE];
	struct crypto_key *key = NULL;
	int r;

	poll_previous(app, ps);
	r = k8s_master_key_poll(w, &key, NULL, why, sizeof(why));
	if (r == K8S_WATCH_UNCHANGED) {
		beat(app, ps, conn);
		return;
	}
	if (r == K8S_ERR_KEY_INVALID) {
		snprintf(reason, sizeof(reason), "the key file %s no longer holds a valid key: %s",
			 app->cfg->encryption_key_file, why);
		key_revoke(app, reason);
		return;
	}
	if (r < 0) {
		snprintf(reason, sizeof(reason), "the key file cannot be read: %s", why);
		key_revoke(app, reason);
		return;
	}
	if (crypto_key_id(key, kid) != CRYPTO_OK) {
		crypto_key_free(key);
		k8s_watch_forget(w);
		return;
	}
	if (strcmp(kid, app->key_id) != 0) {
		enum follow f = cmf_app_keyring_loaded(app, NULL, 0) ? follow_rotation(app, key, kid, ps, conn) : FOLLOW_NO;

		if (f == FOLLOW_RETRY) {
			k8s_watch_forget(w); /* read it again at the next poll */
		} else if (f == FOLLOW_NO) {
			snprintf(reason, sizeof(reason),
				 "the mounted key (key id %s) is not the key this database was initialized with (key id %s)",
				 kid, app->key_id);
			key_revoke(app, reason);
		}
	} else if (!cmf_app_keyring_loaded(app, NULL, 0)) {
		if (restore(app, key, conn) != 0)
			k8s_watch_forget(w);
	} else {
		cmf_debug("key file %s changed but holds the same key (key id %s)", app->cfg->encryption_key_file, kid);
	}
	crypto_key_free(key);
}

/*
 * The bootstrap admin token's file (a Kubernetes Secret too): a new valid token replaces the old one;
 * a missing or invalid file disables the bootstrap token until a valid one is back. `*valid` tracks
 * the state for logging transitions only; the first read is the baseline cmf_auth_init already took.
 */
static void
poll_admin_token(struct cmf_app *app, struct k8s_watch *w, bool *first, bool *valid)
{
	const char *path = app->cfg->auth_admin_token_file;
	char why[512];
	uint8_t *buf = NULL;
	size_t len = 0;
	int loose = 0, r;

	r = k8s_watch_poll(w, &buf, &len, &loose, why, sizeof(why));
	if (r == K8S_WATCH_UNCHANGED)
		return;
	if (r < 0) {
		cmf_auth_admin_token_disable();
		if (*valid)
			cmf_warn("bootstrap admin token disabled: %s", why);
		*valid = false;
		*first = false;
		return;
	}
	r = cmf_auth_admin_token_update(path, buf, len, why, sizeof(why));
	crypto_freezero(buf, len);
	if (r != 0) {
		if (*valid)
			cmf_warn("bootstrap admin token disabled: %s", why);
		*valid = false;
	} else {
		if (!*first)
			cmf_info("admin token file %s changed: the new bootstrap admin token is in effect", path);
		*valid = true;
	}
	*first = false;
}

/* What the JWKS watch last saw, to log changes of state rather than every poll. */
enum jwks_state { JWKS_FIRST, JWKS_GOOD, JWKS_UNREADABLE, JWKS_UNUSABLE };

/*
 * The OIDC provider's JWKS (a Secret or ConfigMap): a good new document replaces the keys; an unreadable
 * or bad one keeps the keys in use, with one line when that starts, not one per poll.
 */
static void
poll_jwks(struct cmf_app *app, struct k8s_watch *w, enum jwks_state *state)
{
	const char *path = app->cfg->auth_oauth_jwks_file;
	char why[512];
	uint8_t *buf = NULL;
	size_t len = 0;
	int loose = 0, r;

	r = k8s_watch_poll(w, &buf, &len, &loose, why, sizeof(why));
	if (r == K8S_WATCH_UNCHANGED)
		return;
	if (r < 0) {
		if (*state != JWKS_UNREADABLE)
			cmf_warn("JWKS file %s cannot be read (%s): the keys read before stay in use", path, why);
		*state = JWKS_UNREADABLE;
		return;
	}
	r = cmf_oidc_jwks_update(buf, len, why, sizeof(why));
	crypto_freezero(buf, len);
	if (r == 1) {
		cmf_warn("JWKS file %s changed: %s", path, why);
		*state = JWKS_GOOD;
		return;
	}
	if (r != 0) {
		/* The watch keeps this file's identity: the same bad content is not parsed (nor logged) again. */
		cmf_warn("JWKS file %s changed but is not usable (%s): the keys read before stay in use", path, why);
		*state = JWKS_UNUSABLE;
		return;
	}
	/* The first poll reads what cmf_oidc_init read a moment ago: nothing to announce. */
	if (*state != JWKS_FIRST)
		cmf_info("JWKS file %s changed: its keys are in effect", path);
	*state = JWKS_GOOD;
}

static void *
watch_main(void *arg)
{
	struct cmf_app *app = arg;
	const struct cmf_config *cfg = app->cfg;
	struct k8s_watch *w = NULL, *tw = NULL, *jw = NULL;
	struct previous_state ps = { NULL, NULL };
	struct db_conn *conn = NULL;
	bool token_first = true, token_valid = true;
	enum jwks_state jwks = JWKS_FIRST;

	if ((cfg->encryption_enabled && k8s_watch_new(cfg->encryption_key_file, CMF_KEY_FILE_MAX, &w) != K8S_OK) ||
	    (cfg->auth_enabled && k8s_watch_new(cfg->auth_admin_token_file, CMF_KEY_FILE_MAX, &tw) != K8S_OK) ||
	    (cmf_oidc_enabled() && k8s_watch_new(cfg->auth_oauth_jwks_file, CMF_OIDC_JWKS_MAX, &jw) != K8S_OK)) {
		cmf_error("%s: cannot start watching the mounted secret files", __func__);
		k8s_watch_free(w);
		k8s_watch_free(tw);
		return NULL;
	}
	if (cfg->encryption_enabled && cfg->encryption_key_previous_file[0] != '\0' &&
	    k8s_watch_new(cfg->encryption_key_previous_file, CMF_KEY_FILE_MAX, &ps.w) != K8S_OK)
		cmf_warn("%s: cannot watch the previous key file %s", __func__, cfg->encryption_key_previous_file);
	pthread_mutex_lock(&watch_mutex);
	while (!watch_stopping) {
		struct timespec deadline;

		pthread_mutex_unlock(&watch_mutex);
		if (w != NULL)
			poll_once(app, w, &ps, &conn);
		if (tw != NULL)
			poll_admin_token(app, tw, &token_first, &token_valid);
		if (jw != NULL)
			poll_jwks(app, jw, &jwks);
		pthread_mutex_lock(&watch_mutex);
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += app->cfg->encryption_key_reload_interval_seconds;
		while (!watch_stopping && pthread_cond_timedwait(&watch_cond, &watch_mutex, &deadline) == 0)
			;
	}
	pthread_mutex_unlock(&watch_mutex);
	k8s_watch_free(w);
	k8s_watch_free(tw);
	k8s_watch_free(ps.w);
	crypto_key_free(ps.key);
	k8s_watch_free(jw);
	db_conn_close(conn);
	return NULL;
}

int
cmf_keywatch_start(struct cmf_app *app)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&watch_cond, &attr);
	pthread_condattr_destroy(&attr);
	watch_stopping = false;
	if (pthread_create(&watch_thread, NULL, watch_main, app) != 0) {
		cmf_error("%s: cannot start the key watch thread", __func__);
		return -1;
	}
	watch_started = true;
	if (app->cfg->encryption_enabled)
		cmf_info("watching the encryption key file %s every %d s", app->cfg->encryption_key_file,
			 app->cfg->encryption_key_reload_interval_seconds);
	if (app->cfg->auth_enabled)
		cmf_info("watching the admin token file %s every %d s", app->cfg->auth_admin_token_file,
			 app->cfg->encryption_key_reload_interval_seconds);
	if (cmf_oidc_enabled())
		cmf_info("watching the JWKS file %s every %d s", app->cfg->auth_oauth_jwks_file,
			 app->cfg->encryption_key_reload_interval_seconds);
	return 0;
}

void
cmf_keywatch_stop(void)
{
	if (!watch_started)
		return;
	pthread_mutex_lock(&watch_mutex);
	watch_stopping = true;
	pthread_cond_signal(&watch_cond);
	pthread_mutex_unlock(&watch_mutex);
	pthread_join(watch_thread, NULL);
	pthread_cond_destroy(&watch_cond);
	watch_started = false;
}
