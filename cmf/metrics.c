/*
 * cmf metrics: lock-free counters, gauges and histograms in fixed tables, and their rendering in the
 * Prometheus text format 0.0.4. Written here rather than taken from a library: Debian ships no C client
 * (prometheus-cpp is C++, and takes a lock per update), and the format is a few printf lines.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmf/metrics.h"

/* ---- Histograms ------------------------------------------------------------------------------ */

/* The most upper bounds a histogram has (+Inf apart): the duration buckets below have 16. */
#define HIST_BOUNDS_MAX 16

/* Durations from 50 µs (a 304 from memory) to 5 s (a database deadline and its retry). */
static const double duration_bounds[] = { 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
					   0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5,    5 };
/* Audit batch sizes: one event (an idle writer) up to 4096 (a burst drained at once). */
static const double rows_bounds[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096 };

/* Sums are kept as integers (an atomic add, exact): durations in nanoseconds, rows as they are. */
#define NS_PER_S 1000000000ULL

struct hist_kind {
	const double *bounds;
	size_t n;
	uint64_t scale; /* sum units per 1 of the observed value */
};

static const struct hist_kind durations = { duration_bounds, sizeof(duration_bounds) / sizeof(duration_bounds[0]),
					    NS_PER_S };
static const struct hist_kind batch_rows = { rows_bounds, sizeof(rows_bounds) / sizeof(rows_bounds[0]), 1 };

struct hist {
	_Atomic uint64_t bucket[HIST_BOUNDS_MAX + 1]; /* per bucket, not cumulative; the last is +Inf */
	_Atomic uint64_t sum;                         /* in 1/scale units */
};

/*
 * An observation adds at most this to a sum (in sum units): below 2^63, so the conversion from double
 * is defined. Such a value lands in +Inf anyway (292 years in nanoseconds).
 */
#define HIST_SUM_STEP_MAX 9.2e18

static void
hist_observe(struct hist *h, const struct hist_kind *k, double v)
{
	size_t i = 0;

	if (!(v > 0)) /* negative, zero or NaN */
		v = 0;
	if (v > HIST_SUM_STEP_MAX / (double)k->scale)
		v = HIST_SUM_STEP_MAX / (double)k->scale;
	while (i < k->n && v > k->bounds[i])
		i++;
	atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum, (uint64_t)(v * (double)k->scale + 0.5), memory_order_relaxed);
}

/* ---- Requests by route, method and status --------------------------------------------------- */

/* The one label vocabulary for methods; anything else is the last, "other". */
static const char *const methods[] = { "GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "other" };
#define METHOD_OTHER (sizeof(methods) / sizeof(methods[0]) - 1)

/*
 * Route patterns, interned: slot 0 is "unmatched", the others are found by a hash of the pattern
 * (open addressing). A slot is published by storing its hash last (release); readers never lock,
 * writers (the first request of each route) take route_mutex.
 */
struct route_slot {
	_Atomic uint32_t hash; /* 0: free */
	char name[CMF_METRICS_ROUTE_LEN];
	struct hist duration;
};

static struct route_slot routes[CMF_METRICS_ROUTES_MAX];
static pthread_mutex_t route_mutex = PTHREAD_MUTEX_INITIALIZER;

/* FNV-1a of the pattern as kept (cut at CMF_METRICS_ROUTE_LEN - 1); never 0, which marks a free slot. */
static uint32_t
route_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; s[i] != '\0' && i < CMF_METRICS_ROUTE_LEN - 1; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h != 0 ? h : 1;
}

/*
 * The slot of `route` from its first probe: found, or the free slot where it would go (*free_slot),
 * or 0 when neither (the table is full).
 */
