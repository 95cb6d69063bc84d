/* cmf watch requests: held resolutions, one thread and one condition variable for all of them. */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmf/cache.h"
#include "cmf/http/watch.h"
#include "cmf/log.h"
#include "cmf/metrics.h"
#include "crypto/crypto.h"

/*
 * While the change listener is down (or cache.enabled is false) no notification comes: every held request
 * is run again once a second instead, the listener's own heartbeat period, so a change still reaches a
 * watcher within about a second.
 */
#define WATCH_POLL_NS 1000000000LL
/*
 * A token is expired from the second its expiry is reached (auth.c compares with >=): waking a few
 * milliseconds past it makes the re-run see it expired rather than waking twice.
 */
#define WATCH_EXPIRY_MARGIN_NS 5000000LL

/* One held request. */
struct watch {
	struct watch *next;
	struct cmf_call *call;
	long long deadline_ns; /* its timeout (CLOCK_MONOTONIC) */
	long long wake_ns;     /* its next run: the timeout, or its token's expiry when sooner; 0: at once */
	unsigned long long epoch; /* the change count its reply was computed after */
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* on CLOCK_MONOTONIC */
	pthread_t thread;
	bool started, stopping;
	struct watch *list;  /* armed: the watch thread's to run */
	size_t held, max;    /* held counts those reserved but not yet armed too */
	unsigned long long epoch;
	long long sleep_until; /* when the thread wakes by itself; LLONG_MAX: only when signalled */
} ws = { .mu = PTHREAD_MUTEX_INITIALIZER };

unsigned long long
cmf_watch_epoch(void)
{
	unsigned long long e;

	pthread_mutex_lock(&ws.mu);
	e = ws.epoch;
	pthread_mutex_unlock(&ws.mu);
	return e;
}

/* The cache took in a change (any thread): every held request is run again. */
static void
on_change(void)
{
	pthread_mutex_lock(&ws.mu);
	ws.epoch++;
	if (ws.list != NULL)
		pthread_cond_signal(&ws.cv);
	pthread_mutex_unlock(&ws.mu);
}

/* When `w` runs next: its timeout, or just past its credential's expiry when that comes first. */
static long long
wake_at(const struct watch *w)
{
	const struct cmf_principal *p = &w->call->req->principal;
	long long at = w->deadline_ns;

	if (p->expires_at > 0) {
		struct timespec real;
		double left;
		long long exp;

		clock_gettime(CLOCK_REALTIME, &real);
		left = p->expires_at - ((double)real.tv_sec + (double)real.tv_nsec / 1e9);
		exp = crypto_mono_ns() + (left > 0 ? (long long)(left * 1e9) : 0) + WATCH_EXPIRY_MARGIN_NS;
		if (exp < at)
			at = exp;
	}
	return at;
}

/* One held request fewer (lock held). */
static void
released_locked(size_t n)
{
	ws.held -= n;
	cmf_metrics_gauge_set(CMF_G_WATCHES_HELD, (double)ws.held);
}

/* The handler of a newly held call has returned: hand it to the watch thread (dispatcher's thread). */
static void
armed(struct cmf_call *call, void *cls)
{
	struct watch *w = cls;

	pthread_mutex_lock(&ws.mu);
	if (ws.stopping) {
		released_locked(1);
		pthread_mutex_unlock(&ws.mu);
		free(w);
		cmf_call_complete(call); /* shutting down: its 304 now */
		return;
	}
	w->wake_ns = w->epoch != ws.epoch ? 0 : wake_at(w);
	w->next = ws.list;
	ws.list = w;
	if (w->wake_ns < ws.sleep_until)
		pthread_cond_signal(&ws.cv);
	pthread_mutex_unlock(&ws.mu);
}

int
cmf_watch_hold(struct cmf_call *call, int timeout_seconds, unsigned long long epoch)
{
	struct watch *w;

	if (call->held)
		return CMF_WATCH_HELD; /* running again: the watch goes on */
	pthread_mutex_lock(&ws.mu);
	if (!ws.started || ws.stopping) {
		pthread_mutex_unlock(&ws.mu);
		return CMF_WATCH_OFF;
	}
	if (ws.held >= ws.max || (w = calloc(1, sizeof(*w))) == NULL) {
		pthread_mutex_unlock(&ws.mu);
		return CMF_WATCH_FULL;
	}
	w->call = call;
	w->epoch = epoch;
	w->deadline_ns = crypto_mono_ns() + (long long)timeout_seconds * 1000000000LL;
	if (cmf_call_hold(call, armed, w) != 0) {
		pthread_mutex_unlock(&ws.mu);
		free(w);
		return CMF_WATCH_OFF;
	}
	ws.held++;
	cmf_metrics_gauge_set(CMF_G_WATCHES_HELD, (double)ws.held);
	pthread_mutex_unlock(&ws.mu);
	return CMF_WATCH_HELD;
}

