/* db rows: column decoding, existence checks and the paged read shared by environments and catalogs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/log.h"
#include "db/rows.h"

int
db_rows_json(PGresult *res, int row, int col, bool want_object, const char *what, json_t **out)
{
	json_error_t jerr;
	json_t *v;

	*out = NULL;
	v = json_loads(PQgetvalue(res, row, col), JSON_DECODE_ANY, &jerr);
	if (want_object ? !json_is_object(v) : !json_is_array(v)) {
		crypto_log_error("%s: %s: stored value is not a JSON %s", __func__, what, want_object ? "object" : "array");
		json_decref(v);
		return DB_ERR_CORRUPT;
	}
	*out = v;
	return DB_OK;
}

int
db_rows_str(PGresult *res, int row, int col, bool nullable, char **out)
{
	*out = NULL;
	if (nullable && PQgetisnull(res, row, col))
		return DB_OK;
	*out = strdup(PQgetvalue(res, row, col));
	return *out != NULL ? DB_OK : DB_ERR_ALLOC;
}

int
db_rows_exists(struct db_conn *c, const struct db_statement *st, const struct db_param *p, int n)
{
	PGresult *res = NULL;
	int r;

	r = db_exec_stmt(c, st, p, n, &res);
	if (r == DB_OK)
		r = PQntuples(res) > 0 ? 1 : 0;
	PQclear(res);
	return r;
}

static void
page_reset(struct db_rows_page *pg)
{
	for (size_t i = 0; i < pg->n; i++)
		pg->free_item(pg->items[i]);
	free(pg->items);
	pg->items = NULL;
	pg->n = 0;
	pg->total = 0;
}

static int
page_body(struct db_conn *c, void *cls)
{
	struct db_rows_page *pg = cls;
	char limit_s[24], offset_s[24];
	struct db_param p[4];
	PGresult *res = NULL;
	int r, rows, k = pg->nkeys;

	page_reset(pg);
	for (int i = 0; i < k; i++)
		p[i] = (struct db_param){ pg->keys[i], 0, 0 };
	if (pg->parent != NULL) {
		r = db_rows_exists(c, pg->parent, p, k);
		if (r <= 0)
			return r == 0 ? DB_ERR_NOT_FOUND : r;
	}
	r = db_exec_stmt(c, pg->count, p, k, &res);
	if (r != DB_OK)
		return r;
	pg->total = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	snprintf(limit_s, sizeof(limit_s), "%d", pg->limit);
	snprintf(offset_s, sizeof(offset_s), "%lld", pg->offset);
	p[k] = (struct db_param){ limit_s, 0, 0 };
	p[k + 1] = (struct db_param){ offset_s, 0, 0 };
	r = db_exec_stmt(c, pg->list, p, k + 2, &res);
	if (r != DB_OK)
		return r;
	rows = PQntuples(res);
	pg->items = calloc(rows > 0 ? (size_t)rows : 1, sizeof(*pg->items));
	if (pg->items == NULL) {
		r = DB_ERR_ALLOC;
		goto out;
	}
	for (int i = 0; i < rows; i++) {
		r = pg->decode(res, i, &pg->items[pg->n]);
		if (r != DB_OK)
			goto out;
		pg->n++;
	}
out:
	PQclear(res);
	return r;
}

int
db_rows_page_read(struct db_conn *c, struct db_rows_page *pg)
{
	int r;

	pg->items = NULL;
	pg->n = 0;
	pg->total = 0;
	if (pg->nkeys < 0 || pg->nkeys > 2)
		return DB_ERR_INTERNAL;
	r = db_tx_run(c, DB_TX_READ, page_body, pg);
	if (r != DB_OK)
		page_reset(pg);
	return r;
}

struct delete_tx {
	const struct db_rows_delete *st;
	const char *name;
	const struct db_audit *audit;
	json_t *users; /* on DB_ERR_CONFLICT */
};

static int
delete_body(struct db_conn *c, void *cls)
{
	struct delete_tx *t = cls;
	struct db_param p[] = { { t->name, 0, 0 } };
	PGresult *res = NULL;
	json_t *users = NULL;
	int r;

	json_decref(t->users);
	t->users = NULL;
	/* Hold the row first: a referrer being created waits for this transaction, then finds it gone. */
	r = db_rows_exists(c, t->st->lock, p, 1);
	if (r <= 0)
		return r == 0 ? DB_ERR_NOT_FOUND : r;
	r = db_exec_stmt(c, t->st->users, p, 1, &res);
	if (r == DB_OK)
		r = db_rows_json(res, 0, 0, false, t->name, &users);
	PQclear(res);
	if (r != DB_OK)
		return r;
	if (json_array_size(users) > 0) {
		t->users = users;
		return DB_ERR_CONFLICT;
	}
	json_decref(users);
	r = db_exec_stmt(c, t->st->del, p, 1, &res); /* the FK (RESTRICT) is the backstop: 23503 → CONFLICT */
	PQclear(res);
	if (r == DB_OK)
		r = db_audit_insert(c, t->audit);
	return r;
}

int
db_rows_delete_unreferenced(struct db_conn *c, const struct db_rows_delete *st, const char *name,
			    const struct db_audit *audit, json_t **users)
{
	struct delete_tx t = { st, name, audit, NULL };
	int r;

	if (users != NULL)
		*users = NULL;
	r = db_tx_run(c, DB_TX_WRITE, delete_body, &t);
	if (r == DB_ERR_CONFLICT && t.users == NULL)
		t.users = json_array(); /* the foreign key refused: a referrer created concurrently */
	if (r == DB_ERR_CONFLICT && users != NULL) {
		*users = t.users;
		t.users = NULL;
	}
	json_decref(t.users);
	return r;
}