static size_t
route_probe(const char *route, uint32_t h, size_t *free_slot)
{
	const size_t n = CMF_METRICS_ROUTES_MAX - 1;

	*free_slot = 0;
	for (size_t j = 0; j < n; j++) {
		size_t i = 1 + (h + j) % n;
		uint32_t sh = atomic_load_explicit(&routes[i].hash, memory_order_acquire);

		if (sh == 0) {
			*free_slot = i;
			return 0;
		}
		if (sh == h && strncmp(routes[i].name, route, CMF_METRICS_ROUTE_LEN - 1) == 0)
			return i;
	}
	return 0;
}

/*
 * The slot last found for a pointer: callers pass the route table's own strings, the same pointer for a
 * route every time, so one pointer comparison and one string comparison replace hashing the text. The
 * string comparison is what decides: a pointer reused for other text, or a pair torn by two writers,
 * only costs a miss. 256 entries: four times the routes of cmf's table.
 */
#define PTR_CACHE_BITS 8

static struct {
	_Atomic uintptr_t ptr;
	_Atomic uint32_t slot;
} ptr_cache[1u << PTR_CACHE_BITS];

static bool
slot_holds(size_t i, const char *route)
{
	return i > 0 && i < CMF_METRICS_ROUTES_MAX && atomic_load_explicit(&routes[i].hash, memory_order_acquire) != 0 &&
	       strncmp(routes[i].name, route, CMF_METRICS_ROUTE_LEN - 1) == 0;
}

static size_t
route_slot(const char *route)
{
	uintptr_t p = (uintptr_t)route;
	size_t c = (size_t)((uint64_t)p * 0x9e3779b97f4a7c15ULL >> (64 - PTR_CACHE_BITS)), i, free_slot;
	uint32_t h;

	if (route == NULL)
		return 0;
	if (atomic_load_explicit(&ptr_cache[c].ptr, memory_order_acquire) == p) {
		i = atomic_load_explicit(&ptr_cache[c].slot, memory_order_relaxed);
		if (slot_holds(i, route))
			return i;
	}
	h = route_hash(route);
	i = route_probe(route, h, &free_slot);
	if (i == 0 && free_slot != 0) {
		/* First sight of this route: claim a slot, unless another thread did meanwhile. */
		pthread_mutex_lock(&route_mutex);
		i = route_probe(route, h, &free_slot);
		if (i == 0 && free_slot != 0) {
			i = free_slot;
			snprintf(routes[i].name, sizeof(routes[i].name), "%s", route);
			atomic_store_explicit(&routes[i].hash, h, memory_order_release);
		}
		pthread_mutex_unlock(&route_mutex);
	}
	if (i != 0) {
		atomic_store_explicit(&ptr_cache[c].slot, (uint32_t)i, memory_order_relaxed);
		atomic_store_explicit(&ptr_cache[c].ptr, p, memory_order_release);
	}
	return i;
}

/*
 * One counter per (route, method, status) seen, in an open-addressed table keyed by the three packed
 * into 32 bits (route slot + 1, method, status), claimed by compare-and-swap. 4096 cells: 128 routes
 * with a few methods and statuses each stay far below half full, which keeps probes short. A request
 * that finds no cell is counted in request_overflow.
 */
#define CELLS_BITS 12
#define CELLS (1u << CELLS_BITS)
#define CELL_STATUS_BITS 10 /* statuses 100..599; 0 is "other" */
#define CELL_METHOD_BITS 3

struct cell {
	_Atomic uint32_t key; /* 0: free */
	_Atomic uint64_t count;
};

static struct cell cells[CELLS];
static _Atomic uint64_t request_overflow;

static uint32_t
cell_key(size_t slot, size_t method, unsigned status)
{
	return (uint32_t)(slot + 1) << (CELL_METHOD_BITS + CELL_STATUS_BITS) | (uint32_t)method << CELL_STATUS_BITS |
	       (status >= 100 && status <= 599 ? status : 0);
}

