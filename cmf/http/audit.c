/* cmf audit: events queued by requests, merged when identical, committed in batches; old events pruned. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmf/app.h"
#include "cmf/http/audit.h"
#include "cmf/log.h"
#include "crypto/crypto.h"
#include "cmf/metrics.h"
#include "cmf/text.h"

/* Identical events merge within this many nanoseconds of the first (the "within one second"). */
#define MERGE_WINDOW_NS 1000000000LL
/* Chains of the merge table: a few hundred distinct (client, principal, route) per second is typical. */
#define MERGE_BUCKETS 1024
/* After a failed commit the writer waits before trying again, doubling up to this. */
#define RETRY_MAX_NS 1000000000LL
/*
 * Writers, each with a PostgreSQL session: a reply that waits for its row waits for a COMMIT (a WAL flush),
 * so one writer bounds the rate to (waiting replies) / (commit time). With several, one gathers the next
 * batch while another's COMMIT flushes, and PostgreSQL flushes concurrent COMMITs together.
 */
#define AUDIT_WRITERS 3
/*
 * Group commit: a writer waits up to GATHER_NS for GATHER_MIN events before it commits fewer. A COMMIT
 * costs PostgreSQL about the same for one row as for dozens, so under load a little patience makes each
 * row far cheaper; an idle service still commits a lone event within GATHER_NS.
 */
#define GATHER_MIN 24
#define GATHER_NS 1000000LL

/*
 * Retention (audit.retentionDays): a pass deletes events older than that in batches of PRUNE_BATCH rows,
 * one short statement each, PRUNE_PAUSE_NS apart so the writers and the API keep the table; a pass ends
 * after PRUNE_PASS_NS even with rows left (a first pass over years of trail), and the next starts
 * PRUNE_PASS_NS later — otherwise PRUNE_INTERVAL_NS later: events come of age by the day, an hour late
 * is nothing. A failed pass (PostgreSQL away) is tried again PRUNE_PASS_NS later.
 */
#define PRUNE_BATCH 1000L
#define PRUNE_PAUSE_NS 100000000LL
#define PRUNE_PASS_NS 60000000000LL
#define PRUNE_INTERVAL_NS 3600000000000LL

/* A completion taken from an event under q.mu, to run once the lock is released. */
struct told {
	void (*done)(void *cls, bool ok);
	void *cls;
};

/* A writer's session and buffers; `busy_min` is the lowest sequence number of its batch in flight (0: none). */
struct writer {
	pthread_t thread;
	bool started;
	struct db_conn *conn;
	uint64_t busy_min;
	size_t nbatch; /* events in batch[] while busy */
	bool exited;   /* its thread left the loop (q.mu) */
	struct ev *batch[DB_AUDIT_BATCH_MAX];
	struct told told[DB_AUDIT_BATCH_MAX];
};

/* One row to store: an event, or identical events merged. Its strings live in text[]. */
struct ev {
	struct ev *next;  /* in the ready list or the window list */
	struct ev *hnext; /* in a merge chain while its window is open */
	struct db_audit a;
	uint64_t hash;
	long long opened_ns; /* CLOCK_MONOTONIC when its window opened */
	uint64_t seq;        /* its place in the ready order (from 1) */
	long long ready_ns;  /* CLOCK_MONOTONIC when it became ready */
	bool logged;
	bool maybe_stored; /* its batch's outcome is unknown: check before storing it again */
	bool stored;       /* found stored by that check: left out of the batch, completed as committed */
	char *json; /* event_json, made when first taken by a writer */
	void (*done)(void *cls, bool ok);
	void *cls;
	char text[];
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t wake;     /* the writer: something to do */
	pthread_cond_t progress; /* flushers and stop: a batch was committed or failed */
	struct ev *ready_head, *ready_tail;
	struct ev *win_head, *win_tail; /* open merge windows, oldest first */
	struct ev *buckets[MERGE_BUCKETS];
	size_t queued, capacity;
	uint64_t readied; /* rows moved to the ready list, ever */
	size_t nready;    /* rows in the ready list now */
	int urgent;       /* flushes waiting: no gathering delay */
	bool running, stopping, abandon;
	struct writer *writers[AUDIT_WRITERS];
} q = { .mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER, .progress = PTHREAD_COND_INITIALIZER };

