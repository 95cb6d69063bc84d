/* db audit trail: events written inside the write they describe, or in batches; paged reads; retention. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/rows.h"

/* Filters are optional: a NULL parameter matches everything. */
#define AUDIT_WHERE                                                                               \
	"WHERE ($1::text IS NULL OR principal = $1) AND ($2::text IS NULL OR resource = $2) AND "  \
	"($3::timestamptz IS NULL OR time >= $3) AND ($4::timestamptz IS NULL OR time < $4)"

static const struct db_statement st_audit_insert = {
	"audit_insert",
	"INSERT INTO cmf_audit_events (principal, action, resource, outcome, status, request_id, client_address, "
	"client_cert, route, resource_cut, time) VALUES ($1, $2, $3, $4, $5::integer, $6, $7, $8, $9, $10::boolean, "
	"CASE WHEN $11::float8 > 0 THEN to_timestamp($11::float8) ELSE clock_timestamp() END)",
	11,
};
/*
 * A batch is one JSON array of events, expanded by PostgreSQL: one prepared statement for any batch size,
 * every value a parameter. Times are Unix seconds with microseconds (float8 holds them exactly enough).
 */
static const struct db_statement st_audit_batch = {
	"audit_batch",
	"INSERT INTO cmf_audit_events (time, last_time, count, principal, action, resource, resource_cut, outcome, "
	"status, request_id, client_address, client_cert, route) SELECT to_timestamp(e.time), "
	"CASE WHEN coalesce(e.count, 1) > 1 THEN to_timestamp(e.\"lastTime\") END, coalesce(e.count, 1), e.principal, "
	"e.action, e.resource, coalesce(e.\"resourceCut\", false), e.outcome, e.status, e.\"requestId\", "
	"coalesce(e.\"clientAddress\", ''), coalesce(e.\"clientCertificate\", ''), coalesce(e.route, '') "
	"FROM json_to_recordset($1::json) AS e(time float8, \"lastTime\" float8, count integer, principal text, "
	"action text, resource text, \"resourceCut\" boolean, outcome text, status integer, \"requestId\" text, "
	"\"clientAddress\" text, \"clientCertificate\" text, route text)",
	1,
};
/* Newest first: the trail as a kind that is only listed (db_resource_list). */
DB_STATEMENT(audit, list, 6,
	     "SELECT json_build_object('id', id, 'time', " DB_ROWS_TS("time") ", 'lastTime', "
	     DB_ROWS_TS("coalesce(last_time, time)") ", 'count', count, 'principal', principal, 'action', action, "
	     "'route', route, 'resource', resource, 'resourceCut', resource_cut, 'outcome', outcome, 'status', status, "
	     "'requestId', request_id, 'clientAddress', client_address, 'clientCertificate', client_cert)::text "
	     "FROM cmf_audit_events "
	     AUDIT_WHERE " ORDER BY time DESC, id DESC LIMIT $5::bigint OFFSET $6::bigint");
DB_STATEMENT(audit, count, 4, "SELECT count(*) FROM cmf_audit_events " AUDIT_WHERE);

const struct db_kind db_kind_audit_event = { .name = "audit event", .count = &audit_count, .list = &audit_list };

static const char *
or_empty(const char *s)
{
	return s != NULL ? s : "";
}

int
db_audit_insert_as(struct db_conn *c, const struct db_audit *base, const char *action, const char *outcome,
		   const char *resource)
{
	struct db_audit a;

	if (base == NULL)
		return DB_OK;
	a = *base;
	a.action = action;
	if (outcome != NULL)
		a.outcome = outcome;
	a.resource = resource;
	return db_audit_insert(c, &a);
}

int
db_audit_insert(struct db_conn *c, const struct db_audit *a)
{
	char status[16], t[32];
	PGresult *res = NULL;
	int r;

	if (a == NULL)
		return DB_OK;
	snprintf(status, sizeof(status), "%d", a->status);
	snprintf(t, sizeof(t), "%.6f", a->time);
	{
		struct db_param p[] = {
			{ or_empty(a->principal), 0, 0 },	  { or_empty(a->action), 0, 0 },
			{ or_empty(a->resource), 0, 0 },	  { or_empty(a->outcome), 0, 0 },
			{ status, 0, 0 },			  { or_empty(a->request_id), 0, 0 },
			{ or_empty(a->client_address), 0, 0 }, { or_empty(a->client_cert), 0, 0 },
			{ or_empty(a->route), 0, 0 },		  { a->resource_cut ? "true" : "false", 0, 0 },
			{ t, 0, 0 },
		};

		r = db_exec_stmt(c, &st_audit_insert, p, 11, &res);
	}
	PQclear(res);
	return r;
}

