/* db csfle: CsfleConfigs, the CSFLE declarations KafkaDatabases name (spec checked by cmf/csfle/csfle.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/log.h"
#include "db/rows.h"

/*
 * Columns in csfle_decode's order; databases: "catalog/name" of every database naming the config;
 * environments: those mapping its credentialsSecretId (a job elsewhere gets 409 for the mapping).
 */
#define CSFLE_COLS                                                                                          \
	"f.name, f.uid::text, f.labels::text, f.annotations::text, f.spec::text, " DB_ROWS_TS("f.created_at") \
	", " DB_ROWS_TS("f.updated_at") ", "                                                                    \
	"(SELECT coalesce(json_agg(d.catalog || '/' || d.name ORDER BY d.catalog, d.name), '[]') "             \
	"FROM cmf_kafka_databases d WHERE d.csfle_config = f.name)::text, "                                   \
	"(SELECT coalesce(json_agg(m.environment ORDER BY m.environment), '[]') FROM cmf_secret_mappings m "  \
	"WHERE m.name = f.credentials_secret_id)::text"
enum { FC_NAME, FC_UID, FC_LABELS, FC_ANNOTATIONS, FC_SPEC, FC_CREATED, FC_UPDATED, FC_DATABASES, FC_ENVS };

static const struct db_statement st_insert = {
	"csfle_insert",
	"INSERT INTO cmf_csfle_configs (name, uid, labels, annotations, spec, credentials_secret_id, created_at, "
	"updated_at) VALUES ($1, $2::uuid, $3::jsonb, $4::jsonb, $5::jsonb, $6, now(), now())",
	6,
};
static const struct db_statement st_update = {
	"csfle_update",
	"UPDATE cmf_csfle_configs SET labels = $2::jsonb, annotations = $3::jsonb, spec = $4::jsonb, "
	"credentials_secret_id = $5, updated_at = now() WHERE name = $1",
	5,
};
static const struct db_statement st_get = {
	"csfle_get", "SELECT " CSFLE_COLS " FROM cmf_csfle_configs f WHERE f.name = $1", 1,
};
static const struct db_statement st_list = {
	"csfle_list", "SELECT " CSFLE_COLS " FROM cmf_csfle_configs f ORDER BY f.name LIMIT $1::bigint OFFSET $2::bigint",
	2,
};
static const struct db_statement st_count = { "csfle_count", "SELECT count(*) FROM cmf_csfle_configs", 0 };
static const struct db_statement st_lock = {
	"csfle_lock", "SELECT 1 FROM cmf_csfle_configs WHERE name = $1 FOR UPDATE", 1,
};
static const struct db_statement st_users = {
	"csfle_users",
	"SELECT coalesce(json_agg(catalog || '/' || name ORDER BY catalog, name), '[]')::text FROM cmf_kafka_databases "
	"WHERE csfle_config = $1",
	1,
};
static const struct db_statement st_delete = { "csfle_delete", "DELETE FROM cmf_csfle_configs WHERE name = $1", 1 };

void
db_csfle_free(struct db_csfle *f)
{
	if (f == NULL)
		return;
	free(f->name);
	json_decref(f->labels);
	json_decref(f->annotations);
	json_decref(f->spec);
	json_decref(f->databases);
	json_decref(f->environments_with_access);
	free(f);
}

static int
csfle_decode(PGresult *res, int row, void **out)
{
	struct db_csfle *f = calloc(1, sizeof(*f));
	const char *name = PQgetvalue(res, row, FC_NAME);
	int r;

	*out = NULL;
	if (f == NULL)
		return DB_ERR_ALLOC;
	snprintf(f->uid, sizeof(f->uid), "%s", PQgetvalue(res, row, FC_UID));
	snprintf(f->created, sizeof(f->created), "%s", PQgetvalue(res, row, FC_CREATED));
	snprintf(f->updated, sizeof(f->updated), "%s", PQgetvalue(res, row, FC_UPDATED));
	r = db_rows_str(res, row, FC_NAME, false, &f->name);
	if (r == DB_OK)
		r = db_rows_json(res, row, FC_LABELS, true, name, &f->labels);
	if (r == DB_OK)
		r = db_rows_json(res, row, FC_ANNOTATIONS, true, name, &f->annotations);
	if (r == DB_OK)
		r = db_rows_json(res, row, FC_SPEC, true, name, &f->spec);
	if (r == DB_OK)
		r = db_rows_json(res, row, FC_DATABASES, false, name, &f->databases);
	if (r == DB_OK)
		r = db_rows_json(res, row, FC_ENVS, false, name, &f->environments_with_access);
	if (r != DB_OK) {
		db_csfle_free(f);
		return r;
	}
	*out = f;
	return DB_OK;
}

static void
csfle_free_item(void *f)
{
	db_csfle_free(f);
}

static int
csfle_read(struct db_conn *c, const char *name, struct db_csfle **out)
{
	struct db_param p[] = { { name, 0, 0 } };
	PGresult *res = NULL;
	void *f = NULL;
	int r;

	*out = NULL;
	r = db_exec_stmt(c, &st_get, p, 1, &res);
	if (r == DB_OK)
		r = PQntuples(res) == 1 ? csfle_decode(res, 0, &f) : DB_ERR_NOT_FOUND;
	PQclear(res);
	*out = f;
	return r;
}

