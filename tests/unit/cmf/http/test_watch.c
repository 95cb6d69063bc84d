// links: cmf/*.c cmf/api/*.c cmf/http/*.c cmf/csfle/*.c db/*.c crypto/*.c k8s/*.c build/gen/migrations.c
/*
 * Tests for cmf/http/watch.c through the dispatcher, without a daemon or a database: a toy route answers
 * 304 while the client's version is current and holds the call; a cache change with news answers 200 at
 * once, one without news keeps it held (the handler ran again); the timeout answers 304; the cap answers
 * 503 at once; stopping answers every held call with its 304, and later watches are answered at once.
 */
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "tests/unit/check_main.h"
#include "cmf/cache.h"
#include "cmf/http/dispatch.h"
#include "cmf/http/reply.h"
#include "cmf/http/watch.h"

static atomic_int version, runs, completed;
static int client_version, timeout_seconds = 30;

static void
watched(struct cmf_call *call)
{
	unsigned long long epoch = cmf_watch_epoch();

	atomic_fetch_add(&runs, 1);
	if (atomic_load(&version) != client_version) {
		cmf_reply_empty(call->resp, 200);
		return;
	}
	cmf_reply_empty(call->resp, 304);
	if (cmf_watch_hold(call, timeout_seconds, epoch) == CMF_WATCH_FULL)
		cmf_reply_error(call->resp, 503, "too many");
}

static void
on_complete(struct cmf_call *call, void *cls)
{
	(void)call;
	(void)cls;
	atomic_fetch_add(&completed, 1);
}

static const struct cmf_route routes[] = {
	{ "GET", { "watched", NULL }, CMF_PERM_PUBLIC, NULL, watched, NULL, 0 },
};

/* One request's storage: it must outlive the call, which completes on the watch thread. */
struct slot {
	struct cmf_request req;
	struct cmf_response resp;
	char buf[32];
};
static struct slot slots[4];
static struct cmf_config cfg;
static struct cmf_app app;

static int
watch(struct slot *s)
{
	memset(s, 0, sizeof(*s));
	strcpy(s->buf, "/watched");
	s->req.method = "GET";
	s->req.path = "/watched";
	s->req.app = &app;
	cmf_request_split(&s->req, s->buf);
	return cmf_dispatch(&s->req, &s->resp, routes, 1, on_complete, NULL);
}

/* Wait up to `ms` for `completed` to reach `n`; whether it did. */
static bool
wait_completed(int n, int ms)
{
	for (int i = 0; i < ms && atomic_load(&completed) < n; i++) {
		struct timespec t = { 0, 1000000L };

		nanosleep(&t, NULL);
	}
	return atomic_load(&completed) >= n;
}

static void
start(int max_watchers, int timeout)
{
	memset(&cfg, 0, sizeof(cfg));
	cfg.max_watchers = max_watchers;
	cfg.max_connections = 1000;
	app.cfg = &cfg;
	atomic_store(&version, 1);
	atomic_store(&runs, 0);
	atomic_store(&completed, 0);
	client_version = 1;
	timeout_seconds = timeout;
	ck_assert_int_eq(cmf_watch_start(&app), 0);
}

START_TEST(test_change_answers_at_once)
{
	start(8, 30);
	ck_assert_int_eq(watch(&slots[0]), 1); /* held: deferred */
	ck_assert(!wait_completed(1, 100));
	/* A change without news: the handler runs again, the call stays held. */
	cmf_cache_invalidate();
	for (int i = 0; i < 1000 && atomic_load(&runs) < 2; i++)
		wait_completed(1, 1);
	ck_assert_int_eq(atomic_load(&runs), 2);
	ck_assert_int_eq(atomic_load(&completed), 0);
	/* News: answered 200 at once. */
	atomic_store(&version, 2);
	cmf_cache_invalidate();
	ck_assert(wait_completed(1, 1000));
	ck_assert_uint_eq(slots[0].resp.status, 200);
	cmf_response_clear(&slots[0].resp);
	cmf_watch_stop();
}
END_TEST

START_TEST(test_timeout_answers_304)
{
	struct timespec t0, t1;

	start(8, 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(watch(&slots[0]), 1);
	ck_assert(wait_completed(1, 3000));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert_uint_eq(slots[0].resp.status, 304);
	ck_assert_int_ge((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000, 950);
	ck_assert_int_eq(atomic_load(&runs), 2); /* it ran once more at its timeout */
	cmf_response_clear(&slots[0].resp);
	cmf_watch_stop();
}
END_TEST

START_TEST(test_cap_and_stop)
{
	start(2, 30);
	ck_assert_int_eq(watch(&slots[0]), 1);
	ck_assert_int_eq(watch(&slots[1]), 1);
	/* The third is over server.maxWatchers: answered at once. */
	ck_assert_int_eq(watch(&slots[2]), 0);
	ck_assert_uint_eq(slots[2].resp.status, 503);
	ck_assert_int_eq(atomic_load(&completed), 1);
	cmf_response_clear(&slots[2].resp);
	/* Stopping answers the held ones with their 304 at once, without running them again. */
	cmf_watch_stop();
	ck_assert(wait_completed(3, 1000));
	ck_assert_uint_eq(slots[0].resp.status, 304);
	ck_assert_uint_eq(slots[1].resp.status, 304);
	ck_assert_int_eq(atomic_load(&runs), 3);
	cmf_response_clear(&slots[0].resp);
	cmf_response_clear(&slots[1].resp);
	/* Stopped: a watch is answered at once, like a plain call. */
	ck_assert_int_eq(watch(&slots[3]), 0);
	ck_assert_uint_eq(slots[3].resp.status, 304);
	cmf_response_clear(&slots[3].resp);
}
END_TEST

START_TEST(test_zero_holds_none)
{
	start(0, 30);
	ck_assert_int_eq(watch(&slots[0]), 0);
	ck_assert_uint_eq(slots[0].resp.status, 503);
	cmf_response_clear(&slots[0].resp);
	cmf_watch_stop();
}
END_TEST

static const struct cmf_check_opts opts = { NULL, NULL, 10 };

CMF_CHECK_SUITE_WITH("watch", &opts, test_change_answers_at_once, test_timeout_answers_304, test_cap_and_stop,
		     test_zero_holds_none)
