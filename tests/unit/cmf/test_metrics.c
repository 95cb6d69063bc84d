// links: cmf/metrics.c cmf/http/router.c cmf/http/request.c cmf/log.c cmf/text.c crypto/*.c
/*
 * Tests for cmf/metrics.c: every series family is rendered; label values are escaped and come only
 * from the fixed vocabularies ("unmatched", "other"); the route table is bounded; histogram buckets are
 * cumulative and agree with _count and _sum; counts stay exact under concurrent updates. Also the
 * router's part: route patterns as labels, and who may read /metrics (CMF_PERM_METRICS).
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/unit/check_main.h"
#include "cmf/http/auth.h"
#include "cmf/http/router.h"
#include "cmf/metrics.c"

/* Every test starts from zero, also when CK_FORK=no runs them all in one process (make unit-san). */
static void
reset(void)
{
	memset(routes, 0, sizeof(routes));
	memset(cells, 0, sizeof(cells));
	memset(ptr_cache, 0, sizeof(ptr_cache));
	memset(counters, 0, sizeof(counters));
	memset(gauges, 0, sizeof(gauges));
	memset(&audit_rows, 0, sizeof(audit_rows));
	memset(&audit_commit, 0, sizeof(audit_commit));
	atomic_store(&request_overflow, 0);
	memset(dek_reserved, 0, sizeof(dek_reserved));
}

static char *
render(void)
{
	char *text = cmf_metrics_render(true, "0123456789abcdef", 3, -1);

	ck_assert_ptr_nonnull(text);
	return text;
}

/* The value of the sample line that starts with `series` (name and labels exactly), or NAN if none. */
static double
sample(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p != NULL ? p + 1 : NULL)
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return NAN;
}

static int
has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p != NULL ? p + 1 : NULL)
		if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
			return 1;
	return 0;
}

START_TEST(test_every_family_is_rendered)
{
	static const char *const families[] = {
		"cmf_http_requests_total counter",
		"cmf_http_request_duration_seconds histogram",
		"cmf_token_cache_hits_total counter",
		"cmf_token_cache_misses_total counter",
		"cmf_token_cache_invalidations_total counter",
		"cmf_snapshot_cache_hits_total counter",
		"cmf_snapshot_cache_misses_total counter",
		"cmf_snapshot_cache_invalidations_total counter",
		"cmf_audit_events_total counter",
		"cmf_audit_merged_events_total counter",
		"cmf_audit_queue_full_total counter",
		"cmf_audit_commit_failures_total counter",
		"cmf_postgres_errors_total counter",
		"cmf_listener_reconnects_total counter",
		"cmf_listener_resyncs_total counter",
		"cmf_listener_notifications_total counter",
		"cmf_audit_batch_rows histogram",
		"cmf_audit_commit_duration_seconds histogram",
		"cmf_audit_queue_depth gauge",
		"cmf_listener_up gauge",
		"cmf_listener_heartbeat_age_seconds gauge",
		"cmf_cache_enabled gauge",
		"cmf_token_cache_entries gauge",
		"cmf_snapshot_cache_entries gauge",
		"cmf_http_open_connections gauge",
		"cmf_http_suspended_connections gauge",
		"cmf_encryption_enabled gauge",
		"cmf_key_loaded gauge",
		"cmf_key_info gauge",
		"cmf_dek_term gauge",
		"cmf_process_resident_memory_bytes gauge",
		"cmf_process_start_time_seconds gauge",
	};
	char line[128], *text;

	cmf_metrics_request("/healthz", "GET", 200, 0.0001);
	cmf_metrics_add(CMF_M_TOKEN_CACHE_HITS, 5);
	cmf_metrics_add(CMF_M_PG_ERRORS, 2);
	cmf_metrics_add((enum cmf_metric)CMF_M__COUNT, 1); /* ignored */
	cmf_metrics_audit_batch(10, 0.002);
	cmf_metrics_gauge_set(CMF_G_LISTENER_UP, 1);
	cmf_metrics_gauge_set(CMF_G_LISTENER_LAST_HEARTBEAT, (double)time(NULL) - 3);
	cmf_metrics_gauge_add(CMF_G_OPEN_CONNECTIONS, 2);
	cmf_metrics_gauge_add(CMF_G_OPEN_CONNECTIONS, -1);
	cmf_metrics_gauge_set((enum cmf_gauge)CMF_G__COUNT, 1); /* ignored */
	text = render();
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		snprintf(line, sizeof(line), "# TYPE %s", families[i]);
		ck_assert_msg(has_line(text, line), "missing: %s", line);
		snprintf(line, sizeof(line), "# HELP %.*s ", (int)strcspn(families[i], " "), families[i]);
		ck_assert_msg(strstr(text, line) != NULL, "missing: %s", line);
	}
	ck_assert(sample(text, "cmf_token_cache_hits_total") == 5);
	ck_assert(sample(text, "cmf_postgres_errors_total") == 2);
	ck_assert(sample(text, "cmf_listener_up") == 1);
	ck_assert(sample(text, "cmf_http_open_connections") == 1);
	ck_assert(sample(text, "cmf_listener_heartbeat_age_seconds") >= 3);
	ck_assert(sample(text, "cmf_listener_heartbeat_age_seconds") < 60);
	ck_assert(sample(text, "cmf_key_loaded") == 1 && sample(text, "cmf_encryption_enabled") == 1);
	ck_assert(sample(text, "cmf_key_info{key_id=\"0123456789abcdef\"}") == 1);
	ck_assert(sample(text, "cmf_dek_term") == 3);
	ck_assert(sample(text, "cmf_process_resident_memory_bytes") > 1024 * 1024);
	ck_assert(sample(text, "cmf_process_start_time_seconds") > (double)time(NULL) - 3600);
	ck_assert(sample(text, "cmf_process_start_time_seconds") <= (double)time(NULL) + 1);
	ck_assert(sample(text, "cmf_audit_batch_rows_count") == 1 && sample(text, "cmf_audit_batch_rows_sum") == 10);
	ck_assert(sample(text, "cmf_audit_commit_duration_seconds_sum") == 0.002);
	/* Encryptions under the DEK: left out while unknown. */
	ck_assert_ptr_null(strstr(text, "cmf_dek_encryptions"));
	free(text);
	text = cmf_metrics_render(true, "0123456789abcdef", 3, 1234);
	ck_assert(sample(text, "cmf_dek_encryptions") == 1234);
	free(text);
}
END_TEST