static void
cell_add(uint32_t key)
{
	/* Fibonacci hashing: the multiplier spreads keys that differ in low bits over the whole table. */
	uint32_t i = (key * 2654435769u) >> (32 - CELLS_BITS);

	for (size_t j = 0; j < CELLS; j++, i = (i + 1) & (CELLS - 1)) {
		uint32_t k = atomic_load_explicit(&cells[i].key, memory_order_acquire);

		if (k == 0) {
			uint32_t expected = 0;

			if (atomic_compare_exchange_strong_explicit(&cells[i].key, &expected, key, memory_order_acq_rel,
								    memory_order_acquire))
				k = key;
			else
				k = expected;
		}
		if (k == key) {
			atomic_fetch_add_explicit(&cells[i].count, 1, memory_order_relaxed);
			return;
		}
	}
	atomic_fetch_add_explicit(&request_overflow, 1, memory_order_relaxed);
}

static size_t
method_index(const char *method)
{
	for (size_t i = 0; method != NULL && i < METHOD_OTHER; i++)
		if (strcmp(method, methods[i]) == 0)
			return i;
	return METHOD_OTHER;
}

void
cmf_metrics_request(const char *route, const char *method, unsigned status, double seconds)
{
	size_t slot = route_slot(route);

	cell_add(cell_key(slot, method_index(method), status));
	hist_observe(&routes[slot].duration, &durations, seconds);
}

/* ---- Counters, gauges and the audit writer's histograms ------------------------------------- */

static const struct {
	const char *name;
	const char *help;
} counter_info[CMF_M__COUNT] = {
	[CMF_M_TOKEN_CACHE_HITS] = { "cmf_token_cache_hits_total", "Token checks answered from memory." },
	[CMF_M_TOKEN_CACHE_MISSES] = { "cmf_token_cache_misses_total",
				       "Token checks that looked the token up in PostgreSQL." },
	[CMF_M_TOKEN_CACHE_INVALIDATIONS] = { "cmf_token_cache_invalidations_total",
					      "Token cache invalidations (a change notification, a revocation, a flush)." },
	[CMF_M_SNAPSHOT_CACHE_HITS] = { "cmf_snapshot_cache_hits_total",
					"Resolutions answered from a sealed snapshot in memory." },
	[CMF_M_SNAPSHOT_CACHE_MISSES] = { "cmf_snapshot_cache_misses_total",
					  "Resolutions that queried PostgreSQL for their snapshot." },
	[CMF_M_SNAPSHOT_CACHE_INVALIDATIONS] = {
		"cmf_snapshot_cache_invalidations_total",
		"Snapshot cache invalidations (a change notification, a write on this replica, a flush)." },
	[CMF_M_ROW_CACHE_HITS] = { "cmf_row_cache_hits_total", "Resource GETs answered from memory." },
	[CMF_M_ROW_CACHE_MISSES] = { "cmf_row_cache_misses_total", "Resource GETs that read PostgreSQL." },
	[CMF_M_ROW_CACHE_INVALIDATIONS] = { "cmf_row_cache_invalidations_total",
					    "Times the resource row cache was emptied." },
	[CMF_M_AUDIT_EVENTS] = { "cmf_audit_events_total", "Audit events queued for the audit writer." },
	[CMF_M_AUDIT_MERGED_EVENTS] = { "cmf_audit_merged_events_total",
					"Audit events merged into an identical event's row (counted there)." },
	[CMF_M_AUDIT_QUEUE_FULL] = { "cmf_audit_queue_full_total",
				     "Requests refused with 503 because the audit queue was full." },
	[CMF_M_AUDIT_COMMIT_FAILURES] = { "cmf_audit_commit_failures_total", "Audit batches whose COMMIT failed." },
	[CMF_M_PG_ERRORS] = { "cmf_postgres_errors_total",
			      "PostgreSQL errors: failed statements, lost connections, missed deadlines." },
	[CMF_M_LISTENER_RECONNECTS] = { "cmf_listener_reconnects_total",
					"Times the LISTEN connection was opened again after a loss." },
	[CMF_M_LISTENER_RESYNCS] = { "cmf_listener_resyncs_total", "Full resynchronisations of the caches." },
	[CMF_M_LISTENER_NOTIFICATIONS] = { "cmf_listener_notifications_total",
					   "Change notifications received from PostgreSQL." },
};

