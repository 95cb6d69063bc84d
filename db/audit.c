/* db audit trail: events written inside the write they describe, or alone for refusals; paged reads. */
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
	"client_cert) VALUES ($1, $2, $3, $4, $5::integer, $6, $7, $8) RETURNING id, " DB_ROWS_TS("time"),
	8,
};
/* Newest first. */
static const struct db_statement st_audit_list = {
	"audit_list",
	"SELECT id, " DB_ROWS_TS("time") ", principal, action, resource, outcome, status, request_id, client_address, "
	"client_cert FROM cmf_audit_events " AUDIT_WHERE " ORDER BY id DESC LIMIT $5::bigint OFFSET $6::bigint",
	6,
};
static const struct db_statement st_audit_count = {
	"audit_count", "SELECT count(*) FROM cmf_audit_events " AUDIT_WHERE, 4,
};


static const char *
or_empty(const char *s)
{
	return s != NULL ? s : "";
}

int
db_audit_insert(struct db_conn *c, const struct db_audit *a)
{
	char status[16];
	PGresult *res = NULL;
	int r;

	if (a == NULL)
		return DB_OK;
	snprintf(status, sizeof(status), "%d", a->status);
	{
		struct db_param p[] = {
			{ or_empty(a->principal), 0, 0 },  { or_empty(a->action), 0, 0 },
			{ or_empty(a->resource), 0, 0 },   { or_empty(a->outcome), 0, 0 },
			{ status, 0, 0 },		   { or_empty(a->request_id), 0, 0 },
			{ or_empty(a->client_address), 0, 0 }, { or_empty(a->client_cert), 0, 0 },
		};

		r = db_exec_stmt(c, &st_audit_insert, p, 8, &res);
	}
	PQclear(res);
	return r;
}

static int
record_body(struct db_conn *c, void *cls)
{
	return db_audit_insert(c, cls);
}

int
db_audit_record(struct db_conn *c, const struct db_audit *a)
{
	/* One insert into an append-only table: it commits by itself. */
	return db_tx_run(c, DB_TX_AUTOCOMMIT, record_body, (void *)(uintptr_t)a);
}

struct list_tx {
	const struct db_audit_filter *f;
	long long offset;
	int limit;
	json_t *items;
	long long total;
};

static int
list_body(struct db_conn *c, void *cls)
{
	struct list_tx *t = cls;
	char limit_s[24], offset_s[24];
	struct db_param p[] = {
		{ t->f->principal, 0, 0 }, { t->f->resource, 0, 0 }, { t->f->since, 0, 0 },
		{ t->f->until, 0, 0 },	   { limit_s, 0, 0 },	       { offset_s, 0, 0 },
	};
	PGresult *res = NULL;
	int r;

	json_decref(t->items);
	t->items = NULL;
	snprintf(limit_s, sizeof(limit_s), "%d", t->limit);
	snprintf(offset_s, sizeof(offset_s), "%lld", t->offset);
	r = db_exec_stmt(c, &st_audit_count, p, 4, &res);
	if (r != DB_OK)
		return r;
	t->total = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	r = db_exec_stmt(c, &st_audit_list, p, 6, &res);
	if (r != DB_OK)
		return r;
	t->items = json_array();
	for (int i = 0; t->items != NULL && i < PQntuples(res); i++)
		json_array_append_new(
			t->items,
			json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:i,s:s,s:s,s:s}", "id",
				  (json_int_t)strtoll(PQgetvalue(res, i, 0), NULL, 10), "time", PQgetvalue(res, i, 1),
				  "principal", PQgetvalue(res, i, 2), "action", PQgetvalue(res, i, 3), "resource",
				  PQgetvalue(res, i, 4), "outcome", PQgetvalue(res, i, 5), "status",
				  atoi(PQgetvalue(res, i, 6)), "requestId", PQgetvalue(res, i, 7), "clientAddress",
				  PQgetvalue(res, i, 8), "clientCertificate", PQgetvalue(res, i, 9)));
	PQclear(res);
	return t->items != NULL ? DB_OK : DB_ERR_ALLOC;
}

int
db_audit_list(struct db_conn *c, const struct db_audit_filter *f, long long offset, int limit, json_t **items,
	      long long *total)
{
	struct list_tx t = { f, offset, limit, NULL, 0 };
	int r;

	*items = NULL;
	*total = 0;
	r = db_tx_run(c, DB_TX_READ, list_body, &t);
	if (r != DB_OK) {
		json_decref(t.items);
		return r;
	}
	*items = t.items;
	*total = t.total;
	return DB_OK;
}