START_TEST(test_key_states)
{
	char *text;

	/* Revoked: the id is still the locked one, the keyring is gone, no term. */
	text = cmf_metrics_render(false, "0123456789abcdef", 0, -1);
	ck_assert(sample(text, "cmf_key_loaded") == 0 && sample(text, "cmf_encryption_enabled") == 1);
	ck_assert(sample(text, "cmf_key_info{key_id=\"0123456789abcdef\"}") == 1);
	ck_assert_ptr_null(strstr(text, "cmf_dek_term"));
	free(text);
	/* Encryption disabled: no key, no info series. */
	text = cmf_metrics_render(false, "", 0, -1);
	ck_assert(sample(text, "cmf_key_loaded") == 0 && sample(text, "cmf_encryption_enabled") == 0);
	ck_assert_ptr_null(strstr(text, "cmf_key_info"));
	free(text);
	text = cmf_metrics_render(false, NULL, 0, -1);
	ck_assert_ptr_null(strstr(text, "cmf_key_info"));
	/* No heartbeat yet: no age (rather than the age of 1970). */
	ck_assert_ptr_null(strstr(text, "cmf_listener_heartbeat_age_seconds"));
	free(text);
}
END_TEST

START_TEST(test_labels_are_escaped)
{
	char *text;

	cmf_metrics_request("/a\"b\\c\nd", "GET", 200, 0.001);
	cmf_metrics_gauge_set(CMF_G_LISTENER_UP, 0);
	text = cmf_metrics_render(true, "id\"with\\quote\n", 1, -1);
	ck_assert(sample(text, "cmf_http_requests_total{route=\"/a\\\"b\\\\c\\nd\",method=\"GET\",status=\"200\"}") == 1);
	ck_assert(sample(text, "cmf_http_request_duration_seconds_count{route=\"/a\\\"b\\\\c\\nd\"}") == 1);
	ck_assert(sample(text, "cmf_key_info{key_id=\"id\\\"with\\\\quote\\n\"}") == 1);
	/* No raw newline inside any sample: every line is a comment or "name{...} value". */
	for (char *p = text; *p != '\0'; p = strchr(p, '\n') + 1)
		ck_assert_msg(p[0] == '#' || strncmp(p, "cmf_", 4) == 0, "stray line: %.40s", p);
	free(text);
}
END_TEST