struct write_tx {
	bool create;
	const char *name, *labels, *annotations, *spec, *secret_id;
	const struct db_audit *audit;
	struct db_csfle *result;
};

static int
write_body(struct db_conn *c, void *cls)
{
	struct write_tx *t = cls;
	struct db_param p[6];
	PGresult *res = NULL;
	char uid[37];
	int r, n = 0;

	db_csfle_free(t->result);
	t->result = NULL;
	if (crypto_uuid4(uid) != CRYPTO_OK)
		return DB_ERR_INTERNAL;
	p[n++] = (struct db_param){ t->name, 0, 0 };
	if (t->create)
		p[n++] = (struct db_param){ uid, 0, 0 };
	p[n++] = (struct db_param){ t->labels, 0, 0 };
	p[n++] = (struct db_param){ t->annotations, 0, 0 };
	p[n++] = (struct db_param){ t->spec, 0, 0 };
	p[n++] = (struct db_param){ t->secret_id, 0, 0 };
	r = db_exec_stmt(c, t->create ? &st_insert : &st_update, p, n, &res); /* 23505 → DB_ERR_CONFLICT */
	if (r == DB_OK && !t->create && strcmp(PQcmdTuples(res), "1") != 0)
		r = DB_ERR_NOT_FOUND;
	PQclear(res);
	if (r == DB_OK)
		r = csfle_read(c, t->name, &t->result);
	if (r == DB_OK)
		r = db_audit_insert(c, t->audit);
	return r;
}

static int
csfle_write(struct db_conn *c, bool create, const char *name, json_t *labels, json_t *annotations, json_t *spec,
	    const struct db_audit *audit, struct db_csfle **out)
{
	struct write_tx t = { create, name, NULL, NULL, NULL, NULL, audit, NULL };
	char *l = json_dumps(labels, JSON_COMPACT), *an = json_dumps(annotations, JSON_COMPACT);
	char *sp = json_dumps(spec, JSON_COMPACT);
	int r = DB_ERR_ALLOC;

	*out = NULL;
	/* Kept beside the spec so the resolution joins the credentials' mapping by a plain column. */
	t.secret_id = json_string_value(json_object_get(json_object_get(spec, "kms"), "credentialsSecretId"));
	if (l != NULL && an != NULL && sp != NULL) {
		t.labels = l;
		t.annotations = an;
		t.spec = sp;
		r = db_tx_run(c, DB_TX_WRITE, write_body, &t);
	}
	free(l);
	free(an);
	free(sp);
	if (r != DB_OK) {
		db_csfle_free(t.result);
		return r;
	}
	*out = t.result;
	return DB_OK;
}

int
db_csfle_create(struct db_conn *c, const char *name, json_t *labels, json_t *annotations, json_t *spec,
		const struct db_audit *audit, struct db_csfle **out)
{
	return csfle_write(c, true, name, labels, annotations, spec, audit, out);
}

int
db_csfle_update(struct db_conn *c, const char *name, json_t *labels, json_t *annotations, json_t *spec,
		const struct db_audit *audit, struct db_csfle **out)
{
	return csfle_write(c, false, name, labels, annotations, spec, audit, out);
}

struct get_tx {
	const char *name;
	struct db_csfle *result;
};

static int
get_body(struct db_conn *c, void *cls)
{
	struct get_tx *t = cls;

	db_csfle_free(t->result);
	t->result = NULL;
	return csfle_read(c, t->name, &t->result);
}

int
db_csfle_get(struct db_conn *c, const char *name, struct db_csfle **out)
{
	struct get_tx t = { name, NULL };
	int r;

	*out = NULL;
	r = db_tx_run(c, DB_TX_READ, get_body, &t);
	if (r != DB_OK) {
		db_csfle_free(t.result);
		return r;
	}
	*out = t.result;
	return DB_OK;
}

int
db_csfle_list(struct db_conn *c, long long offset, int limit, struct db_csfle ***items, size_t *n, long long *total)
{
	struct db_rows_page pg = { NULL, &st_count, &st_list, { NULL, NULL }, 0, offset, limit, csfle_decode,
				   csfle_free_item, NULL, 0, 0 };
	struct db_csfle **out;
	int r;

	*items = NULL;
	*n = 0;
	*total = 0;
	r = db_rows_page_read(c, &pg);
	if (r != DB_OK)
		return r;
	out = calloc(pg.n > 0 ? pg.n : 1, sizeof(*out));
	for (size_t i = 0; i < pg.n; i++) {
		if (out != NULL)
			out[i] = pg.items[i];
		else
			db_csfle_free(pg.items[i]);
	}
	free(pg.items);
	if (out == NULL)
		return DB_ERR_ALLOC;
	*items = out;
	*n = pg.n;
	*total = pg.total;
	return DB_OK;
}

int
db_csfle_delete(struct db_conn *c, const char *name, const struct db_audit *audit, json_t **databases)
{
	static const struct db_rows_delete st = { &st_lock, &st_users, &st_delete };

	return db_rows_delete_unreferenced(c, &st, name, audit, databases);
}