/* Run the requests of `due` again (no lock held); returns those still held, their next run set. */
static struct watch *
run_due(struct watch *due, size_t *answered)
{
	struct watch *kept = NULL, *next;

	*answered = 0;
	for (struct watch *w = due; w != NULL; w = next) {
		long long now = crypto_mono_ns();

		next = w->next;
		/* At its timeout a request is answered whatever the reply is: 304 when nothing changed. */
		if (cmf_dispatch_again(w->call, 304, now < w->deadline_ns)) {
			free(w);
			(*answered)++;
			continue;
		}
		w->wake_ns = wake_at(w);
		w->next = kept;
		kept = w;
	}
	return kept;
}

static void
sleep_until_locked(long long until_ns)
{
	struct timespec ts;

	ws.sleep_until = until_ns;
	if (until_ns == LLONG_MAX) {
		pthread_cond_wait(&ws.cv, &ws.mu);
	} else {
		ts.tv_sec = (time_t)(until_ns / 1000000000LL);
		ts.tv_nsec = (long)(until_ns % 1000000000LL);
		pthread_cond_timedwait(&ws.cv, &ws.mu, &ts);
	}
	ws.sleep_until = LLONG_MAX;
}

static void *
watch_main(void *arg)
{
	unsigned long long seen;
	long long polled = crypto_mono_ns();

	(void)arg;
	pthread_mutex_lock(&ws.mu);
	seen = ws.epoch;
	while (!ws.stopping) {
		long long now = crypto_mono_ns(), next = LLONG_MAX;
		bool live = cmf_cache_live(), all = ws.epoch != seen || (!live && now - polled >= WATCH_POLL_NS);
		struct watch *due = NULL, *kept, **pp;
		size_t answered;

		seen = ws.epoch;
		if (all)
			polled = now;
		for (pp = &ws.list; *pp != NULL;) {
			struct watch *w = *pp;

			if (all || w->wake_ns <= now) {
				*pp = w->next;
				w->next = due;
				due = w;
			} else {
				if (w->wake_ns < next)
					next = w->wake_ns;
				pp = &w->next;
			}
		}
		if (due != NULL) {
			/* Unlocked: handlers take their time, and new requests are held meanwhile. */
			pthread_mutex_unlock(&ws.mu);
			kept = run_due(due, &answered);
			pthread_mutex_lock(&ws.mu);
			while (kept != NULL) {
				struct watch *w = kept;

				kept = w->next;
				w->next = ws.list;
				ws.list = w;
			}
			released_locked(answered);
			continue;
		}
		if (!live && ws.list != NULL && polled + WATCH_POLL_NS < next)
			next = polled + WATCH_POLL_NS;
		sleep_until_locked(next);
	}
	/* Shutting down: each held request gets the reply it holds (its 304) at once. */
	while (ws.list != NULL) {
		struct watch *w = ws.list;

		ws.list = w->next;
		released_locked(1);
		pthread_mutex_unlock(&ws.mu);
		cmf_call_complete(w->call);
		free(w);
		pthread_mutex_lock(&ws.mu);
	}
	pthread_mutex_unlock(&ws.mu);
	return NULL;
}

int
cmf_watch_start(struct cmf_app *app)
{
	pthread_condattr_t ca;
	int r;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ws.cv, &ca);
	pthread_condattr_destroy(&ca);
	ws.max = (size_t)app->cfg->max_watchers;
	ws.stopping = false;
	ws.sleep_until = LLONG_MAX;
	r = pthread_create(&ws.thread, NULL, watch_main, NULL);
	if (r != 0) {
		cmf_error("watch requests: cannot start their thread: %s; watch=true is answered at once", strerror(r));
		return -1;
	}
	pthread_mutex_lock(&ws.mu);
	ws.started = true;
	pthread_mutex_unlock(&ws.mu);
	cmf_cache_on_change(on_change);
	if (app->cfg->max_watchers >= app->cfg->max_connections)
		cmf_warn("server.maxWatchers (%d) is not below server.maxConnections (%d): held watch requests can "
			 "take every connection",
			 app->cfg->max_watchers, app->cfg->max_connections);
	return 0;
}

void
cmf_watch_stop(void)
{
	bool started;

	pthread_mutex_lock(&ws.mu);
	started = ws.started;
	ws.stopping = true;
	pthread_cond_signal(&ws.cv);
	pthread_mutex_unlock(&ws.mu);
	if (!started)
		return;
	cmf_cache_on_change(NULL);
	pthread_join(ws.thread, NULL);
	pthread_mutex_lock(&ws.mu);
	ws.started = false;
	pthread_mutex_unlock(&ws.mu);
	pthread_cond_destroy(&ws.cv);
}