/* Whether the event (its first time and request id: unique per row) is stored; time in Unix seconds. */
static const struct db_statement st_audit_stored = {
	"audit_stored",
	"SELECT count(*) FROM cmf_audit_events WHERE time = to_timestamp($1::float8) AND request_id = $2",
	2,
};

struct stored_tx {
	const char *time, *request_id;
	int found;
};

static int
stored_body(struct db_conn *c, void *cls)
{
	struct stored_tx *t = cls;
	struct db_param p[] = { { t->time, 0, 0 }, { t->request_id, 0, 0 } };
	PGresult *res = NULL;
	int r = db_exec_stmt(c, &st_audit_stored, p, 2, &res);

	if (r == DB_OK)
		t->found = strcmp(PQgetvalue(res, 0, 0), "0") != 0;
	PQclear(res);
	return r;
}

int
db_audit_stored(struct db_conn *c, double time, const char *request_id)
{
	char ts[32];
	struct stored_tx t = { ts, request_id, 0 };
	int r;

	snprintf(ts, sizeof(ts), "%.6f", time);
	r = db_tx_run(c, DB_TX_AUTOCOMMIT, stored_body, &t);
	return r != DB_OK ? r : t.found;
}

struct batch_tx {
	const char *json;
};

static int
batch_body(struct db_conn *c, void *cls)
{
	struct batch_tx *t = cls;
	struct db_param p[] = { { t->json, 0, 0 } };
	PGresult *res = NULL;
	int r = db_exec_stmt(c, &st_audit_batch, p, 1, &res);

	PQclear(res);
	return r;
}

int
db_audit_insert_json(struct db_conn *c, const char *events)
{
	struct batch_tx t = { events };

	/* One statement: it commits by itself, one WAL flush for the whole batch. */
	return db_tx_run(c, DB_TX_AUTOCOMMIT, batch_body, &t);
}

/*
 * Oldest first through the (time, id) index; FOR UPDATE SKIP LOCKED leaves rows another replica's
 * pruner holds to it instead of waiting for its batch.
 */
DB_STATEMENT(audit, prune, 2,
	     "DELETE FROM cmf_audit_events WHERE id IN (SELECT id FROM cmf_audit_events WHERE time < now() - "
	     "make_interval(days => $1::integer) ORDER BY time, id LIMIT $2::bigint FOR UPDATE SKIP LOCKED)");
DB_STATEMENT(audit, oldest, 0, "SELECT " DB_ROWS_TS("min(time)") " FROM cmf_audit_events");

struct prune_tx {
	const char *days, *limit;
	long long deleted;
};

static int
prune_body(struct db_conn *c, void *cls)
{
	struct prune_tx *t = cls;
	struct db_param p[] = { { t->days, 0, 0 }, { t->limit, 0, 0 } };
	PGresult *res = NULL;
	int r = db_exec_stmt(c, &audit_prune, p, 2, &res);

	t->deleted = r == DB_OK ? strtoll(PQcmdTuples(res), NULL, 10) : 0;
	PQclear(res);
	return r;
}

int
db_audit_prune(struct db_conn *c, int days, long limit, long long *deleted)
{
	char d[16], l[24];
	struct prune_tx t = { d, l, 0 };
	int r;

	snprintf(d, sizeof(d), "%d", days);
	snprintf(l, sizeof(l), "%ld", limit);
	r = db_tx_run(c, DB_TX_AUTOCOMMIT, prune_body, &t);
	*deleted = r == DB_OK ? t.deleted : 0;
	return r;
}

struct oldest_tx {
	char *buf;
	size_t len;
};

static int
oldest_body(struct db_conn *c, void *cls)
{
	struct oldest_tx *t = cls;
	PGresult *res = NULL;
	int r = db_exec_stmt(c, &audit_oldest, NULL, 0, &res);

	t->buf[0] = '\0';
	if (r == DB_OK && !PQgetisnull(res, 0, 0))
		snprintf(t->buf, t->len, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return r;
}

int
db_audit_oldest(struct db_conn *c, char *buf, size_t len)
{
	struct oldest_tx t = { buf, len };

	return db_tx_run(c, DB_TX_AUTOCOMMIT, oldest_body, &t);
}