static double
real_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* An absolute CLOCK_REALTIME deadline `ns` from now, for pthread_cond_timedwait. */
static struct timespec
deadline_in(long long ns)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ns += ts.tv_nsec;
	ts.tv_sec += (time_t)(ns / 1000000000LL);
	ts.tv_nsec = (long)(ns % 1000000000LL);
	return ts;
}

void
cmf_audit_init(struct db_audit *a, const struct cmf_request *req, const char *action, const char *outcome,
	       int status, char *resbuf, size_t reslen, const char *resource_fmt, ...)
{
	va_list ap;

	va_start(ap, resource_fmt);
	vsnprintf(resbuf, reslen, resource_fmt, ap);
	va_end(ap);
	/* Refusals name the raw path, which may hold any bytes: PostgreSQL's text and JSON want UTF-8. */
	cmf_utf8_sanitize(resbuf);
	memset(a, 0, sizeof(*a));
	a->principal = req->principal.name[0] != '\0' ? req->principal.name : "anonymous";
	a->action = action;
	a->resource = resbuf;
	a->outcome = outcome;
	a->status = status;
	a->request_id = req->request_id;
	a->client_address = req->client_addr;
	a->client_cert = req->client_cert;
	a->route = CMF_AUDIT_UNROUTED;
	/* The event's own time, whichever path stores it and however late: the trail is ordered by it. */
	a->time = real_seconds();
}

static const char *
or_empty(const char *s)
{
	return s != NULL ? s : "";
}

/*
 * The event as one JSON text: the "audit {...}" log line and the batch's element (db_audit_insert_json)
 * are the same bytes, serialized once. NULL when out of memory.
 */
static char *
event_json(const struct db_audit *a)
{
	json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:i,s:s,s:s,s:s,s:s,s:b,s:I,s:f,s:f}", "principal",
			      or_empty(a->principal), "action", or_empty(a->action), "resource", or_empty(a->resource),
			      "outcome", or_empty(a->outcome), "status", a->status, "requestId", or_empty(a->request_id),
			      "clientAddress", or_empty(a->client_address), "clientCertificate",
			      or_empty(a->client_cert), "route", or_empty(a->route), "resourceCut", a->resource_cut,
			      "count", (json_int_t)(a->count > 0 ? a->count : 1), "time", a->time, "lastTime",
			      a->last_time > 0 ? a->last_time : a->time);
	char *text = j != NULL ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(16)) : NULL;

	json_decref(j);
	return text;
}

void
cmf_audit_log(const struct db_audit *a)
{
	char *text = event_json(a);

	cmf_info("audit %s", text != NULL ? text : "{\"error\":\"cannot format the audit event\"}");
	free(text);
}

/*
 * The client certificate as part of the merge key. A refused one's subject ("unverified: ...") is chosen
 * by the client, so it is left out: otherwise a new self-signed subject per handshake would be a new row
 * each time. The merged row keeps the first one's subject.
 */
static const char *
merge_cert(const struct db_audit *a)
{
	const char *c = or_empty(a->client_cert);

	return strncmp(c, "unverified: ", 12) == 0 ? "unverified" : c;
}

/* FNV-1a over the merge key's fields, each with its terminating NUL. */
static uint64_t
merge_hash(const struct db_audit *a)
{
	const char *parts[] = { or_empty(a->client_address), or_empty(a->principal), or_empty(a->action),
				or_empty(a->route),	     or_empty(a->outcome),   merge_cert(a) };
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		for (const char *p = parts[i];; p++) {
			h = (h ^ (unsigned char)*p) * 1099511628211ULL;
			if (*p == '\0')
				break;
		}
	return (h ^ (uint64_t)(unsigned)a->status) * 1099511628211ULL;
}

