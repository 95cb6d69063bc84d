/* db connections: libpq connect/reconnect, lazily prepared statements, and the one transaction runner. */
#include <errno.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/crypto.h"
#include "crypto/log.h"
#include "db/internal.h"

/*
 * Attempts for one transaction: serialization failures under light contention clear within a few
 * retries; past this the caller gets DB_ERR_BUSY (503) rather than an unbounded wait.
 */
#define DB_TX_MAX_ATTEMPTS 8

/* database.requestTimeoutSeconds in ns: how long one call (db_tx_run) may wait for PostgreSQL. */
static long long request_timeout_ns = 5 * 1000000000LL;

void
db_set_request_timeout(int seconds)
{
	request_timeout_ns = (long long)seconds * 1000000000LL;
}

/*
 * What this process last saw of PostgreSQL (db_health): the time of the last call it answered and of
 * the last call that found it unreachable or past the deadline. Written by every call, read by /readyz.
 */
static _Atomic long long health_answered_ns, health_unavailable_ns;

void
db_health(long long *answered_ns, long long *unavailable_ns)
{
	*answered_ns = health_answered_ns;
	*unavailable_ns = health_unavailable_ns;
}

/* Record a call's outcome for db_health; returns r. */
static int
health_note(int r)
{
	if (r == DB_ERR_UNAVAILABLE || r == DB_ERR_OUTCOME_UNKNOWN)
		health_unavailable_ns = crypto_mono_ns();
	else if (r != DB_ERR_ALLOC)
		health_answered_ns = crypto_mono_ns();
	return r;
}

/* Whether PostgreSQL answers (db_ping, the readiness check). */
static const struct db_statement st_ping = { "ping", "SELECT 1", 0 };

const char *
db_strerror(int err)
{
	switch (err) {
	case DB_OK:
		return "success";
	case DB_ERR_INTERNAL:
		return "internal database error";
	case DB_ERR_ALLOC:
		return "out of memory";
	case DB_ERR_UNAVAILABLE:
		return "database unavailable";
	case DB_ERR_CONFLICT:
		return "already exists";
	case DB_ERR_NOT_FOUND:
		return "not found";
	case DB_ERR_BUSY:
		return "database busy (concurrent updates), retry";
	case DB_ERR_MODE_MISMATCH:
		return "encryption mode differs from the database's";
	case DB_ERR_KEY_MISMATCH:
		return "encryption key differs from the database's";
	case DB_ERR_NOT_INITIALIZED:
		return "database not initialized";
	case DB_ERR_SCHEMA_NEWER:
		return "database schema is newer than this binary";
	case DB_ERR_CORRUPT:
		return "stored data failed to decrypt or parse";
	case DB_ERR_KEY_UNAVAILABLE:
		return "encryption key unavailable";
	case DB_ERR_NONCE_BUDGET:
		return "data key reached its encryption limit";
	case DB_ERR_TOO_LARGE:
		return "value too large to store";
	case DB_ERR_INVALID:
		return "invalid value";
	case DB_ERR_OUTCOME_UNKNOWN:
		return "connection lost during COMMIT: outcome unknown";
	case DB_ERR_UNMAPPED:
		return "connectionSecretId not mapped in the environment";
	case DB_ERR_INCONSISTENT:
		return "the database holds data but no encryption state";
	case DB_ERR_RETIRED:
		return "sealed under a retired data key";
	}
	return "unknown database error";
}

static void
wipe_str(char *s)
{
	if (s != NULL)
		crypto_freezero(s, strlen(s));
}

/* Server notices ("relation already exists, skipping") go to the debug log, not raw to stderr. */
static void
notice(void *arg, const char *message)
{
	(void)arg;
	crypto_log_debug("PostgreSQL: %s", message);
}

