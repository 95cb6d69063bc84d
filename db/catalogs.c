/* db catalogs: CMF KafkaCatalogs (Schema Registry connection) and their KafkaDatabases (Kafka connection). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/log.h"
#include "db/rows.h"

/*
 * Columns of a catalog or database row, in kafka_decode's order. environmentsWithAccess: the
 * environments with a secret mapping for the connectionSecretId (none without one).
 */
#define KAFKA_COLS(catalog, config, secret_id)                                                           \
	catalog ", k.name, k.uid::text, k.labels::text, k.annotations::text, " config "::text, " secret_id ", " \
	DB_ROWS_TS("k.created_at") ", " DB_ROWS_TS("k.updated_at") ", "                                        \
	"(SELECT coalesce(json_agg(m.environment ORDER BY m.environment), '[]') FROM cmf_secret_mappings m "  \
	"WHERE m.name = " secret_id ")::text"
#define CAT_COLS KAFKA_COLS("NULL::text", "k.sr_connection_config", "k.sr_connection_secret_id")
#define CAT_COLS_ALL CAT_COLS ", NULL::text"
#define DB_COLS KAFKA_COLS("k.catalog", "k.kafka_connection_config", "k.kafka_connection_secret_id") ", k.csfle_config"
enum {
	KC_CATALOG, KC_NAME, KC_UID, KC_LABELS, KC_ANNOTATIONS, KC_CONFIG, KC_SECRET_ID, KC_CREATED, KC_UPDATED, KC_ENVS,
	KC_CSFLE,
};

static const struct db_statement st_cat_lock = {
	"catalog_lock", "SELECT 1 FROM cmf_kafka_catalogs WHERE name = $1 FOR UPDATE", 1,
};
/* Held by database writes: the catalog cannot be deleted under them. */
static const struct db_statement st_cat_share = {
	"catalog_share", "SELECT 1 FROM cmf_kafka_catalogs WHERE name = $1 FOR KEY SHARE", 1,
};
/* Held by database writes naming a CsfleConfig: it cannot be deleted under them. */
static const struct db_statement st_csfle_share = {
	"database_csfle_share", "SELECT 1 FROM cmf_csfle_configs WHERE name = $1 FOR KEY SHARE", 1,
};
static const struct db_statement st_cat_exists = {
	"catalog_exists", "SELECT 1 FROM cmf_kafka_catalogs WHERE name = $1", 1,
};
static const struct db_statement st_cat_insert = {
	"catalog_insert",
	"INSERT INTO cmf_kafka_catalogs (name, uid, labels, annotations, sr_connection_config, sr_connection_secret_id, "
	"created_at, updated_at) VALUES ($1, $2::uuid, $3::jsonb, $4::jsonb, $5::jsonb, $6, now(), now())",
	6,
};
static const struct db_statement st_cat_update = {
	"catalog_update",
	"UPDATE cmf_kafka_catalogs SET labels = $2::jsonb, annotations = $3::jsonb, sr_connection_config = $4::jsonb, "
	"sr_connection_secret_id = $5, updated_at = now() WHERE name = $1",
	5,
};
static const struct db_statement st_cat_get = {
	"catalog_get", "SELECT " CAT_COLS_ALL " FROM cmf_kafka_catalogs k WHERE k.name = $1", 1,
};
static const struct db_statement st_cat_list = {
	"catalog_list", "SELECT " CAT_COLS_ALL " FROM cmf_kafka_catalogs k ORDER BY k.name LIMIT $1::bigint OFFSET $2::bigint",
	2,
};
static const struct db_statement st_cat_count = { "catalog_count", "SELECT count(*) FROM cmf_kafka_catalogs", 0 };
static const struct db_statement st_cat_delete = {
	"catalog_delete", "DELETE FROM cmf_kafka_catalogs WHERE name = $1", 1,
};
static const struct db_statement st_cat_databases = {
	"catalog_databases",
	"SELECT coalesce(json_agg(name ORDER BY name), '[]')::text FROM cmf_kafka_databases WHERE catalog = $1",
	1,
};

