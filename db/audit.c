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
/* Newest first: the trail as a kind that is only listed (db_resource_list). */
DB_STATEMENT(audit, list, 6,
	     "SELECT json_build_object('id', id, 'time', " DB_ROWS_TS("time") ", 'principal', principal, 'action', "
	     "action, 'resource', resource, 'outcome', outcome, 'status', status, 'requestId', request_id, "
	     "'clientAddress', client_address, 'clientCertificate', client_cert)::text FROM cmf_audit_events "
	     AUDIT_WHERE " ORDER BY id DESC LIMIT $5::bigint OFFSET $6::bigint");
DB_STATEMENT(audit, count, 4, "SELECT count(*) FROM cmf_audit_events " AUDIT_WHERE);

const struct db_kind db_kind_audit_event = { .name = "audit event", .count = &audit_count, .list = &audit_list };

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