static bool
merge_same(const struct db_audit *x, const struct db_audit *y)
{
	return x->status == y->status && strcmp(x->client_address, or_empty(y->client_address)) == 0 &&
	       strcmp(x->principal, or_empty(y->principal)) == 0 && strcmp(x->action, or_empty(y->action)) == 0 &&
	       strcmp(x->route, or_empty(y->route)) == 0 && strcmp(x->outcome, or_empty(y->outcome)) == 0 &&
	       strcmp(merge_cert(x), merge_cert(y)) == 0;
}

/* Longest prefix of `s` of at most `max` bytes that ends on a UTF-8 character boundary. */
static size_t
utf8_cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--;
	return max;
}

/* A copy of `a` whose strings live in the event; NULL when out of memory. */
static struct ev *
ev_new(const struct db_audit *a)
{
	const char *src[] = { or_empty(a->principal),	   or_empty(a->action),	     or_empty(a->resource),
			      or_empty(a->outcome),	   or_empty(a->request_id),  or_empty(a->client_address),
			      or_empty(a->client_cert),	   or_empty(a->route) };
	size_t len[8], total = 0;
	const char *dst[8];
	struct ev *e;
	char *p;

	for (size_t i = 0; i < 8; i++) {
		len[i] = strlen(src[i]);
		if (i == 2)
			len[i] = utf8_cut(src[i], len[i], DB_AUDIT_RESOURCE_MAX);
		total += len[i] + 1;
	}
	e = calloc(1, sizeof(*e) + total);
	if (e == NULL)
		return NULL;
	p = e->text;
	for (size_t i = 0; i < 8; i++) {
		memcpy(p, src[i], len[i]);
		p[len[i]] = '\0';
		dst[i] = p;
		p += len[i] + 1;
	}
	e->a = *a;
	e->a.principal = dst[0];
	e->a.action = dst[1];
	e->a.resource = dst[2];
	e->a.outcome = dst[3];
	e->a.request_id = dst[4];
	e->a.client_address = dst[5];
	e->a.client_cert = dst[6];
	e->a.route = dst[7];
	e->a.resource_cut = a->resource_cut || len[2] < strlen(or_empty(a->resource));
	e->a.count = 1;
	if (e->a.time <= 0)
		e->a.time = real_seconds();
	e->a.last_time = e->a.time;
	return e;
}

/* Append to the ready list (called with q.mu held). */
static void
ready_push(struct ev *e)
{
	e->next = NULL;
	if (q.ready_tail != NULL)
		q.ready_tail->next = e;
	else
		q.ready_head = e;
	q.ready_tail = e;
	e->seq = ++q.readied;
	e->ready_ns = crypto_mono_ns();
	/* A writer is woken to arm its gathering timer, and again once a batch is worth committing. */
	if (++q.nready == 1 || q.nready == GATHER_MIN)
		pthread_cond_signal(&q.wake);
}

/* Close the oldest merge window: out of the merge table, onto the ready list (q.mu held). */
static void
window_close(void)
{
	struct ev *e = q.win_head, **pp = &q.buckets[e->hash % MERGE_BUCKETS];

	q.win_head = e->next;
	if (q.win_head == NULL)
		q.win_tail = NULL;
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	e->hnext = NULL;
	ready_push(e);
}

/* Close every window opened before `before_ns` (every one when `all`); q.mu held. */
static void
windows_close(long long before_ns, bool all)
{
	while (q.win_head != NULL && (all || q.win_head->opened_ns <= before_ns))
		window_close();
}

