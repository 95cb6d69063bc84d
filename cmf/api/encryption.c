/* cmf encryption API (/cmf/api/v1/encryption, admin only): the status, the on-demand data-key rotation and
 * the rewrap. */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmf/app.h"
#include "cmf/log.h"
#include "cmf/http/reply.h"
#include "cmf/api/resource.h"
#include "cmf/api/routes.h"

void
cmf_api_encryption_get(struct cmf_call *call)
{
	struct cmf_app *app = call->req->app;
	struct cmf_sealer_hold hold;
	json_t *st = NULL;
	int r;

	r = db_encryption_status(cmf_call_conn(call), &st);
	if (r != DB_OK) {
		cmf_reply_db_error(call->resp, r, "encryption status");
		return;
	}
	/* What this process holds beside what is stored: a replica that has not loaded a new term shows it. */
	cmf_app_sealer_acquire(app, &hold);
	if (json_object_set_new(st, "loadedTerm", json_integer(crypto_keyring_current_term(hold.sealer.keyring))) != 0 ||
	    json_object_set_new(st, "rotateAfterEncryptions",
				json_integer(app->encryption_enabled ? app->cfg->encryption_dek_rotate_after : 0)) != 0) {
		cmf_app_sealer_release(app, &hold);
		json_decref(st);
		cmf_reply_error(call->resp, 500, "out of memory");
		return;
	}
	cmf_app_sealer_release(app, &hold);
	cmf_reply_json(call->resp, 200, st);
}

/* The body: {"target": "dek"}. 0, or -1 replied. */
static int
rotate_input(struct cmf_call *call)
{
	json_t *target = NULL;
	int r;

	if (cmf_resource_body_member(call->req, call->resp, "target", &target) != 0)
		return -1;
	r = json_is_string(target) && strcmp(json_string_value(target), "dek") == 0 ? 0 : -1;
	if (r != 0)
		cmf_reply_error(call->resp, 400, "target must be \"dek\": the data key is the only target that can be rotated");
	json_decref(target);
	return r;
}

void
cmf_api_encryption_rotate(struct cmf_call *call)
{
	struct cmf_app *app = call->req->app;
	char why[512];
	uint32_t term = 0;
	bool created = false;
	int r;

	cmf_call_resource(call, "dek");
	if (rotate_input(call) != 0)
		return;
	if (!app->encryption_enabled) {
		cmf_reply_error(call->resp, 409, "encryption is disabled: there is no data key to rotate");
		return;
	}
	r = cmf_app_dek_rotate(app, cmf_call_conn(call), 0, cmf_call_audit(call, 200, NULL), &term, &created, why,
			       sizeof(why));
	cmf_call_stored(call, r);
	if (r != DB_OK) {
		if (r != DB_ERR_KEY_UNAVAILABLE && r != DB_ERR_UNAVAILABLE)
			cmf_warn("data key rotation failed: %s", why);
		cmf_reply_db_error(call->resp, r, "data key");
		return;
	}
	cmf_call_resource(call, "dek/%" PRIu32, term);
	cmf_reply_json(call->resp, 200, json_pack("{s:s,s:I}", "target", "dek", "term", (json_int_t)term));
}

/*
 * POST /encryption/rewrap: the rewrap runs in a thread of its own, on a database session of its own that
 * holds the rewrap's lock; the request waits only until it has the lock and its progress row is stored
 * (a count of the rows to move), then answers 202, or 409 naming the rewrap already running. Progress is read with GET /encryption. A server stopped mid-way
 * leaves it interrupted: run it again and it goes on.
 */
struct rewrap_job {
	struct cmf_app *app;
	bool retire;
	/* The caller, for the rewrap's audit events (copies: the request is gone before they are written). */
	char principal[256], client_address[64], client_cert[512], request_id[64];
	/* The claim, handed back to the request. */
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	bool claimed_done;
	int claim;
	uint32_t target;
	char why[512];
	atomic_int refs; /* the request's and the thread's: the last to let go frees it */
};