START_TEST(test_unmatched_and_other)
{
	char *text;

	cmf_metrics_request(NULL, "GET", 404, 0.0001);
	cmf_metrics_request(NULL, "GET", 404, 0.0001);
	cmf_metrics_request(NULL, "BREW", 405, 0.0001);
	cmf_metrics_request(NULL, NULL, 400, 0.0001);
	cmf_metrics_request("/healthz", "get", 200, 0.0001); /* methods are case-sensitive */
	cmf_metrics_request("/healthz", "GET", 1000, 0.0001);
	cmf_metrics_request("/healthz", "GET", 99, 0.0001);
	text = render();
	ck_assert(sample(text, "cmf_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}") == 2);
	ck_assert(sample(text, "cmf_http_requests_total{route=\"unmatched\",method=\"other\",status=\"405\"}") == 1);
	ck_assert(sample(text, "cmf_http_requests_total{route=\"unmatched\",method=\"other\",status=\"400\"}") == 1);
	ck_assert(sample(text, "cmf_http_requests_total{route=\"/healthz\",method=\"other\",status=\"200\"}") == 1);
	ck_assert(sample(text, "cmf_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"other\"}") == 2);
	ck_assert(sample(text, "cmf_http_request_duration_seconds_count{route=\"unmatched\"}") == 4);
	ck_assert_ptr_null(strstr(text, "BREW"));
	free(text);
}
END_TEST

START_TEST(test_routes_are_bounded)
{
	char route[32], *text;
	size_t labelled = 0;

	for (int i = 0; i < CMF_METRICS_ROUTES_MAX + 50; i++) {
		snprintf(route, sizeof(route), "/r%d", i);
		cmf_metrics_request(route, "GET", 200, 0.001);
		cmf_metrics_request(route, "GET", 200, 0.001); /* the second time finds the first's slot */
	}
	text = render();
	for (int i = 0; i < CMF_METRICS_ROUTES_MAX + 50; i++) {
		snprintf(route, sizeof(route), "/r%d", i);
		char series[96];

		snprintf(series, sizeof(series), "cmf_http_requests_total{route=\"%s\",method=\"GET\",status=\"200\"}", route);
		if (!isnan(sample(text, series))) {
			ck_assert(sample(text, series) == 2);
			labelled++;
		}
	}
	/* Slot 0 is "unmatched": the rest hold the first routes seen; later ones are counted there. */
	ck_assert_uint_eq(labelled, CMF_METRICS_ROUTES_MAX - 1);
	ck_assert(sample(text, "cmf_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"200\"}") == 2 * 51);
	ck_assert(sample(text, "cmf_http_requests_unlabelled_total") == 0);
	free(text);
	/* A long pattern is cut, and the cut one still names one series. */
	char long_route[CMF_METRICS_ROUTE_LEN * 2];

	memset(long_route, 'x', sizeof(long_route) - 1);
	long_route[sizeof(long_route) - 1] = '\0';
	reset();
	cmf_metrics_request(long_route, "GET", 200, 0.001);
	long_route[CMF_METRICS_ROUTE_LEN + 5] = '\0';
	cmf_metrics_request(long_route, "GET", 200, 0.001);
	text = render();
	ck_assert_ptr_null(strstr(text, long_route));
	long_route[CMF_METRICS_ROUTE_LEN - 1] = '\0';
	char series[sizeof(long_route) + 96];

	snprintf(series, sizeof(series), "cmf_http_requests_total{route=\"%s\",method=\"GET\",status=\"200\"}", long_route);
	ck_assert(sample(text, series) == 2);
	free(text);
}
END_TEST

START_TEST(test_one_buffer_for_several_routes)
{
	char buf[CMF_METRICS_ROUTE_LEN], *text;

	/* The same pointer with other text each time (a caller's stack buffer): each text counts as its own. */
	for (int i = 0; i < 30; i++) {
		snprintf(buf, sizeof(buf), "/route/%d", i % 3);
		cmf_metrics_request(buf, "GET", 200, 0.001);
	}
	text = render();
	ck_assert(sample(text, "cmf_http_requests_total{route=\"/route/0\",method=\"GET\",status=\"200\"}") == 10);
	ck_assert(sample(text, "cmf_http_requests_total{route=\"/route/1\",method=\"GET\",status=\"200\"}") == 10);
	ck_assert(sample(text, "cmf_http_requests_total{route=\"/route/2\",method=\"GET\",status=\"200\"}") == 10);
	free(text);
}
END_TEST