static const struct db_statement st_db_insert = {
	"database_insert",
	"INSERT INTO cmf_kafka_databases (catalog, name, uid, labels, annotations, kafka_connection_config, "
	"kafka_connection_secret_id, csfle_config, created_at, updated_at) "
	"VALUES ($1, $2, $3::uuid, $4::jsonb, $5::jsonb, $6::jsonb, $7, $8, now(), now())",
	8,
};
static const struct db_statement st_db_update = {
	"database_update",
	"UPDATE cmf_kafka_databases SET labels = $3::jsonb, annotations = $4::jsonb, kafka_connection_config = $5::jsonb, "
	"kafka_connection_secret_id = $6, csfle_config = $7, updated_at = now() WHERE catalog = $1 AND name = $2",
	7,
};
static const struct db_statement st_db_get = {
	"database_get", "SELECT " DB_COLS " FROM cmf_kafka_databases k WHERE k.catalog = $1 AND k.name = $2", 2,
};
static const struct db_statement st_db_list = {
	"database_list",
	"SELECT " DB_COLS " FROM cmf_kafka_databases k WHERE k.catalog = $1 ORDER BY k.name "
	"LIMIT $2::bigint OFFSET $3::bigint",
	3,
};
static const struct db_statement st_db_count = {
	"database_count", "SELECT count(*) FROM cmf_kafka_databases WHERE catalog = $1", 1,
};
static const struct db_statement st_db_delete = {
	"database_delete", "DELETE FROM cmf_kafka_databases WHERE catalog = $1 AND name = $2", 2,
};

void
db_kafka_free(struct db_kafka *k)
{
	if (k == NULL)
		return;
	free(k->catalog);
	free(k->name);
	free(k->connection_secret_id);
	free(k->csfle_config);
	json_decref(k->labels);
	json_decref(k->annotations);
	json_decref(k->connection_config);
	json_decref(k->environments_with_access);
	free(k);
}

static int
kafka_decode(PGresult *res, int row, void **out)
{
	struct db_kafka *k = calloc(1, sizeof(*k));
	const char *name = PQgetvalue(res, row, KC_NAME);
	int r;

	*out = NULL;
	if (k == NULL)
		return DB_ERR_ALLOC;
	snprintf(k->uid, sizeof(k->uid), "%s", PQgetvalue(res, row, KC_UID));
	snprintf(k->created, sizeof(k->created), "%s", PQgetvalue(res, row, KC_CREATED));
	snprintf(k->updated, sizeof(k->updated), "%s", PQgetvalue(res, row, KC_UPDATED));
	r = db_rows_str(res, row, KC_CATALOG, true, &k->catalog);
	if (r == DB_OK)
		r = db_rows_str(res, row, KC_NAME, false, &k->name);
	if (r == DB_OK)
		r = db_rows_str(res, row, KC_SECRET_ID, true, &k->connection_secret_id);
	if (r == DB_OK)
		r = db_rows_str(res, row, KC_CSFLE, true, &k->csfle_config);
	if (r == DB_OK)
		r = db_rows_json(res, row, KC_LABELS, true, name, &k->labels);
	if (r == DB_OK)
		r = db_rows_json(res, row, KC_ANNOTATIONS, true, name, &k->annotations);
	if (r == DB_OK)
		r = db_rows_json(res, row, KC_CONFIG, true, name, &k->connection_config);
	if (r == DB_OK)
		r = db_rows_json(res, row, KC_ENVS, false, name, &k->environments_with_access);
	if (r != DB_OK) {
		db_kafka_free(k);
		return r;
	}
	*out = k;
	return DB_OK;
}

static void
kafka_free(void *k)
{
	db_kafka_free(k);
}

/* Read one catalog (catalog NULL) or database inside the caller's transaction; DB_ERR_NOT_FOUND if absent. */
static int
kafka_read(struct db_conn *c, const char *catalog, const char *name, struct db_kafka **out)
{
	struct db_param cat[] = { { name, 0, 0 } }, db[] = { { catalog, 0, 0 }, { name, 0, 0 } };
	PGresult *res = NULL;
	void *k = NULL;
	int r;

	*out = NULL;
	if (catalog == NULL)
		r = db_exec_stmt(c, &st_cat_get, cat, 1, &res);
	else
		r = db_exec_stmt(c, &st_db_get, db, 2, &res);
	if (r == DB_OK)
		r = PQntuples(res) == 1 ? kafka_decode(res, 0, &k) : DB_ERR_NOT_FOUND;
	PQclear(res);
	*out = k;
	return r;
}