int
cmf_audit_submit(const struct db_audit *a, void (*done)(void *cls, bool ok), void *cls)
{
	struct ev *e = NULL;
	long long now = crypto_mono_ns();
	int ret = -1;

	pthread_mutex_lock(&q.mu);
	if (!q.running || q.stopping)
		goto out;
	if (done == NULL) {
		uint64_t h = merge_hash(a);

		for (e = q.buckets[h % MERGE_BUCKETS]; e != NULL; e = e->hnext) {
			if (e->hash == h && now - e->opened_ns < MERGE_WINDOW_NS && merge_same(&e->a, a)) {
				e->a.count++;
				e->a.last_time = real_seconds();
				cmf_metrics_add(CMF_M_AUDIT_EVENTS, 1);
				cmf_metrics_add(CMF_M_AUDIT_MERGED_EVENTS, 1);
				ret = 0;
				goto out;
			}
		}
	}
	if (q.queued >= q.capacity) {
		cmf_metrics_add(CMF_M_AUDIT_QUEUE_FULL, 1);
		goto out;
	}
	e = ev_new(a);
	if (e == NULL)
		goto out;
	q.queued++;
	cmf_metrics_add(CMF_M_AUDIT_EVENTS, 1);
	cmf_metrics_gauge_set(CMF_G_AUDIT_QUEUE_DEPTH, (double)q.queued);
	e->done = done;
	e->cls = cls;
	if (done != NULL) {
		ready_push(e);
	} else {
		/* A window stays open for a second: identical events in it cost a count, not a row. */
		e->hash = merge_hash(a);
		e->opened_ns = now;
		e->hnext = q.buckets[e->hash % MERGE_BUCKETS];
		q.buckets[e->hash % MERGE_BUCKETS] = e;
		if (q.win_tail != NULL) {
			q.win_tail->next = e;
		} else {
			q.win_head = e;
			pthread_cond_signal(&q.wake); /* a writer arms the timer that closes it */
		}
		q.win_tail = e;
	}
	ret = 0;
out:
	pthread_mutex_unlock(&q.mu);
	return ret;
}

struct sync_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool finished, ok;
};

static void
sync_done(void *cls, bool ok)
{
	struct sync_wait *w = cls;

	pthread_mutex_lock(&w->mu);
	w->finished = true;
	w->ok = ok;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

int
cmf_audit_commit(const struct db_audit *a)
{
	struct sync_wait w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false };

	if (cmf_audit_submit(a, sync_done, &w) != 0)
		return -1;
	pthread_mutex_lock(&w.mu);
	while (!w.finished)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	return w.ok ? 0 : -1;
}

/*
 * Whether every row readied up to `mark` is committed: none is still in the ready list (failed batches go
 * back to its front, so it is not always in order: scan it) and none is in a batch in flight. q.mu held.
 */
static bool
committed_through(uint64_t mark)
{
	for (struct ev *e = q.ready_head; e != NULL; e = e->next)
		if (e->seq <= mark)
			return false;
	for (size_t i = 0; i < AUDIT_WRITERS; i++)
		if (q.writers[i] != NULL && q.writers[i]->busy_min != 0 && q.writers[i]->busy_min <= mark)
			return false;
	return true;
}

int
cmf_audit_flush(int timeout_ms)
{
	struct timespec until = deadline_in((long long)timeout_ms * 1000000LL);
	uint64_t mark;
	int ret = 0;

	pthread_mutex_lock(&q.mu);
	windows_close(0, true);
	mark = q.readied;
	q.urgent++;
	pthread_cond_broadcast(&q.wake);
	while (q.running && !committed_through(mark) && ret == 0)
		ret = pthread_cond_timedwait(&q.progress, &q.mu, &until) == ETIMEDOUT ? -1 : 0;
	q.urgent--;
	if (!committed_through(mark))
		ret = -1;
	pthread_mutex_unlock(&q.mu);
	return ret;
}

int
cmf_audit_record(struct cmf_request *req, const struct db_audit *a)
{
	int r = cmf_audit_submit(a, NULL, NULL);

	req->audited = true;
	if (r != 0) {
		/* Not stored: the log line is the only trace, so it is written now, with the reason. */
		cmf_audit_log(a);
		cmf_error("audit event for request %s not stored: the audit queue is full or stopped", a->request_id);
	}
	return r;
}

/*
 * A failed batch: every event goes back to the front of the ready list, in order, to be stored once
 * PostgreSQL is back. A waiting event's response is refused (503), so its row must say so: it becomes a
 * failure answered 503, and its completion moves to `told` (run outside the lock). q.mu held.
 */
