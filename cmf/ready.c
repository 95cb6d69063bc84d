/*
 * cmf readiness. /readyz must answer at once even while PostgreSQL is frozen, so it reads what the
 * process last saw (db_health) instead of asking; this thread keeps that evidence fresh when no
 * request does.
 */
#include <pthread.h>
#include <time.h>

#include "cmf/log.h"
#include "cmf/ready.h"
#include "crypto/crypto.h"
#include "db/db.h"

/* How often the background check asks when no request has: a probe sees a change within about this. */
#define READY_PERIOD_NS 1000000000LL

static pthread_mutex_t ready_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready_cond;
static pthread_t ready_thread;
static bool ready_started, ready_stopping;

/*
 * Evidence older than this does not count: the check's own ping fails at the request deadline, so this
 * is a backstop for a check that stopped asking; it must outlast a slow ping that still answers.
 */
static _Atomic long long stale_ns = 3 * 1000000000LL;

bool
cmf_ready_database(void)
{
	long long answered, unavailable;

	db_health(&answered, &unavailable);
	return answered != 0 && answered >= unavailable && crypto_mono_ns() - answered < stale_ns;
}

static void *
ready_main(void *arg)
{
	struct cmf_app *app = arg;
	struct db_conn *conn = NULL;

	pthread_mutex_lock(&ready_mutex);
	while (!ready_stopping) {
		struct timespec next;
		long long answered, unavailable;

		pthread_mutex_unlock(&ready_mutex);
		db_health(&answered, &unavailable);
		/* A request answered within the period already says it; a ping would add nothing. */
		if (answered < unavailable || crypto_mono_ns() - answered >= READY_PERIOD_NS) {
			if (conn == NULL)
				(void)db_conn_open(app->cfg->database_url, cmf_app_db_password(), &conn);
			/* A failure is recorded by db_health and logged by the connection. */
			if (conn != NULL)
				(void)db_ping(conn);
		}
		pthread_mutex_lock(&ready_mutex);
		clock_gettime(CLOCK_MONOTONIC, &next);
		next.tv_sec += READY_PERIOD_NS / 1000000000LL;
		while (!ready_stopping && pthread_cond_timedwait(&ready_cond, &ready_mutex, &next) == 0)
			;
	}
	pthread_mutex_unlock(&ready_mutex);
	db_conn_close(conn);
	return NULL;
}

int
cmf_ready_start(struct cmf_app *app)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&ready_cond, &attr);
	pthread_condattr_destroy(&attr);
	stale_ns = ((long long)app->cfg->database_request_timeout_seconds + 2) * 1000000000LL;
	ready_stopping = false;
	if (pthread_create(&ready_thread, NULL, ready_main, app) != 0) {
		pthread_cond_destroy(&ready_cond);
		cmf_error("%s: cannot start the readiness check thread", __func__);
		return -1;
	}
	ready_started = true;
	return 0;
}

void
cmf_ready_stop(void)
{
	if (!ready_started)
		return;
	pthread_mutex_lock(&ready_mutex);
	ready_stopping = true;
	pthread_cond_signal(&ready_cond);
	pthread_mutex_unlock(&ready_mutex);
	pthread_join(ready_thread, NULL);
	pthread_cond_destroy(&ready_cond);
	ready_started = false;
}