/* Move a page's items into a typed array (*items). */
static int
page_take(struct db_rows_page *pg, struct db_kafka ***items, size_t *n, long long *total)
{
	struct db_kafka **out = calloc(pg->n > 0 ? pg->n : 1, sizeof(*out));

	if (out == NULL) {
		for (size_t i = 0; i < pg->n; i++)
			kafka_free(pg->items[i]);
		free(pg->items);
		return DB_ERR_ALLOC;
	}
	for (size_t i = 0; i < pg->n; i++)
		out[i] = pg->items[i];
	free(pg->items);
	*items = out;
	*n = pg->n;
	*total = pg->total;
	return DB_OK;
}

/* Writes of both kinds: one transaction each, the audit event inside it. */
struct kafka_write_tx {
	bool create;
	const char *catalog; /* NULL: the catalog `name` itself */
	const char *name;
	const char *labels, *annotations, *config; /* JSON text */
	const char *secret_id;                     /* may be NULL (SQL NULL) */
	const char *csfle_config;                  /* database only; may be NULL */
	const struct db_audit *audit;
	struct db_kafka *result;
	enum db_missing missing;
};

static int
kafka_write_body(struct db_conn *c, void *cls)
{
	struct kafka_write_tx *t = cls;
	struct db_param cat[] = { { t->catalog, 0, 0 } }, csfle[] = { { t->csfle_config, 0, 0 } }, p[8];
	const struct db_statement *st;
	PGresult *res = NULL;
	char uid[37];
	int r, n = 0;

	db_kafka_free(t->result);
	t->result = NULL;
	t->missing = DB_MISSING_NONE;
	if (t->catalog != NULL) {
		r = db_rows_exists(c, &st_cat_share, cat, 1);
		if (r <= 0) {
			t->missing = DB_MISSING_PARENT;
			return r == 0 ? DB_ERR_NOT_FOUND : r;
		}
	}
	if (t->csfle_config != NULL) {
		r = db_rows_exists(c, &st_csfle_share, csfle, 1);
		if (r <= 0) {
			t->missing = DB_MISSING_REF;
			return r == 0 ? DB_ERR_NOT_FOUND : r;
		}
	}
	if (crypto_uuid4(uid) != CRYPTO_OK)
		return DB_ERR_INTERNAL;
	/* Parameters: [catalog,] name, [uid (insert),] labels, annotations, connection config, secret id[, csfle]. */
	if (t->catalog != NULL)
		p[n++] = (struct db_param){ t->catalog, 0, 0 };
	p[n++] = (struct db_param){ t->name, 0, 0 };
	if (t->create)
		p[n++] = (struct db_param){ uid, 0, 0 };
	p[n++] = (struct db_param){ t->labels, 0, 0 };
	p[n++] = (struct db_param){ t->annotations, 0, 0 };
	p[n++] = (struct db_param){ t->config, 0, 0 };
	p[n++] = (struct db_param){ t->secret_id, 0, 0 };
	if (t->catalog != NULL)
		p[n++] = (struct db_param){ t->csfle_config, 0, 0 };
	if (t->catalog == NULL)
		st = t->create ? &st_cat_insert : &st_cat_update;
	else
		st = t->create ? &st_db_insert : &st_db_update;
	r = db_exec_stmt(c, st, p, n, &res); /* 23505 → DB_ERR_CONFLICT: the name exists */
	if (r == DB_OK && !t->create && strcmp(PQcmdTuples(res), "1") != 0) {
		t->missing = DB_MISSING_SELF;
		r = DB_ERR_NOT_FOUND;
	}
	PQclear(res);
	if (r == DB_OK)
		r = kafka_read(c, t->catalog, t->name, &t->result);
	if (r == DB_OK)
		r = db_audit_insert(c, t->audit);
	return r;
}