/* Connect (or reconnect) now. Statements are re-prepared lazily on the new session. */
static int
conn_connect(struct db_conn *c)
{
	/*
	 * connect_timeout 5 s: a request waiting on an unreachable server fails fast with 503 instead of
	 * holding a worker thread for libpq's default of forever.
	 */
	const char *keys[] = { "connect_timeout", "application_name", "dbname", "password", NULL };
	char timeout[24];
	const char *vals[] = { timeout, "cmf", c->url, c->password, NULL };

	/* Never longer than a call may wait (database.requestTimeoutSeconds), and at most 5 s. */
	snprintf(timeout, sizeof(timeout), "%lld",
		 request_timeout_ns / 1000000000LL < 5 ? request_timeout_ns / 1000000000LL : 5);

	if (c->password == NULL)
		keys[3] = NULL;
	long long started = crypto_mono_ns();

	if (c->pg != NULL)
		PQfinish(c->pg);
	c->nprepared_stmts = 0;
	c->pg = PQconnectdbParams(keys, vals, 1);
	if (c->pg == NULL)
		return DB_ERR_ALLOC;
	PQsetNoticeProcessor(c->pg, notice, NULL);
	if (PQstatus(c->pg) != CONNECTION_OK) {
		/* libpq's message names host/port and the reason; it never contains the password. */
		crypto_log_warn("database connection failed: %s", PQerrorMessage(c->pg));
		/* Only an attempt that waited (a server that does not answer) is not repeated at once. */
		c->connect_failed_ns = crypto_mono_ns() - started >= 500000000LL ? crypto_mono_ns() : 0;
		return DB_ERR_UNAVAILABLE;
	}
	c->connect_failed_ns = 0;
	/* Non-blocking: every wait for PostgreSQL is a poll() bounded by the call's deadline. */
	if (PQsetnonblocking(c->pg, 1) != 0) {
		crypto_log_warn("database connection: cannot make it non-blocking: %s", PQerrorMessage(c->pg));
		return DB_ERR_UNAVAILABLE;
	}
	return DB_OK;
}

int
db_conn_open(const char *url, const char *password, struct db_conn **out)
{
	struct db_conn *c = NULL;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return DB_ERR_ALLOC;
	c->url = strdup(url != NULL ? url : "");
	c->password = password != NULL ? strdup(password) : NULL;
	if (c->url == NULL || (password != NULL && c->password == NULL)) {
		db_conn_close(c);
		return DB_ERR_ALLOC;
	}
	/*
	 * Connected by the first call, within that call's deadline: a thread that opens its handle to answer
	 * from memory (a 304 while PostgreSQL is frozen) never waits on a connect.
	 */
	*out = c;
	return DB_OK;
}

void
db_conn_close(struct db_conn *c)
{
	if (c == NULL)
		return;
	if (c->pg != NULL)
		PQfinish(c->pg);
	wipe_str(c->url);
	wipe_str(c->password);
	free(c);
}

/* Reconnect when the session is gone; 0 when usable. */
static int
conn_ensure(struct db_conn *c)
{
	if (c->pg != NULL && PQstatus(c->pg) == CONNECTION_OK)
		return DB_OK;
	/*
	 * An attempt timed out a moment ago (opening the handle, just before this call): answer at once rather
	 * than wait out a second connect timeout. A refused attempt is retried (the server may be back).
	 */
	if (c->connect_failed_ns != 0 && crypto_mono_ns() - c->connect_failed_ns < 100000000LL)
		return DB_ERR_UNAVAILABLE;
	return conn_connect(c);
}

/* Map a failed result to a DB_ERR_* code, logging what PostgreSQL said (never the parameters). */
static int
result_error(struct db_conn *c, const char *what, PGresult *res)
{
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	if (msg == NULL)
		msg = PQerrorMessage(c->pg);
	if (state == NULL || PQstatus(c->pg) != CONNECTION_OK || strncmp(state, "08", 2) == 0) {
		crypto_log_warn("%s: database connection lost: %s", what, msg);
		return DB_ERR_UNAVAILABLE;
	}
	if (strcmp(state, "23505") == 0) {
		crypto_log_debug("%s: unique violation", what);
		return DB_ERR_CONFLICT;
	}
	/* A row still referenced (ON DELETE RESTRICT): the stores check first; this is the backstop. */
	if (strcmp(state, "23503") == 0) {
		crypto_log_warn("%s: foreign key violation: %s", what, msg);
		return DB_ERR_CONFLICT;
	}
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0) {
		crypto_log_debug("%s: SQLSTATE %s, will retry", what, state);
		return DB_ERR_BUSY;
	}
	/* Class 22, data exception: a value the client gave (e.g. a time filter) that PostgreSQL refused. */
	if (strncmp(state, "22", 2) == 0) {
		crypto_log_debug("%s: SQLSTATE %s (invalid value)", what, state);
		return DB_ERR_INVALID;
	}
	/* 57P01..57P03: the server is shutting down or starting: treat as unavailable, not a bug. */
	if (strncmp(state, "57P", 3) == 0) {
		crypto_log_warn("%s: database unavailable (SQLSTATE %s): %s", what, state, msg);
		return DB_ERR_UNAVAILABLE;
	}
	crypto_log_error("%s: SQLSTATE %s: %s", what, state, msg);
	return DB_ERR_INTERNAL;
}