/*
 * A failed batch: every event goes back to the front of the ready list, in order, to be stored once
 * PostgreSQL is back. A waiting event's response is refused (503), so its row must say so: it becomes a
 * failure answered 503, and its completion moves to `told` — taken off the event here, under the lock,
 * since another writer may take and commit the requeued event as soon as the lock is released. q.mu held.
 */
static size_t
batch_requeue(struct ev **batch, size_t n, struct told *told)
{
	size_t nt = 0;

	for (size_t i = n; i-- > 0;) {
		struct ev *e = batch[i];

		if (e->done != NULL) {
			e->a.outcome = "failure";
			e->a.status = 503;
			e->logged = false; /* logged again: the event is no longer what was logged */
			free(e->json);
			e->json = NULL;
			told[nt++] = (struct told){ e->done, e->cls };
			e->done = NULL;
		}
		e->next = q.ready_head;
		q.ready_head = e;
		if (q.ready_tail == NULL)
			q.ready_tail = e;
		q.nready++;
	}
	return nt;
}

/* Run completions taken off their events (q.mu not held). */
static void
tell(const struct told *told, size_t n, bool ok)
{
	for (size_t i = 0; i < n; i++)
		told[i].done(told[i].cls, ok);
}

/*
 * Log (once) and store the writer's batch of `n` events (q.mu not held): each event's JSON text is made
 * once, written as its log line and joined into the array the batch statement expands.
 */
static int
batch_insert(struct writer *w, size_t n)
{
	size_t len = 2, at = 0;
	char *text;
	int r;

	/*
	 * A batch sent when the session was lost may have committed: its events are looked up (by first time
	 * and request id: unique per row) rather than stored twice.
	 */
	for (size_t i = 0; i < n; i++) {
		struct ev *e = w->batch[i];

		if (!e->maybe_stored)
			continue;
		if ((r = db_audit_stored(w->conn, e->a.time, e->a.request_id)) < 0)
			return r;
		e->maybe_stored = false;
		e->stored = r == 1;
	}

	for (size_t i = 0; i < n; i++) {
		struct ev *e = w->batch[i];

		if (e->json == NULL && (e->json = event_json(&e->a)) == NULL)
			return DB_ERR_ALLOC;
		if (!e->logged) {
			cmf_info("audit %s", e->json);
			e->logged = true;
		}
		if (!e->stored)
			len += strlen(e->json) + 1;
	}
	if (len == 2)
		return DB_OK; /* every event was found stored */
	if ((text = malloc(len + 1)) == NULL)
		return DB_ERR_ALLOC;
	text[at++] = '[';
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(w->batch[i]->json);

		if (w->batch[i]->stored)
			continue;
		if (at > 1)
			text[at++] = ',';
		memcpy(text + at, w->batch[i]->json, l);
		at += l;
	}
	text[at++] = ']';
	text[at] = '\0';
	r = db_audit_insert_json(w->conn, text);
	free(text);
	return r;
}