static int
kafka_write(struct db_conn *c, bool create, const char *catalog, const char *name, json_t *labels,
	    json_t *annotations, json_t *config, const char *secret_id, const char *csfle_config,
	    const struct db_audit *audit, struct db_kafka **out, enum db_missing *missing)
{
	struct kafka_write_tx t = { create,	  catalog, name, NULL, NULL, NULL, secret_id, csfle_config,
				    audit,	  NULL,	   DB_MISSING_NONE };
	char *l = json_dumps(labels, JSON_COMPACT), *an = json_dumps(annotations, JSON_COMPACT);
	char *cf = json_dumps(config, JSON_COMPACT);
	int r = DB_ERR_ALLOC;

	*out = NULL;
	if (missing != NULL)
		*missing = DB_MISSING_NONE;
	if (l != NULL && an != NULL && cf != NULL) {
		t.labels = l;
		t.annotations = an;
		t.config = cf;
		r = db_tx_run(c, DB_TX_WRITE, kafka_write_body, &t);
	}
	free(l);
	free(an);
	free(cf);
	if (r != DB_OK) {
		db_kafka_free(t.result);
		if (r == DB_ERR_NOT_FOUND && missing != NULL)
			*missing = t.missing;
		return r;
	}
	*out = t.result;
	return DB_OK;
}

struct kafka_get_tx {
	const char *catalog, *name;
	struct db_kafka *result;
	enum db_missing missing;
};

static int
kafka_get_body(struct db_conn *c, void *cls)
{
	struct kafka_get_tx *t = cls;
	struct db_param cat[] = { { t->catalog, 0, 0 } };
	int r;

	db_kafka_free(t->result);
	t->result = NULL;
	t->missing = DB_MISSING_NONE;
	r = kafka_read(c, t->catalog, t->name, &t->result);
	if (r == DB_ERR_NOT_FOUND && t->catalog != NULL) {
		/* Say whether the catalog or only the database is missing. */
		r = db_rows_exists(c, &st_cat_exists, cat, 1);
		if (r >= 0) {
			t->missing = r == 0 ? DB_MISSING_PARENT : DB_MISSING_SELF;
			r = DB_ERR_NOT_FOUND;
		}
	}
	return r;
}

static int
kafka_get(struct db_conn *c, const char *catalog, const char *name, struct db_kafka **out, enum db_missing *missing)
{
	struct kafka_get_tx t = { catalog, name, NULL, DB_MISSING_NONE };
	int r;

	*out = NULL;
	if (missing != NULL)
		*missing = DB_MISSING_NONE;
	r = db_tx_run(c, DB_TX_READ, kafka_get_body, &t);
	if (r != DB_OK) {
		db_kafka_free(t.result);
		if (r == DB_ERR_NOT_FOUND && missing != NULL)
			*missing = t.missing;
		return r;
	}
	*out = t.result;
	return DB_OK;
}

/* ---- Catalogs -------------------------------------------------------------------------------------- */

int
db_kafka_catalog_create(struct db_conn *c, const char *name, json_t *labels, json_t *annotations,
			json_t *connection_config, const char *connection_secret_id, const struct db_audit *audit,
			struct db_kafka **out)
{
	return kafka_write(c, true, NULL, name, labels, annotations, connection_config, connection_secret_id, NULL, audit,
			   out, NULL);
}

int
db_kafka_catalog_update(struct db_conn *c, const char *name, json_t *labels, json_t *annotations,
			json_t *connection_config, const char *connection_secret_id, const struct db_audit *audit,
			struct db_kafka **out)
{
	return kafka_write(c, false, NULL, name, labels, annotations, connection_config, connection_secret_id, NULL, audit,
			   out, NULL);
}

int
db_kafka_catalog_get(struct db_conn *c, const char *name, struct db_kafka **out)
{
	return kafka_get(c, NULL, name, out, NULL);
}