/*
 * The session missed its deadline (a frozen server, a partition): it is closed, never waited on again
 * (libpq's PQcancel would itself block on such a server), and reopened by the next call.
 */
static void
deadline_missed(struct db_conn *c, const char *what)
{
	crypto_log_warn("%s: no answer from PostgreSQL within %lld s: the connection is closed", what,
			request_timeout_ns / 1000000000LL);
	PQfinish(c->pg);
	c->pg = NULL;
	c->nprepared_stmts = 0;
	c->deadline_missed = true;
}

/* Wait for the socket until the call's deadline: 1 ready, 0 deadline passed, -1 error. */
static int
wait_socket(struct db_conn *c, short events)
{
	struct pollfd pfd = { PQsocket(c->pg), events, 0 };
	long long left = c->deadline_ns - crypto_mono_ns();
	int r;

	if (pfd.fd < 0)
		return -1;
	do
		r = poll(&pfd, 1, left > 0 ? (int)((left + 999999) / 1000000) : 0);
	while (r < 0 && errno == EINTR);
	return r;
}

/*
 * Finish what was just sent (Send* accepted it): flush, then collect results until the end, never past
 * the deadline. Returns the first failed result, else the last one (caller clears); NULL with
 * *missed when the deadline passed (the session is then closed), NULL without when the session broke.
 */
static PGresult *
await_results(struct db_conn *c, const char *what, bool *missed)
{
	PGresult *keep = NULL, *r;
	int f;

	*missed = false;
	while ((f = PQflush(c->pg)) == 1) {
		if (wait_socket(c, POLLOUT) == 0)
			goto missed;
	}
	if (f < 0)
		return NULL;
	for (;;) {
		while (PQisBusy(c->pg)) {
			int w = wait_socket(c, POLLIN);

			if (w == 0)
				goto missed;
			if (w < 0 || PQconsumeInput(c->pg) != 1)
				break; /* PQgetResult now reports the broken session */
		}
		r = PQgetResult(c->pg);
		if (r == NULL)
			return keep;
		/* The first failure is what the caller needs; later results only follow it. */
		if (keep != NULL && PQresultStatus(keep) != PGRES_COMMAND_OK && PQresultStatus(keep) != PGRES_TUPLES_OK) {
			PQclear(r);
			continue;
		}
		PQclear(keep);
		keep = r;
		if (PQstatus(c->pg) == CONNECTION_BAD)
			return keep;
	}
missed:
	PQclear(keep);
	*missed = true;
	deadline_missed(c, what);
	return NULL;
}

/* Prepare `name` on this session unless *prepared says it is; sets *prepared. */
static int
prepare_once(struct db_conn *c, const char *name, const char *sql, int nparams, bool *prepared)
{
	PGresult *r;
	int rc;

	if (*prepared)
		return DB_OK;
	bool missed;

	r = PQsendPrepare(c->pg, name, sql, nparams, NULL) == 1 ? await_results(c, name, &missed) : NULL;
	if (r == NULL && c->pg == NULL)
		return DB_ERR_UNAVAILABLE;
	if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
		rc = result_error(c, name, r);
		PQclear(r);
		return rc;
	}
	PQclear(r);
	*prepared = true;
	return DB_OK;
}