/* One rewrap per process at a time (the database lock covers every process; this spares a session). */
static atomic_bool rewrap_here, rewrap_stop;
/* The last rewrap thread, joined before the next starts and when the server stops (cmf_api_encryption_stop). */
static pthread_mutex_t thread_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_t rewrap_thread_id;
static bool rewrap_joinable;

static void
job_put(struct rewrap_job *j)
{
	if (atomic_fetch_sub(&j->refs, 1) != 1)
		return;
	pthread_mutex_destroy(&j->mutex);
	pthread_cond_destroy(&j->cond);
	free(j);
}

/* Hand the claim's outcome to the waiting request, once. */
static void
job_claimed(struct rewrap_job *j, int r, uint32_t target)
{
	pthread_mutex_lock(&j->mutex);
	if (!j->claimed_done) {
		j->claim = r;
		j->target = target;
		j->claimed_done = true;
		pthread_cond_signal(&j->cond);
	}
	pthread_mutex_unlock(&j->mutex);
}

/* Before each batch: stop when the process stops, or when the key was revoked (its DEKs go with it). */
static int
job_go_on(void *cls)
{
	struct rewrap_job *j = cls;

	if (atomic_load(&rewrap_stop))
		return DB_ERR_INTERNAL;
	return cmf_app_keyring_loaded(j->app, NULL, 0) ? DB_OK : DB_ERR_KEY_UNAVAILABLE;
}

/* The first progress report comes once the rewrap's row is stored: the request answers 202 from then on. */
static void
job_progress(void *cls, const struct db_rewrap_progress *p)
{
	job_claimed(cls, DB_OK, p->target);
}

static void *
rewrap_thread(void *arg)
{
	struct rewrap_job *j = arg;
	struct db_conn *c = NULL;
	struct cmf_sealer_hold hold;
	struct db_rewrap_progress p;
	struct db_audit a = { .principal = j->principal, .outcome = "success", .status = 202,
			      .request_id = j->request_id, .client_address = j->client_address,
			      .client_cert = j->client_cert, .route = "/cmf/api/v1/encryption/rewrap" };
	char why[512];
	int r;

	why[0] = '\0';
	cmf_app_sealer_acquire(j->app, &hold);
	r = db_conn_open(j->app->cfg->database_url, cmf_app_db_password(), &c);
	if (r == DB_OK) {
		/* Until the first progress report, `why` is the request's to read (under the job's mutex). */
		r = db_rewrap(c, &hold.sealer, j->principal, &a, job_progress, job_go_on, j, &p, why, sizeof(why));
		pthread_mutex_lock(&j->mutex);
		if (!j->claimed_done)
			snprintf(j->why, sizeof(j->why), "%s", why);
		pthread_mutex_unlock(&j->mutex);
		job_claimed(j, r, 0);
		if (r != DB_OK && r != DB_ERR_CONFLICT)
			cmf_warn("rewrap started by %s stopped: %s", j->principal, why);
		if (r == DB_OK && j->retire && !atomic_load(&rewrap_stop)) {
			int retired = 0;
			uint32_t min = 0;

			if (p.unreadable > 0)
				cmf_warn("rewrap: %lld ciphertext(s) do not open; data keys they use are kept", p.unreadable);
			if (db_dek_retire(c, &a, &retired, &min, why, sizeof(why)) != DB_OK)
				cmf_warn("retiring data keys after the rewrap failed: %s", why);
		}
	}
	job_claimed(j, r, 0);
	cmf_app_sealer_release(j->app, &hold);
	db_conn_close(c); /* frees the rewrap's lock with the session, whatever happened */
	atomic_store(&rewrap_here, false);
	job_put(j);
	return NULL;
}

/* The body: {} or {"retire": true}. 0, or -1 replied. */
static int
rewrap_input(struct cmf_call *call, bool *retire)
{
	json_t *v = NULL;
	int r;

	*retire = false;
	if (cmf_resource_body_member(call->req, call->resp, "retire", &v) != 0)
		return -1;
	r = v == NULL || json_is_boolean(v) ? 0 : -1;
	if (r != 0)
		cmf_reply_error(call->resp, 400, "retire must be true or false");
	*retire = json_is_true(v);
	json_decref(v);
	return r;
}