static void *
writer(void *arg)
{
	struct writer *w = arg;
	struct ev **batch = w->batch;
	struct told *told = w->told;
	long long retry_delay = 0, retry_at = 0;

	pthread_mutex_lock(&q.mu);
	for (;;) {
		long long now = crypto_mono_ns(), wait, t0;
		size_t n = 0, nt;
		int r;

		windows_close(now - MERGE_WINDOW_NS, q.stopping);
		if (q.abandon || (q.stopping && q.ready_head == NULL && q.win_head == NULL))
			break;
		if (q.ready_head != NULL && retry_at <= now && q.nready < GATHER_MIN && q.urgent == 0 && !q.stopping &&
		    now - q.ready_head->ready_ns < GATHER_NS) {
			struct timespec until = deadline_in(q.ready_head->ready_ns + GATHER_NS - now);

			pthread_cond_timedwait(&q.wake, &q.mu, &until);
			continue;
		}
		if (q.ready_head == NULL || retry_at > now) {
			wait = retry_at > now		? retry_at - now
			       : q.win_head != NULL ? q.win_head->opened_ns + MERGE_WINDOW_NS - now
						    : MERGE_WINDOW_NS;
			if (wait > 0) {
				struct timespec until = deadline_in(wait);

				pthread_cond_timedwait(&q.wake, &q.mu, &until);
			}
			continue;
		}
		w->busy_min = UINT64_MAX;
		while (q.ready_head != NULL && n < DB_AUDIT_BATCH_MAX) {
			batch[n++] = q.ready_head;
			if (q.ready_head->seq < w->busy_min)
				w->busy_min = q.ready_head->seq;
			q.ready_head = q.ready_head->next;
		}
		q.nready -= n;
		w->nbatch = n;
		if (q.ready_head == NULL)
			q.ready_tail = NULL;
		/* More than one batch's worth left: another writer can start on it now. */
		if (q.ready_head != NULL)
			pthread_cond_signal(&q.wake);
		pthread_mutex_unlock(&q.mu);
		t0 = crypto_mono_ns();
		r = batch_insert(w, n);
		pthread_mutex_lock(&q.mu);
		w->busy_min = 0;
		if (r == DB_OK) {
			cmf_metrics_audit_batch(n, (double)(crypto_mono_ns() - t0) / 1e9);
			retry_delay = retry_at = 0;
			q.queued -= n;
			cmf_metrics_gauge_set(CMF_G_AUDIT_QUEUE_DEPTH, (double)q.queued);
			/* Completions are taken under the lock: a stop past its deadline may answer them itself. */
			nt = 0;
			for (size_t i = 0; i < n; i++) {
				if (batch[i]->done != NULL)
					told[nt++] = (struct told){ batch[i]->done, batch[i]->cls };
				batch[i]->done = NULL;
			}
			pthread_cond_broadcast(&q.progress);
			pthread_mutex_unlock(&q.mu);
			tell(told, nt, true);
			for (size_t i = 0; i < n; i++) {
				free(batch[i]->json);
				free(batch[i]);
			}
			pthread_mutex_lock(&q.mu);
			continue;
		}
		cmf_error("audit trail: %zu event(s) not stored yet (%s); retrying", n, db_strerror(r));
		for (size_t i = 0; r == DB_ERR_OUTCOME_UNKNOWN && i < n; i++)
			batch[i]->maybe_stored = true;
		cmf_metrics_add(CMF_M_AUDIT_COMMIT_FAILURES, 1);
		nt = batch_requeue(batch, n, told);
		retry_delay = retry_delay == 0 ? 50000000LL : retry_delay * 2;
		if (retry_delay > RETRY_MAX_NS)
			retry_delay = RETRY_MAX_NS;
		retry_at = crypto_mono_ns() + retry_delay;
		pthread_cond_broadcast(&q.progress);
		pthread_mutex_unlock(&q.mu);
		tell(told, nt, false);
		pthread_mutex_lock(&q.mu);
	}
	w->exited = true;
	pthread_cond_broadcast(&q.progress);
	pthread_mutex_unlock(&q.mu);
	return NULL;
}

static void
writers_free(void)
{
	for (size_t i = 0; i < AUDIT_WRITERS; i++) {
		if (q.writers[i] == NULL)
			continue;
		db_conn_close(q.writers[i]->conn);
		free(q.writers[i]);
		q.writers[i] = NULL;
	}
}