/* The most parameters one statement takes (the audit trail's single insert has 11). */
#define DB_MAX_PARAMS 16

/* Execute the prepared statement `name` (text `sql`); the mapping of errors is result_error's. */
static int
exec_prepared(struct db_conn *c, const char *name, const char *sql, const struct db_param *params, int nparams,
	      PGresult **res)
{
	/* No statement takes more than DB_MAX_PARAMS parameters; the arrays are sized for that. */
	const char *values[DB_MAX_PARAMS];
	int lengths[DB_MAX_PARAMS], formats[DB_MAX_PARAMS];
	bool missed;
	PGresult *r;
	int rc;

	*res = NULL;
	if (nparams > DB_MAX_PARAMS) {
		crypto_log_error("%s: statement %s has %d parameters; raise DB_MAX_PARAMS", __func__, name, nparams);
		return DB_ERR_INTERNAL;
	}
	for (int i = 0; i < nparams; i++) {
		values[i] = params[i].value;
		lengths[i] = params[i].binary ? params[i].len : 0;
		formats[i] = params[i].binary ? 1 : 0;
	}
	/* Counted before sending: once a write has left, its outcome is unknown if the connection drops. */
	if (strncmp(sql, "SELECT ", 7) != 0)
		c->writes_sent++;
	r = PQsendQueryPrepared(c->pg, name, nparams, values, lengths, formats, 0) == 1 ? await_results(c, name, &missed)
											  : NULL;
	if (r == NULL && c->pg == NULL)
		return DB_ERR_UNAVAILABLE;
	if (r == NULL ||
	    (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)) {
		rc = result_error(c, name, r);
		PQclear(r);
		return rc;
	}
	*res = r;
	return DB_OK;
}

int
db_exec_stmt(struct db_conn *c, const struct db_statement *st, const struct db_param *params, int nparams,
	     PGresult **res)
{
	bool prepared = false, was_prepared;
	int rc;

	*res = NULL;
	if (nparams != st->nparams)
		return DB_ERR_INTERNAL;
	for (size_t i = 0; i < c->nprepared_stmts && !prepared; i++)
		prepared = c->prepared_stmts[i] == st;
	was_prepared = prepared;
	if (!prepared && c->nprepared_stmts == DB_MAX_MODULE_STMTS) {
		crypto_log_error("%s: more than %d module statements; raise DB_MAX_MODULE_STMTS", __func__, DB_MAX_MODULE_STMTS);
		return DB_ERR_INTERNAL;
	}
	rc = prepare_once(c, st->name, st->sql, nparams, &prepared);
	if (rc != DB_OK)
		return rc;
	if (!was_prepared)
		c->prepared_stmts[c->nprepared_stmts++] = st;
	return exec_prepared(c, st->name, st->sql, params, nparams, res);
}

int
db_exec_script(struct db_conn *c, const char *what, const char *sql)
{
	bool missed;
	PGresult *r = PQsendQuery(c->pg, sql) == 1 ? await_results(c, what, &missed) : NULL;
	int rc = DB_OK;

	if (r == NULL && c->pg == NULL)
		return DB_ERR_UNAVAILABLE;

	if (r == NULL || (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK))
		rc = result_error(c, what, r);
	PQclear(r);
	return rc;
}

static int
ping(struct db_conn *c)
{
	PGresult *res = NULL;
	int r;

	c->deadline_ns = crypto_mono_ns() + request_timeout_ns;
	c->deadline_missed = false;
	r = conn_ensure(c);
	if (r != DB_OK)
		return r;
	r = db_exec_stmt(c, &st_ping, NULL, 0, &res);
	PQclear(res);
	/* A session killed by a server restart shows up only on use: reconnect once and ask again. */
	if (r == DB_ERR_UNAVAILABLE && !c->deadline_missed && conn_connect(c) == DB_OK) {
		r = db_exec_stmt(c, &st_ping, NULL, 0, &res);
		PQclear(res);
	}
	return r == DB_OK ? DB_OK : DB_ERR_UNAVAILABLE;
}