/* The heartbeat's timestamp is rendered as its age instead (name NULL here). */
static const struct {
	const char *name;
	const char *help;
} gauge_info[CMF_G__COUNT] = {
	[CMF_G_AUDIT_QUEUE_DEPTH] = { "cmf_audit_queue_depth", "Audit events queued and not yet committed." },
	[CMF_G_LISTENER_UP] = { "cmf_listener_up",
				"1 while the LISTEN connection is up and its heartbeat answers, else 0." },
	[CMF_G_LISTENER_LAST_HEARTBEAT] = { NULL, NULL },
	[CMF_G_CACHE_ENABLED] = { "cmf_cache_enabled",
				  "1 while tokens and resolutions are served from memory, 0 while caches are bypassed." },
	[CMF_G_TOKEN_CACHE_ENTRIES] = { "cmf_token_cache_entries", "Tokens held in memory." },
	[CMF_G_SNAPSHOT_CACHE_ENTRIES] = { "cmf_snapshot_cache_entries", "Sealed resolution snapshots held in memory." },
	[CMF_G_ROW_CACHE_ENTRIES] = { "cmf_row_cache_entries", "Resource rows (as stored, sealed) held in memory for GET." },
	[CMF_G_OPEN_CONNECTIONS] = { "cmf_http_open_connections", "HTTP connections open." },
	[CMF_G_SUSPENDED_CONNECTIONS] = {
		"cmf_http_suspended_connections",
		"HTTP connections suspended until their audit event is committed, or held as watch requests." },
	[CMF_G_WATCHES_HELD] = { "cmf_watch_requests_held",
				 "Watch requests (watch=true) held until their client configuration changes." },
};

static _Atomic uint64_t counters[CMF_M__COUNT];
/* Gauges hold a double's bits: C11 has no atomic add on doubles, so gauge_add loops on compare-and-swap. */
static _Atomic uint64_t gauges[CMF_G__COUNT];
static struct hist audit_rows, audit_commit;

void
cmf_metrics_add(enum cmf_metric m, uint64_t n)
{
	if ((unsigned)m < CMF_M__COUNT)
		atomic_fetch_add_explicit(&counters[m], n, memory_order_relaxed);
}

static uint64_t
double_bits(double v)
{
	uint64_t b;

	memcpy(&b, &v, sizeof(b));
	return b;
}

static double
bits_double(uint64_t b)
{
	double v;

	memcpy(&v, &b, sizeof(v));
	return v;
}

void
cmf_metrics_gauge_set(enum cmf_gauge g, double v)
{
	if ((unsigned)g < CMF_G__COUNT)
		atomic_store_explicit(&gauges[g], double_bits(v), memory_order_relaxed);
}

void
cmf_metrics_gauge_add(enum cmf_gauge g, double delta)
{
	uint64_t old;

	if ((unsigned)g >= CMF_G__COUNT)
		return;
	old = atomic_load_explicit(&gauges[g], memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(&gauges[g], &old, double_bits(bits_double(old) + delta),
						      memory_order_relaxed, memory_order_relaxed))
		;
}

static double
gauge_get(enum cmf_gauge g)
{
	return bits_double(atomic_load_explicit(&gauges[g], memory_order_relaxed));
}

void
cmf_metrics_audit_batch(size_t rows, double commit_seconds)
{
	hist_observe(&audit_rows, &batch_rows, (double)rows);
	hist_observe(&audit_commit, &durations, commit_seconds);
}

/* ---- Process facts read at render ------------------------------------------------------------ */