/* Buckets of `name` (with `route` label when not NULL): cumulative, +Inf == _count; returns _count. */
static double
check_histogram(const char *text, const char *name, const char *route, const double *bounds, size_t n)
{
	char series[256], le[32];
	double prev = 0, v, count;

	for (size_t i = 0; i <= n; i++) {
		if (i < n)
			snprintf(le, sizeof(le), "%g", bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		if (route != NULL)
			snprintf(series, sizeof(series), "%s_bucket{route=\"%s\",le=\"%s\"}", name, route, le);
		else
			snprintf(series, sizeof(series), "%s_bucket{le=\"%s\"}", name, le);
		v = sample(text, series);
		ck_assert_msg(!isnan(v), "missing %s", series);
		ck_assert_msg(v >= prev, "%s is below the bucket before it", series);
		prev = v;
	}
	if (route != NULL)
		snprintf(series, sizeof(series), "%s_count{route=\"%s\"}", name, route);
	else
		snprintf(series, sizeof(series), "%s_count", name);
	count = sample(text, series);
	ck_assert(count == prev);
	return count;
}

START_TEST(test_histograms_are_cumulative_and_consistent)
{
	static const double seen[] = { 0.00001, 0.00005, 0.00006, 0.001, 0.001, 0.3, 4.9, 7, -1, NAN };
	double sum = 0;
	char *text;

	for (size_t i = 0; i < sizeof(seen) / sizeof(seen[0]); i++) {
		cmf_metrics_request("/h", "GET", 200, seen[i]);
		sum += seen[i] > 0 ? seen[i] : 0;
	}
	for (size_t rows = 1; rows <= 5000; rows *= 3)
		cmf_metrics_audit_batch(rows, 0.01);
	text = render();
	ck_assert(check_histogram(text, "cmf_http_request_duration_seconds", "/h", duration_bounds, durations.n) == 10);
	/* le is "less or equal": 50 µs lands in the first bucket, 60 µs in the second. */
	ck_assert(sample(text, "cmf_http_request_duration_seconds_bucket{route=\"/h\",le=\"5e-05\"}") == 4);
	ck_assert(sample(text, "cmf_http_request_duration_seconds_bucket{route=\"/h\",le=\"0.0001\"}") == 5);
	ck_assert(sample(text, "cmf_http_request_duration_seconds_bucket{route=\"/h\",le=\"0.001\"}") == 7);
	ck_assert(sample(text, "cmf_http_request_duration_seconds_bucket{route=\"/h\",le=\"5\"}") == 9);
	ck_assert(fabs(sample(text, "cmf_http_request_duration_seconds_sum{route=\"/h\"}") - sum) < 1e-8);
	ck_assert(check_histogram(text, "cmf_audit_batch_rows", NULL, rows_bounds, batch_rows.n) == 8);
	ck_assert(sample(text, "cmf_audit_batch_rows_sum") == 1 + 3 + 9 + 27 + 81 + 243 + 729 + 2187);
	ck_assert(sample(text, "cmf_audit_batch_rows_bucket{le=\"4096\"}") == 8);
	ck_assert(check_histogram(text, "cmf_audit_commit_duration_seconds", NULL, duration_bounds, durations.n) == 8);
	free(text);
}
END_TEST

#define THREADS 4
#define PER_THREAD 100000

static void *
hammer(void *arg)
{
	(void)arg;
	for (int i = 0; i < PER_THREAD; i++) {
		cmf_metrics_request(i % 2 ? "/cmf/api/v1/secrets" : "/healthz", "GET", 200, 0.0002);
		cmf_metrics_add(CMF_M_SNAPSHOT_CACHE_HITS, 1);
		cmf_metrics_gauge_add(CMF_G_SUSPENDED_CONNECTIONS, 1);
		cmf_metrics_gauge_add(CMF_G_SUSPENDED_CONNECTIONS, -1);
	}
	return NULL;
}

START_TEST(test_concurrent_updates_are_exact)
{
	pthread_t t[THREADS];
	char *text;

	for (int i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, hammer, NULL), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	text = render();
	ck_assert(sample(text, "cmf_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"}") ==
		  THREADS * PER_THREAD / 2);
	ck_assert(sample(text, "cmf_http_requests_total{route=\"/cmf/api/v1/secrets\",method=\"GET\",status=\"200\"}") ==
		  THREADS * PER_THREAD / 2);
	ck_assert(sample(text, "cmf_http_request_duration_seconds_count{route=\"/healthz\"}") == THREADS * PER_THREAD / 2);
	ck_assert(sample(text, "cmf_snapshot_cache_hits_total") == THREADS * PER_THREAD);
	ck_assert(sample(text, "cmf_http_suspended_connections") == 0);
	free(text);
}
END_TEST

START_TEST(test_route_patterns_and_permission)
{
	static const struct cmf_route table[] = {
		{ "GET", { "metrics", NULL }, CMF_PERM_METRICS, NULL, NULL, NULL, 0 },
		{ "GET", { "cmf", "api", "v1", "environments", "*", "client-configs", "*", "*", NULL }, CMF_PERM_ENV_READ,
		  NULL, NULL, NULL, 0 },
		{ "GET", { "cmf", "api", "v1", "secrets", NULL }, CMF_PERM_ADMIN, NULL, NULL, NULL, 0 },
		{ "GET", { NULL }, CMF_PERM_PUBLIC, NULL, NULL, NULL, 0 },
	};
	const char *args[] = { "prod", "c", "d", NULL };
	struct cmf_principal p;
	const char *msg, *action;
	unsigned status;
	char buf[CMF_ROUTE_PATTERN_MAX], small[8];

	ck_assert_uint_eq(cmf_router_pattern(&table[0], buf, sizeof(buf)), 8);
	ck_assert_str_eq(buf, "/metrics");
	cmf_router_pattern(&table[1], buf, sizeof(buf));
	ck_assert_str_eq(buf, "/cmf/api/v1/environments/*/client-configs/*/*");
	cmf_router_pattern(&table[3], buf, sizeof(buf));
	ck_assert_str_eq(buf, "/");
	ck_assert_uint_eq(cmf_router_pattern(&table[1], small, sizeof(small)), strlen("/cmf/api/v1/environments/*/client-configs/*/*"));
	ck_assert_str_eq(small, "/cmf/ap");
	/* Who may read /metrics: admin and metrics-reader; a metrics-reader nothing else. */
	memset(&p, 0, sizeof(p));
	for (int role = CMF_ROLE_NONE; role <= CMF_ROLE_METRICS_READER; role++) {
		p.role = (enum cmf_role)role;
		ck_assert_int_eq(cmf_router_authorize(&table[0], CMF_AUTH_OK, true, &p, args, &status, &msg, &action),
				 role == CMF_ROLE_ADMIN || role == CMF_ROLE_METRICS_READER ? 0 : -1);
	}
	ck_assert_uint_eq(status, 0);
	p.role = CMF_ROLE_ENV_READER;
	ck_assert_int_eq(cmf_router_authorize(&table[0], CMF_AUTH_OK, true, &p, args, &status, &msg, &action), -1);
	ck_assert_uint_eq(status, 403);
	ck_assert_str_eq(action, "authorize");
	p.role = CMF_ROLE_METRICS_READER;
	for (size_t i = 1; i < 3; i++) {
		ck_assert_int_eq(cmf_router_authorize(&table[i], CMF_AUTH_OK, true, &p, args, &status, &msg, &action), -1);
		ck_assert_uint_eq(status, 403);
	}
	ck_assert_int_eq(cmf_router_authorize(&table[0], CMF_AUTH_MISSING, true, &p, args, &status, &msg, &action), -1);
	ck_assert_uint_eq(status, 401);
}
END_TEST

static const struct cmf_check_opts opts = { reset, NULL, 30 };

/* Reservations by term: the newest terms kept, a term's latest count, an older term never evicting a newer one. */
START_TEST(test_dek_reserved_by_term)
{
	char *text;

	reset();
	text = render();
	ck_assert_ptr_null(strstr(text, "cmf_dek_reserved_encryptions"));
	free(text);
	cmf_metrics_dek_reserved(1, 1024);
	cmf_metrics_dek_reserved(1, 3072);
	cmf_metrics_dek_reserved(2, 1024);
	text = render();
	ck_assert(sample(text, "cmf_dek_reserved_encryptions{term=\"1\"}") == 3072);
	ck_assert(sample(text, "cmf_dek_reserved_encryptions{term=\"2\"}") == 1024);
	ck_assert_ptr_nonnull(strstr(text, "# TYPE cmf_dek_reserved_encryptions gauge\n"));
	free(text);
	for (uint32_t t = 3; t <= CMF_METRICS_DEK_TERMS + 2; t++)
		cmf_metrics_dek_reserved(t, t);
	cmf_metrics_dek_reserved(1, 9999); /* older than every term kept: not taken back in */
	text = render();
	ck_assert(isnan(sample(text, "cmf_dek_reserved_encryptions{term=\"1\"}")));
	ck_assert(isnan(sample(text, "cmf_dek_reserved_encryptions{term=\"2\"}")));
	ck_assert(sample(text, "cmf_dek_reserved_encryptions{term=\"3\"}") == 3);
	ck_assert(sample(text, "cmf_dek_reserved_encryptions{term=\"10\"}") == 10);
	free(text);
}
END_TEST

CMF_CHECK_SUITE_WITH("metrics", &opts, test_dek_reserved_by_term, test_every_family_is_rendered, test_key_states, test_labels_are_escaped,
		     test_unmatched_and_other, test_routes_are_bounded, test_one_buffer_for_several_routes, test_histograms_are_cumulative_and_consistent,
		     test_concurrent_updates_are_exact, test_route_patterns_and_permission)