int
db_kafka_catalog_list(struct db_conn *c, long long offset, int limit, struct db_kafka ***items, size_t *n,
		      long long *total)
{
	struct db_rows_page pg = { NULL, &st_cat_count, &st_cat_list, { NULL, NULL }, 0, offset, limit, kafka_decode,
				   kafka_free, NULL, 0, 0 };
	int r;

	*items = NULL;
	*n = 0;
	*total = 0;
	r = db_rows_page_read(c, &pg);
	return r != DB_OK ? r : page_take(&pg, items, n, total);
}

int
db_kafka_catalog_delete(struct db_conn *c, const char *name, const struct db_audit *audit, json_t **databases)
{
	static const struct db_rows_delete st = { &st_cat_lock, &st_cat_databases, &st_cat_delete };

	return db_rows_delete_unreferenced(c, &st, name, audit, databases);
}

/* ---- Databases ------------------------------------------------------------------------------------- */

int
db_kafka_database_create(struct db_conn *c, const char *catalog, const char *name, json_t *labels,
			 json_t *annotations, json_t *connection_config, const char *connection_secret_id,
			 const char *csfle_config, const struct db_audit *audit, struct db_kafka **out,
			 enum db_missing *missing)
{
	return kafka_write(c, true, catalog, name, labels, annotations, connection_config, connection_secret_id,
			   csfle_config, audit, out, missing);
}

int
db_kafka_database_update(struct db_conn *c, const char *catalog, const char *name, json_t *labels,
			 json_t *annotations, json_t *connection_config, const char *connection_secret_id,
			 const char *csfle_config, const struct db_audit *audit, struct db_kafka **out,
			 enum db_missing *missing)
{
	return kafka_write(c, false, catalog, name, labels, annotations, connection_config, connection_secret_id,
			   csfle_config, audit, out, missing);
}

int
db_kafka_database_get(struct db_conn *c, const char *catalog, const char *name, struct db_kafka **out,
		      enum db_missing *missing)
{
	return kafka_get(c, catalog, name, out, missing);
}

int
db_kafka_database_list(struct db_conn *c, const char *catalog, long long offset, int limit,
		       struct db_kafka ***items, size_t *n, long long *total)
{
	struct db_rows_page pg = { &st_cat_exists, &st_db_count, &st_db_list, { catalog, NULL }, 1, offset, limit,
				   kafka_decode, kafka_free, NULL, 0, 0 };
	int r;

	*items = NULL;
	*n = 0;
	*total = 0;
	r = db_rows_page_read(c, &pg);
	return r != DB_OK ? r : page_take(&pg, items, n, total);
}

struct db_delete_tx {
	const char *catalog, *name;
	const struct db_audit *audit;
	enum db_missing missing;
};

static int
db_delete_body(struct db_conn *c, void *cls)
{
	struct db_delete_tx *t = cls;
	struct db_param cat[] = { { t->catalog, 0, 0 } }, self[] = { { t->catalog, 0, 0 }, { t->name, 0, 0 } };
	PGresult *res = NULL;
	int r;

	t->missing = DB_MISSING_NONE;
	r = db_exec_stmt(c, &st_db_delete, self, 2, &res);
	if (r == DB_OK && strcmp(PQcmdTuples(res), "1") != 0) {
		/* Nothing deleted: say whether the catalog or only the database is missing. */
		r = db_rows_exists(c, &st_cat_exists, cat, 1);
		if (r >= 0) {
			t->missing = r == 0 ? DB_MISSING_PARENT : DB_MISSING_SELF;
			r = DB_ERR_NOT_FOUND;
		}
	}
	PQclear(res);
	if (r == DB_OK)
		r = db_audit_insert(c, t->audit);
	return r;
}

int
db_kafka_database_delete(struct db_conn *c, const char *catalog, const char *name, const struct db_audit *audit,
			 enum db_missing *missing)
{
	struct db_delete_tx t = { catalog, name, audit, DB_MISSING_NONE };
	int r;

	*missing = DB_MISSING_NONE;
	r = db_tx_run(c, DB_TX_WRITE, db_delete_body, &t);
	if (r == DB_ERR_NOT_FOUND)
		*missing = t.missing;
	return r;
}