/* Resident set size in bytes (/proc/self/statm, second field, in pages); -1 if unreadable. */
static double
process_rss(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size, resident;
	double v = -1;

	if (f == NULL)
		return -1;
	if (fscanf(f, "%lu %lu", &size, &resident) == 2)
		v = (double)resident * (double)sysconf(_SC_PAGESIZE);
	fclose(f);
	return v;
}

static double start_time = -1;
static pthread_once_t start_once = PTHREAD_ONCE_INIT;

/*
 * The process's start as unix time: boot time (/proc/stat "btime") plus the process's start in clock
 * ticks after boot (/proc/self/stat, field 22, counted after the command name's closing parenthesis,
 * since the name itself may hold spaces and parentheses). Stays -1 if unreadable.
 */
static void
start_time_read(void)
{
	/* /proc/self/stat is one line of 52 numbers and a 16-byte name: well under 1 KiB. */
	char line[1024], *p;
	unsigned long long btime = 0, ticks = 0;
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f;
	size_t n;

	f = fopen("/proc/stat", "r");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "btime %llu", &btime) == 1)
			break;
	fclose(f);
	f = fopen("/proc/self/stat", "r");
	if (f == NULL)
		return;
	n = fread(line, 1, sizeof(line) - 1, f);
	fclose(f);
	line[n] = '\0';
	p = strrchr(line, ')');
	if (p == NULL || btime == 0 || hz <= 0)
		return;
	/* After ")" come field 3 (state) onwards: stop at the space before field 22 (starttime). */
	for (int field = 3; field <= 22 && p != NULL; field++)
		p = strchr(p + 1, ' ');
	if (p == NULL || sscanf(p, " %llu", &ticks) != 1)
		return;
	start_time = (double)btime + (double)ticks / (double)hz;
}

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- Rendering ------------------------------------------------------------------------------- */

static void
family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A sample value as the format spells it: NaN, +Inf and -Inf by name, others in full precision. */
static void
value(FILE *f, double v)
{
	if (isnan(v))
		fputs(" NaN\n", f);
	else if (isinf(v))
		fputs(v > 0 ? " +Inf\n" : " -Inf\n", f);
	else
		fprintf(f, " %.17g\n", v);
}