void
cmf_api_encryption_rewrap(struct cmf_call *call)
{
	struct cmf_app *app = call->req->app;
	const struct db_audit *ca = &call->audit;
	struct rewrap_job *j;
	pthread_t th;
	bool retire, expected = false;
	int r;

	cmf_call_resource(call, "rewrap");
	if (rewrap_input(call, &retire) != 0)
		return;
	if (!app->encryption_enabled) {
		cmf_reply_error(call->resp, 409, "encryption is disabled: there is nothing to rewrap");
		return;
	}
	if (!atomic_compare_exchange_strong(&rewrap_here, &expected, true)) {
		cmf_reply_error(call->resp, 409, "a rewrap is already running on this replica; its progress is in GET "
						 "/cmf/api/v1/encryption");
		return;
	}
	j = calloc(1, sizeof(*j));
	if (j == NULL) {
		atomic_store(&rewrap_here, false);
		cmf_reply_error(call->resp, 500, "out of memory");
		return;
	}
	j->app = app;
	j->retire = retire;
	snprintf(j->principal, sizeof(j->principal), "%s", ca->principal != NULL ? ca->principal : "");
	snprintf(j->client_address, sizeof(j->client_address), "%s", ca->client_address != NULL ? ca->client_address : "");
	snprintf(j->client_cert, sizeof(j->client_cert), "%s", ca->client_cert != NULL ? ca->client_cert : "");
	snprintf(j->request_id, sizeof(j->request_id), "%s", ca->request_id != NULL ? ca->request_id : "");
	pthread_mutex_init(&j->mutex, NULL);
	pthread_cond_init(&j->cond, NULL);
	atomic_init(&j->refs, 2);
	pthread_mutex_lock(&thread_mutex);
	/* The previous rewrap ended (rewrap_here was false): collect its thread before starting the next. */
	if (rewrap_joinable)
		pthread_join(rewrap_thread_id, NULL);
	rewrap_joinable = !atomic_load(&rewrap_stop) && pthread_create(&th, NULL, rewrap_thread, j) == 0;
	if (rewrap_joinable)
		rewrap_thread_id = th;
	pthread_mutex_unlock(&thread_mutex);
	if (!rewrap_joinable) {
		atomic_store(&j->refs, 1);
		job_put(j);
		atomic_store(&rewrap_here, false);
		cmf_reply_error(call->resp, 503, "cannot start the rewrap now (the server is stopping, or out of resources)");
		return;
	}
	pthread_mutex_lock(&j->mutex);
	while (!j->claimed_done)
		pthread_cond_wait(&j->cond, &j->mutex);
	pthread_mutex_unlock(&j->mutex);
	r = j->claim;
	if (r == DB_ERR_CONFLICT || r == DB_ERR_KEY_UNAVAILABLE || r == DB_ERR_MODE_MISMATCH) {
		cmf_reply_error(call->resp, r == DB_ERR_KEY_UNAVAILABLE ? 503 : 409, "%s", j->why);
	} else if (r != DB_OK) {
		cmf_reply_db_error(call->resp, r, "the rewrap");
	} else {
		cmf_call_resource(call, "rewrap/term-%" PRIu32, j->target);
		cmf_reply_json(call->resp, 202,
			       json_pack("{s:s,s:I,s:b,s:s}", "state", "running", "targetTerm", (json_int_t)j->target,
					 "retire", retire, "progress", "/cmf/api/v1/encryption"));
	}
	job_put(j);
}

void
cmf_api_encryption_stop(void)
{
	atomic_store(&rewrap_stop, true);
	pthread_mutex_lock(&thread_mutex);
	if (rewrap_joinable)
		pthread_join(rewrap_thread_id, NULL);
	rewrap_joinable = false;
	pthread_mutex_unlock(&thread_mutex);
}