int
db_ping(struct db_conn *c)
{
	return c == NULL ? DB_ERR_ALLOC : health_note(ping(c));
}

static void
backoff(int attempt)
{
	/* 1, 2, 4 ... 64 ms, plus up to 1 ms jitter from the clock: contention clears quickly. */
	struct timespec now, ts;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ts.tv_sec = 0;
	ts.tv_nsec = (1L << (attempt < 6 ? attempt : 6)) * 1000000L + now.tv_nsec % 1000000L;
	nanosleep(&ts, NULL);
}

static int
tx_run(struct db_conn *c, enum db_tx_mode mode, db_tx_body body, void *cls)
{
	static const char *const begins[] = {
		[DB_TX_READ] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
		[DB_TX_WRITE] = "BEGIN ISOLATION LEVEL SERIALIZABLE",
		[DB_TX_LOCKED] = "BEGIN ISOLATION LEVEL READ COMMITTED",
		[DB_TX_LOCKED_READ] = "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY",
		[DB_TX_AUTOCOMMIT] = NULL,
	};
	const char *begin = begins[mode];
	int reconnects = 0;
	int r = DB_ERR_BUSY;

	/* A thread whose connection could not even be allocated: every store call fails the same way. */
	if (c == NULL)
		return DB_ERR_ALLOC;
	/* One deadline for the whole call: its statements, retries and reconnects included. */
	c->deadline_ns = crypto_mono_ns() + request_timeout_ns;
	c->deadline_missed = false;

	for (int attempt = 0; attempt < DB_TX_MAX_ATTEMPTS; attempt++) {
		r = conn_ensure(c);
		if (r != DB_OK)
			return r;
		if (mode == DB_TX_AUTOCOMMIT) {
			unsigned long writes = c->writes_sent;

			r = body(c, cls);
			/* Each statement committed as it ran: replay only if no write had been sent. */
			if (r == DB_ERR_UNAVAILABLE && c->writes_sent != writes)
				return DB_ERR_OUTCOME_UNKNOWN;
			if (r == DB_ERR_UNAVAILABLE && !c->deadline_missed && reconnects++ == 0 && conn_connect(c) == DB_OK)
				continue;
			if (r != DB_ERR_BUSY)
				return r;
			backoff(attempt);
			continue;
		}
		r = db_exec_script(c, "BEGIN", begin);
		if (r == DB_OK) {
			r = body(c, cls);
			if (r == DB_OK) {
				c->in_commit = 1;
				r = db_exec_script(c, "COMMIT", "COMMIT");
				c->in_commit = 0;
				if (r == DB_OK)
					return DB_OK;
				if (r == DB_ERR_UNAVAILABLE)
					return DB_ERR_OUTCOME_UNKNOWN; /* never replay a COMMIT that may have applied */
			} else if (PQstatus(c->pg) == CONNECTION_OK) {
				(void)db_exec_script(c, "ROLLBACK", "ROLLBACK");
			}
		}
		if (r == DB_ERR_UNAVAILABLE) {
			/* Lost before COMMIT: the server rolled back. Reconnect and replay once (not past the deadline). */
			if (c->deadline_missed || reconnects++ > 0 || conn_connect(c) != DB_OK)
				return DB_ERR_UNAVAILABLE;
			continue;
		}
		if (r != DB_ERR_BUSY)
			return r;
		backoff(attempt);
	}
	crypto_log_warn("transaction still conflicting after %d attempts", DB_TX_MAX_ATTEMPTS);
	return DB_ERR_BUSY;
}

int
db_tx_run_why(struct db_conn *c, enum db_tx_mode mode, db_tx_body body, void *cls, char *why, size_t whylen,
	      const char *what)
{
	int r;

	why[0] = '\0';
	r = db_tx_run(c, mode, body, cls);
	if (r != DB_OK && why[0] == '\0')
		snprintf(why, whylen, "%s: %s", what, db_strerror(r));
	return r;
}

int
db_tx_run(struct db_conn *c, enum db_tx_mode mode, db_tx_body body, void *cls)
{
	return c == NULL ? DB_ERR_ALLOC : health_note(tx_run(c, mode, body, cls));
}