/* A label value between double quotes, with backslash, double quote and newline escaped. */
static void
label_value(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			fputc('\\', f);
		if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

/* A sum kept in 1/scale units, printed exactly (scale is 1 or NS_PER_S). */
static void
scaled(FILE *f, uint64_t v, uint64_t scale)
{
	if (scale == 1)
		fprintf(f, " %" PRIu64 "\n", v);
	else
		fprintf(f, " %" PRIu64 ".%09" PRIu64 "\n", v / scale, v % scale);
}

/*
 * One histogram's samples, `route` its label when not NULL. The buckets are read once and made
 * cumulative, and _count is the +Inf bucket, so a scrape is consistent with itself however many
 * observations land while it is written (the sum may lag by those).
 */
static void
hist_render(FILE *f, const char *name, const char *route, const struct hist *h, const struct hist_kind *k)
{
	uint64_t cum = 0;

	for (size_t i = 0; i <= k->n; i++) {
		cum += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
		fprintf(f, "%s_bucket{", name);
		if (route != NULL) {
			fputs("route=", f);
			label_value(f, route);
			fputc(',', f);
		}
		if (i < k->n)
			fprintf(f, "le=\"%g\"} %" PRIu64 "\n", k->bounds[i], cum);
		else
			fprintf(f, "le=\"+Inf\"} %" PRIu64 "\n", cum);
	}
	fprintf(f, "%s_sum", name);
	if (route != NULL) {
		fputs("{route=", f);
		label_value(f, route);
		fputc('}', f);
	}
	scaled(f, atomic_load_explicit(&h->sum, memory_order_relaxed), k->scale);
	fprintf(f, "%s_count", name);
	if (route != NULL) {
		fputs("{route=", f);
		label_value(f, route);
		fputc('}', f);
	}
	fprintf(f, " %" PRIu64 "\n", cum);
}

static bool
hist_empty(const struct hist *h, const struct hist_kind *k)
{
	for (size_t i = 0; i <= k->n; i++)
		if (atomic_load_explicit(&h->bucket[i], memory_order_relaxed) != 0)
			return false;
	return true;
}

static const char *
route_name(size_t slot)
{
	return slot == 0 ? "unmatched" : routes[slot].name;
}

static void
render_requests(FILE *f)
{
	const uint32_t route_shift = CELL_METHOD_BITS + CELL_STATUS_BITS;

	family(f, "cmf_http_requests_total", "counter",
	       "HTTP requests answered, by route pattern (\"unmatched\": no route), method and status.");
	for (size_t i = 0; i < CELLS; i++) {
		uint32_t key = atomic_load_explicit(&cells[i].key, memory_order_acquire);
		unsigned status;

		if (key == 0)
			continue;
		status = key & ((1u << CELL_STATUS_BITS) - 1);
		fputs("cmf_http_requests_total{route=", f);
		label_value(f, route_name((key >> route_shift) - 1));
		fprintf(f, ",method=\"%s\",status=", methods[(key >> CELL_STATUS_BITS) & ((1u << CELL_METHOD_BITS) - 1)]);
		if (status != 0)
			fprintf(f, "\"%u\"}", status);
		else
			fputs("\"other\"}", f);
		fprintf(f, " %" PRIu64 "\n", atomic_load_explicit(&cells[i].count, memory_order_relaxed));
	}
	family(f, "cmf_http_request_duration_seconds", "histogram",
	       "Time from a request's arrival to its answer, by route pattern.");
	for (size_t i = 0; i < CMF_METRICS_ROUTES_MAX; i++) {
		if (i != 0 && atomic_load_explicit(&routes[i].hash, memory_order_acquire) == 0)
			continue;
		if (!hist_empty(&routes[i].duration, &durations))
			hist_render(f, "cmf_http_request_duration_seconds", route_name(i), &routes[i].duration,
				    &durations);
	}
	family(f, "cmf_http_requests_unlabelled_total", "counter",
	       "Requests left out of cmf_http_requests_total because its table of series was full.");
	fprintf(f, "cmf_http_requests_unlabelled_total %" PRIu64 "\n",
		atomic_load_explicit(&request_overflow, memory_order_relaxed));
}

static void
render_gauge(FILE *f, const char *name, const char *help, double v)
{
	family(f, name, "gauge", help);
	fputs(name, f);
	value(f, v);
}

static pthread_mutex_t dek_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct {
	uint32_t term; /* 0: free */
	uint64_t encryptions;
} dek_reserved[CMF_METRICS_DEK_TERMS];

void
cmf_metrics_dek_reserved(uint32_t term, uint64_t encryptions)
{
	size_t slot = 0;

	if (term == 0)
		return;
	pthread_mutex_lock(&dek_mutex);
	/* The term's own slot, else the lowest term's (a free slot is term 0, the lowest of all). */
	for (size_t i = 0; i < CMF_METRICS_DEK_TERMS; i++) {
		if (dek_reserved[i].term == term) {
			slot = i;
			break;
		}
		if (dek_reserved[i].term < dek_reserved[slot].term)
			slot = i;
	}
	if (dek_reserved[slot].term == term || term > dek_reserved[slot].term) {
		dek_reserved[slot].term = term;
		dek_reserved[slot].encryptions = encryptions;
	}
	pthread_mutex_unlock(&dek_mutex);
}

static void
render_dek_reserved(FILE *f)
{
	bool any = false;

	pthread_mutex_lock(&dek_mutex);
	for (size_t i = 0; i < CMF_METRICS_DEK_TERMS; i++) {
		if (dek_reserved[i].term == 0)
			continue;
		if (!any)
			family(f, "cmf_dek_reserved_encryptions", "gauge",
			       "Encryptions reserved under a data key term by every process, as of this process's latest "
			       "reservation under it (a new term is made at encryption.dek.rotateAfterEncryptions).");
		any = true;
		fprintf(f, "cmf_dek_reserved_encryptions{term=\"%" PRIu32 "\"}", dek_reserved[i].term);
		value(f, (double)dek_reserved[i].encryptions);
	}
	pthread_mutex_unlock(&dek_mutex);
}

static void
render_state(FILE *f, bool key_loaded, const char *key_id, unsigned dek_term, long long dek_encryptions)
{
	double heartbeat = gauge_get(CMF_G_LISTENER_LAST_HEARTBEAT), now = now_seconds(), rss = process_rss();
	bool encrypted = key_id != NULL && key_id[0] != '\0';

	for (int g = 0; g < CMF_G__COUNT; g++)
		if (gauge_info[g].name != NULL)
			render_gauge(f, gauge_info[g].name, gauge_info[g].help, gauge_get((enum cmf_gauge)g));
	if (heartbeat > 0)
		render_gauge(f, "cmf_listener_heartbeat_age_seconds",
			     "Seconds since the listener's last heartbeat was answered.",
			     now > heartbeat ? now - heartbeat : 0);
	render_gauge(f, "cmf_encryption_enabled", "1 when secrets are encrypted (the locked mode), 0 when stored in plaintext.",
		     encrypted ? 1 : 0);
	render_gauge(f, "cmf_key_loaded",
		     "1 while the master key's keyring is loaded, 0 while it is revoked or unavailable (or encryption is disabled).",
		     key_loaded ? 1 : 0);
	if (encrypted) {
		family(f, "cmf_key_info", "gauge", "The master key in use, by key id (a public fingerprint of the key).");
		fputs("cmf_key_info{key_id=", f);
		label_value(f, key_id);
		fputs("} 1\n", f);
	}
	if (dek_term > 0)
		render_gauge(f, "cmf_dek_term", "The current data key (DEK) term: new secrets are sealed under it.",
			     (double)dek_term);
	if (dek_encryptions >= 0)
		render_gauge(f, "cmf_dek_encryptions", "Encryptions counted under the current data key term.",
			     (double)dek_encryptions);
	render_dek_reserved(f);
	if (rss >= 0)
		render_gauge(f, "cmf_process_resident_memory_bytes", "Resident memory of the process in bytes.", rss);
	pthread_once(&start_once, start_time_read);
	if (start_time >= 0)
		render_gauge(f, "cmf_process_start_time_seconds", "Start time of the process since the unix epoch in seconds.",
			     start_time);
}

char *
cmf_metrics_render(bool key_loaded, const char *key_id, unsigned dek_term, long long dek_encryptions)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	int bad;

	if (f == NULL)
		return NULL;
	render_requests(f);
	for (int m = 0; m < CMF_M__COUNT; m++) {
		family(f, counter_info[m].name, "counter", counter_info[m].help);
		fprintf(f, "%s %" PRIu64 "\n", counter_info[m].name,
			atomic_load_explicit(&counters[m], memory_order_relaxed));
	}
	family(f, "cmf_audit_batch_rows", "histogram", "Rows written by each committed audit batch.");
	hist_render(f, "cmf_audit_batch_rows", NULL, &audit_rows, &batch_rows);
	family(f, "cmf_audit_commit_duration_seconds", "histogram", "Latency of each audit batch's COMMIT.");
	hist_render(f, "cmf_audit_commit_duration_seconds", NULL, &audit_commit, &durations);
	render_state(f, key_loaded, key_id, dek_term, dek_encryptions);
	bad = ferror(f);
	if (fclose(f) != 0 || bad) {
		free(text);
		return NULL;
	}
	return text;
}