static struct {
	pthread_mutex_t mu;
	pthread_cond_t wake;
	pthread_t thread;
	bool started, stopping;
	int days;
	struct db_conn *conn;
} pruner = { .mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

/* Sleep up to `ns` unless told to stop: whether to go on. pruner.mu not held. */
static bool
pruner_sleep(long long ns)
{
	struct timespec until = deadline_in(ns);
	bool go_on;

	pthread_mutex_lock(&pruner.mu);
	while (!pruner.stopping && pthread_cond_timedwait(&pruner.wake, &pruner.mu, &until) != ETIMEDOUT)
		;
	go_on = !pruner.stopping;
	pthread_mutex_unlock(&pruner.mu);
	return go_on;
}

/* One pass: batches until none is full, the pass's deadline, a failure or a stop. When to pass again. */
static long long
prune_pass(void)
{
	long long start = crypto_mono_ns(), total = 0, n = PRUNE_BATCH, next = PRUNE_INTERVAL_NS;
	int r = DB_OK;

	while (n == PRUNE_BATCH) {
		if ((r = db_audit_prune(pruner.conn, pruner.days, PRUNE_BATCH, &n)) != DB_OK)
			break;
		total += n;
		if (n == PRUNE_BATCH && crypto_mono_ns() - start >= PRUNE_PASS_NS) {
			next = PRUNE_PASS_NS;
			break;
		}
		if (n == PRUNE_BATCH && !pruner_sleep(PRUNE_PAUSE_NS))
			break;
	}
	if (r != DB_OK) {
		next = PRUNE_PASS_NS;
		cmf_error("audit retention: deleted %lld event(s) older than %d days, then stopped: %s; trying again "
			  "in %lld s", total, pruner.days, db_strerror(r), next / 1000000000LL);
	} else {
		cmf_info("audit retention: deleted %lld event(s) older than %d days in %.1f s%s", total, pruner.days,
			 (double)(crypto_mono_ns() - start) / 1e9,
			 next == PRUNE_PASS_NS ? "; more remain, continuing after a pause" : "");
	}
	return next;
}

static void *
pruner_main(void *arg)
{
	long long next;

	(void)arg;
	do
		next = prune_pass();
	while (pruner_sleep(next));
	return NULL;
}

/* Start the retention job when audit.retentionDays is set. 0, or -1 (logged). */
static int
pruner_start(struct cmf_app *app)
{
	int r;

	pruner.days = app->cfg->audit_retention_days;
	pruner.stopping = false;
	if (pruner.days == 0)
		return 0;
	if (db_conn_open(app->cfg->database_url, cmf_app_db_password(), &pruner.conn) != DB_OK) {
		cmf_error("audit retention: out of memory");
		return -1;
	}
	if ((r = pthread_create(&pruner.thread, NULL, pruner_main, NULL)) != 0) {
		cmf_error("audit retention: cannot start its thread: %s", strerror(r));
		db_conn_close(pruner.conn);
		pruner.conn = NULL;
		return -1;
	}
	pruner.started = true;
	return 0;
}

/* Stop the retention job: it stops between batches; a batch in flight is bounded by the request deadline. */
static void
pruner_stop(void)
{
	if (!pruner.started)
		return;
	pthread_mutex_lock(&pruner.mu);
	pruner.stopping = true;
	pthread_cond_signal(&pruner.wake);
	pthread_mutex_unlock(&pruner.mu);
	pthread_join(pruner.thread, NULL);
	pruner.started = false;
	db_conn_close(pruner.conn);
	pruner.conn = NULL;
}

int
cmf_audit_start(struct cmf_app *app)
{
	size_t started = 0;
	int r = 0;

	for (size_t i = 0; i < AUDIT_WRITERS; i++) {
		q.writers[i] = calloc(1, sizeof(*q.writers[i]));
		if (q.writers[i] == NULL ||
		    db_conn_open(app->cfg->database_url, cmf_app_db_password(), &q.writers[i]->conn) == DB_ERR_ALLOC) {
			cmf_error("audit writer: out of memory");
			writers_free();
			return -1;
		}
	}
	pthread_mutex_lock(&q.mu);
	q.capacity = (size_t)app->cfg->audit_queue_capacity;
	q.running = true;
	q.stopping = q.abandon = false;
	pthread_mutex_unlock(&q.mu);
	for (size_t i = 0; i < AUDIT_WRITERS && r == 0; i++) {
		r = pthread_create(&q.writers[i]->thread, NULL, writer, q.writers[i]);
		q.writers[i]->started = r == 0;
		started += r == 0;
	}
	if (r != 0) {
		cmf_error("audit writer: cannot start its threads: %s", strerror(r));
		if (started > 0) {
			cmf_audit_stop(0);
			return -1;
		}
		pthread_mutex_lock(&q.mu);
		q.running = false;
		pthread_mutex_unlock(&q.mu);
		writers_free();
		return -1;
	}
	if (pruner_start(app) != 0) {
		cmf_audit_stop(0);
		return -1;
	}
	return 0;
}

/* A waiting event that will not be stored in time: its reply becomes 503, and so does its record. */
static void
ev_refused(struct ev *e)
{
	e->a.outcome = "failure";
	e->a.status = 503;
	e->logged = false;
}

void
cmf_audit_stop(int timeout_ms)
{
	struct timespec until = deadline_in((long long)timeout_ms * 1000000LL);
	static struct told told[DB_AUDIT_BATCH_MAX * AUDIT_WRITERS];
	size_t lost = 0, nt = 0;
	bool stuck = false;
	struct ev *e, *next;

	pruner_stop();
	pthread_mutex_lock(&q.mu);
	if (!q.running) {
		pthread_mutex_unlock(&q.mu);
		return;
	}
	q.stopping = true;
	pthread_cond_broadcast(&q.wake);
	while (q.queued > 0 && pthread_cond_timedwait(&q.progress, &q.mu, &until) != ETIMEDOUT)
		;
	q.abandon = q.queued > 0;
	/*
	 * Past the deadline a writer may still be inside its INSERT (a lock, a frozen server): its waiting
	 * replies are answered 503 now — their completions taken off the events under the lock, so the writer,
	 * should its INSERT return, calls none of them — since the process must not outlive
	 * server.drainSeconds nor stop its HTTP server with a connection still suspended.
	 */
	for (size_t i = 0; q.abandon && i < AUDIT_WRITERS; i++) {
		struct writer *w = q.writers[i];

		if (w == NULL || w->busy_min == 0)
			continue;
		for (size_t j = 0; j < w->nbatch; j++) {
			e = w->batch[j];
			if (e->done == NULL)
				continue;
			told[nt++] = (struct told){ e->done, e->cls };
			e->done = NULL;
			ev_refused(e);
			cmf_audit_log(&e->a);
		}
	}
	pthread_cond_broadcast(&q.wake);
	pthread_mutex_unlock(&q.mu);
	tell(told, nt, false);

	pthread_mutex_lock(&q.mu);
	for (size_t i = 0; i < AUDIT_WRITERS; i++) {
		struct writer *w = q.writers[i];
		struct timespec grace = deadline_in(200000000LL);

		if (w == NULL || !w->started)
			continue;
		/* A writer stuck in PostgreSQL is left behind (detached, never freed): the process is exiting. */
		while (q.abandon && !w->exited && pthread_cond_timedwait(&q.progress, &q.mu, &grace) != ETIMEDOUT)
			;
		if (q.abandon && !w->exited) {
			stuck = true;
			pthread_detach(w->thread);
			q.writers[i] = NULL;
			continue;
		}
		pthread_mutex_unlock(&q.mu);
		pthread_join(w->thread, NULL);
		pthread_mutex_lock(&q.mu);
	}
	q.running = false;
	windows_close(0, true);
	for (e = q.ready_head; e != NULL; e = next) {
		next = e->next;
		lost++;
		if (e->done != NULL)
			ev_refused(e);
		if (!e->logged)
			cmf_audit_log(&e->a);
		if (e->done != NULL) {
			pthread_mutex_unlock(&q.mu);
			e->done(e->cls, false);
			pthread_mutex_lock(&q.mu);
		}
		free(e->json);
		free(e);
	}
	q.ready_head = q.ready_tail = NULL;
	q.queued = q.nready = 0;
	pthread_cond_broadcast(&q.progress);
	pthread_mutex_unlock(&q.mu);
	if (lost > 0 || stuck)
		cmf_error("audit trail: %zu event row(s)%s could not be stored before stopping; each is in the log as "
			  "an \"audit\" line",
			  lost, stuck ? " and a batch blocked in PostgreSQL" : "");
	writers_free();
}
