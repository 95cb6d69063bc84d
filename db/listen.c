/* db listen: one session that LISTENs for change notifications and proves, by heartbeat, that it lives. */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/log.h"
#include "db/internal.h"

struct db_listener {
	PGconn *pg;
	bool beat_pending;
	long long beat_deadline_ns;
};

/* Wait for the socket until `deadline_ns`: 1 readable, 0 timed out, -1 error. */
static int
wait_socket(PGconn *pg, short events, long long deadline_ns)
{
	struct pollfd pfd = { PQsocket(pg), events, 0 };
	long long left = deadline_ns - crypto_mono_ns();
	int r;

	if (pfd.fd < 0)
		return -1;
	if (left < 0)
		left = 0;
	r = poll(&pfd, 1, (int)(left / 1000000LL));
	return r < 0 ? -1 : r;
}

/*
 * Run `sql` (no parameters, no result wanted) without ever blocking past `deadline_ns`: a frozen
 * server must not freeze the listener, which would then never notice that it is frozen.
 */
static int
exec_deadline(PGconn *pg, const char *sql, long long deadline_ns)
{
	PGresult *res;
	int ok = 1;

	if (PQsendQuery(pg, sql) != 1)
		return DB_ERR_UNAVAILABLE;
	while (PQflush(pg) == 1)
		if (wait_socket(pg, POLLOUT, deadline_ns) <= 0)
			return DB_ERR_UNAVAILABLE;
	for (;;) {
		while (PQisBusy(pg)) {
			if (wait_socket(pg, POLLIN, deadline_ns) <= 0 || PQconsumeInput(pg) != 1)
				return DB_ERR_UNAVAILABLE;
		}
		res = PQgetResult(pg);
		if (res == NULL)
			break;
		if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
			ok = 0;
		PQclear(res);
	}
	return ok ? DB_OK : DB_ERR_UNAVAILABLE;
}

int
db_listen_open(const char *url, const char *password, int deadline_ms, struct db_listener **out)
{
	/* Its own application_name: operators (and tests) can find this session in pg_stat_activity. */
	const char *keys[] = { "connect_timeout", "application_name", "dbname", "password", NULL };
	const char *vals[] = { "2", "cmf-listen", url, password, NULL };
	long long deadline = crypto_mono_ns() + (long long)deadline_ms * 1000000LL;
	struct db_listener *l;
	int r = DB_ERR_UNAVAILABLE;

	*out = NULL;
	if (password == NULL)
		keys[3] = NULL;
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return DB_ERR_ALLOC;
	l->pg = PQconnectdbParams(keys, vals, 1);
	if (l->pg == NULL) {
		free(l);
		return DB_ERR_ALLOC;
	}
	if (PQstatus(l->pg) != CONNECTION_OK) {
		crypto_log_warn("change listener: database connection failed: %s", PQerrorMessage(l->pg));
		goto out;
	}
	if (PQsetnonblocking(l->pg, 1) != 0)
		goto out;
	r = exec_deadline(l->pg, "LISTEN cmf_change", deadline);
	if (r != DB_OK)
		crypto_log_warn("change listener: LISTEN failed: %s", PQerrorMessage(l->pg));
out:
	if (r != DB_OK) {
		db_listen_close(l);
		return r;
	}
	*out = l;
	return DB_OK;
}

void
db_listen_close(struct db_listener *l)
{
	if (l == NULL)
		return;
	/* PQfinish only sends a Terminate message and closes the socket: it cannot hang on a frozen server. */
	PQfinish(l->pg);
	free(l);
}

int
db_listen_heartbeat(struct db_listener *l, int deadline_ms)
{
	if (l->beat_pending)
		return DB_OK;
	if (PQsendQuery(l->pg, "SELECT 1") != 1 || PQflush(l->pg) < 0)
		return DB_ERR_UNAVAILABLE;
	l->beat_pending = true;
	l->beat_deadline_ns = crypto_mono_ns() + (long long)deadline_ms * 1000000LL;
	return DB_OK;
}

int
db_listen_poll(struct db_listener *l, int timeout_ms, void (*on_notify)(void *cls, const char *table), void *cls,
	       bool *beat)
{
	long long now = crypto_mono_ns(), until = now + (long long)timeout_ms * 1000000LL;
	PGnotify *n;
	int w;

	*beat = false;
	if (l->beat_pending && l->beat_deadline_ns < until)
		until = l->beat_deadline_ns;
	/* A heartbeat not fully sent yet (a full socket buffer) is pushed on while waiting. */
	if (PQflush(l->pg) < 0)
		return DB_ERR_UNAVAILABLE;
	w = wait_socket(l->pg, POLLIN, until);
	if (w < 0 || (w > 0 && PQconsumeInput(l->pg) != 1)) {
		crypto_log_warn("change listener: connection lost: %s", PQerrorMessage(l->pg));
		return DB_ERR_UNAVAILABLE;
	}
	while (l->beat_pending && !PQisBusy(l->pg)) {
		PGresult *res = PQgetResult(l->pg);

		if (res == NULL) {
			l->beat_pending = false;
			*beat = true;
			break;
		}
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			crypto_log_warn("change listener: heartbeat failed: %s", PQerrorMessage(l->pg));
			PQclear(res);
			return DB_ERR_UNAVAILABLE;
		}
		PQclear(res);
	}
	while ((n = PQnotifies(l->pg)) != NULL) {
		on_notify(cls, n->extra);
		PQfreemem(n);
	}
	if (l->beat_pending && crypto_mono_ns() >= l->beat_deadline_ns) {
		crypto_log_warn("change listener: no heartbeat answer within its deadline");
		return DB_ERR_UNAVAILABLE;
	}
	if (PQstatus(l->pg) != CONNECTION_OK)
		return DB_ERR_UNAVAILABLE;
	return DB_OK;
}
