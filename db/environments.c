/* db environments: CMF Environments and their secret mappings (connectionSecretId → Secret, per environment). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/log.h"
#include "db/rows.h"

/* Columns of an environment row, in env_decode's order; `secrets` is gathered from its mappings. */
#define ENV_COLS                                                                                         \
	"e.name, e.uid::text, e.kubernetes_namespace, e.labels::text, e.annotations::text, e.defaults::text, " \
	DB_ROWS_TS("e.created_at") ", " DB_ROWS_TS("e.updated_at") ", "                                   \
	"(SELECT coalesce(json_object_agg(m.name, m.secret_name ORDER BY m.name), '{}') "                \
	"FROM cmf_secret_mappings m WHERE m.environment = e.name)::text"
enum { EC_NAME, EC_UID, EC_NAMESPACE, EC_LABELS, EC_ANNOTATIONS, EC_DEFAULTS, EC_CREATED, EC_UPDATED, EC_SECRETS };

/* Columns of a mapping row, in map_decode's order. */
#define MAP_COLS                                                                                         \
	"environment, name, uid::text, secret_name, labels::text, annotations::text, "                    \
	DB_ROWS_TS("created_at") ", " DB_ROWS_TS("updated_at")
enum { MC_ENV, MC_NAME, MC_UID, MC_SECRET, MC_LABELS, MC_ANNOTATIONS, MC_CREATED, MC_UPDATED };

static const struct db_statement st_env_lock = {
	"env_lock", "SELECT 1 FROM cmf_environments WHERE name = $1 FOR UPDATE", 1,
};
/* Held by mapping writes: the environment cannot be deleted under them, but may be updated. */
static const struct db_statement st_env_share = {
	"env_share", "SELECT 1 FROM cmf_environments WHERE name = $1 FOR KEY SHARE", 1,
};
static const struct db_statement st_env_exists = {
	"env_exists", "SELECT 1 FROM cmf_environments WHERE name = $1", 1,
};
static const struct db_statement st_env_insert = {
	"env_insert",
	"INSERT INTO cmf_environments (name, uid, kubernetes_namespace, labels, annotations, defaults, created_at, "
	"updated_at) VALUES ($1, $2::uuid, $3, $4::jsonb, $5::jsonb, $6::jsonb, now(), now())",
	6,
};
static const struct db_statement st_env_update = {
	"env_update",
	"UPDATE cmf_environments SET kubernetes_namespace = $2, labels = $3::jsonb, annotations = $4::jsonb, "
	"defaults = $5::jsonb, updated_at = now() WHERE name = $1",
	5,
};
static const struct db_statement st_env_get = {
	"env_get", "SELECT " ENV_COLS " FROM cmf_environments e WHERE e.name = $1", 1,
};
static const struct db_statement st_env_list = {
	"env_list", "SELECT " ENV_COLS " FROM cmf_environments e ORDER BY e.name LIMIT $1::bigint OFFSET $2::bigint", 2,
};
static const struct db_statement st_env_count = { "env_count", "SELECT count(*) FROM cmf_environments", 0 };
static const struct db_statement st_env_delete = { "env_delete", "DELETE FROM cmf_environments WHERE name = $1", 1 };

/* Held by mapping writes: the secret cannot be deleted under them (its delete takes FOR UPDATE first). */
static const struct db_statement st_secret_share = {
	"mapping_secret_share", "SELECT 1 FROM cmf_secrets WHERE name = $1 FOR KEY SHARE", 1,
};
static const struct db_statement st_map_insert = {
	"mapping_insert",
	"INSERT INTO cmf_secret_mappings (environment, name, uid, secret_name, labels, annotations, created_at, "
	"updated_at) VALUES ($1, $2, $3::uuid, $4, $5::jsonb, $6::jsonb, now(), now())",
	6,
};
static const struct db_statement st_map_update = {
	"mapping_update",
	"UPDATE cmf_secret_mappings SET secret_name = $3, labels = $4::jsonb, annotations = $5::jsonb, "
	"updated_at = now() WHERE environment = $1 AND name = $2",
	5,
};
static const struct db_statement st_map_lock = {
	"mapping_lock", "SELECT 1 FROM cmf_secret_mappings WHERE environment = $1 AND name = $2 FOR UPDATE", 2,
};
static const struct db_statement st_map_get = {
	"mapping_get", "SELECT " MAP_COLS " FROM cmf_secret_mappings WHERE environment = $1 AND name = $2", 2,
};
static const struct db_statement st_map_list = {
	"mapping_list",
	"SELECT " MAP_COLS " FROM cmf_secret_mappings WHERE environment = $1 ORDER BY name "
	"LIMIT $2::bigint OFFSET $3::bigint",
	3,
};
static const struct db_statement st_map_count = {
	"mapping_count", "SELECT count(*) FROM cmf_secret_mappings WHERE environment = $1", 1,
};
static const struct db_statement st_map_delete = {
	"mapping_delete", "DELETE FROM cmf_secret_mappings WHERE environment = $1 AND name = $2", 2,
};

/* ---- Environments ---------------------------------------------------------------------------------- */

void
db_environment_free(struct db_environment *e)
{
	if (e == NULL)
		return;
	free(e->name);
	free(e->kubernetes_namespace);
	json_decref(e->labels);
	json_decref(e->annotations);
	json_decref(e->defaults);
	json_decref(e->secrets);
	free(e);
}

static int
env_decode(PGresult *res, int row, void **out)
{
	struct db_environment *e = calloc(1, sizeof(*e));
	const char *name = PQgetvalue(res, row, EC_NAME);
	int r;

	*out = NULL;
	if (e == NULL)
		return DB_ERR_ALLOC;
	snprintf(e->uid, sizeof(e->uid), "%s", PQgetvalue(res, row, EC_UID));
	snprintf(e->created, sizeof(e->created), "%s", PQgetvalue(res, row, EC_CREATED));
	snprintf(e->updated, sizeof(e->updated), "%s", PQgetvalue(res, row, EC_UPDATED));
	r = db_rows_str(res, row, EC_NAME, false, &e->name);
	if (r == DB_OK)
		r = db_rows_str(res, row, EC_NAMESPACE, false, &e->kubernetes_namespace);
	if (r == DB_OK)
		r = db_rows_json(res, row, EC_LABELS, true, name, &e->labels);
	if (r == DB_OK)
		r = db_rows_json(res, row, EC_ANNOTATIONS, true, name, &e->annotations);
	if (r == DB_OK)
		r = db_rows_json(res, row, EC_DEFAULTS, true, name, &e->defaults);
	if (r == DB_OK)
		r = db_rows_json(res, row, EC_SECRETS, true, name, &e->secrets);
	if (r != DB_OK) {
		db_environment_free(e);
		return r;
	}
	*out = e;
	return DB_OK;
}

static void
env_free(void *e)
{
	db_environment_free(e);
}

/* Read environment `name` inside the caller's transaction into *out; DB_ERR_NOT_FOUND if absent. */
static int
env_read(struct db_conn *c, const char *name, struct db_environment **out)
{
	struct db_param p[] = { { name, 0, 0 } };
	PGresult *res = NULL;
	void *e = NULL;
	int r;

	*out = NULL;
	r = db_exec_stmt(c, &st_env_get, p, 1, &res);
	if (r == DB_OK)
		r = PQntuples(res) == 1 ? env_decode(res, 0, &e) : DB_ERR_NOT_FOUND;
	PQclear(res);
	*out = e;
	return r;
}

struct env_put_tx {
	const char *name, *ns;
	const char *labels, *annotations, *defaults; /* JSON text */
	const struct db_audit *audit;
	const char *update_action;
	struct db_environment *result;
	bool created;
};

static int
env_put_body(struct db_conn *c, void *cls)
{
	struct env_put_tx *t = cls;
	struct db_param key[] = { { t->name, 0, 0 } };
	struct db_audit a;
	PGresult *res = NULL;
	char uid[37];
	int r;

	db_environment_free(t->result);
	t->result = NULL;
	/* Lock-or-insert: under SERIALIZABLE a concurrent insert of the same name is a 40001 (retried). */
	r = db_rows_exists(c, &st_env_lock, key, 1);
	if (r < 0)
		return r;
	t->created = r == 0;
	if (t->created) {
		if (crypto_uuid4(uid) != CRYPTO_OK)
			return DB_ERR_INTERNAL;
		struct db_param p[] = { { t->name, 0, 0 },	   { uid, 0, 0 },	     { t->ns, 0, 0 },
					{ t->labels, 0, 0 }, { t->annotations, 0, 0 }, { t->defaults, 0, 0 } };

		r = db_exec_stmt(c, &st_env_insert, p, 6, &res);
	} else {
		struct db_param p[] = { { t->name, 0, 0 },	   { t->ns, 0, 0 },	  { t->labels, 0, 0 },
					{ t->annotations, 0, 0 }, { t->defaults, 0, 0 } };

		r = db_exec_stmt(c, &st_env_update, p, 5, &res);
	}
	PQclear(res);
	if (r == DB_OK)
		r = env_read(c, t->name, &t->result);
	if (r != DB_OK || t->audit == NULL)
		return r;
	a = *t->audit;
	if (!t->created)
		a.action = t->update_action;
	return db_audit_insert(c, &a);
}

int
db_environment_put(struct db_conn *c, const char *name, const char *kubernetes_namespace, json_t *labels,
		   json_t *annotations, json_t *defaults, const struct db_audit *audit, const char *update_action,
		   struct db_environment **out, bool *created)
{
	struct env_put_tx t = { name, kubernetes_namespace, NULL, NULL, NULL, audit, update_action, NULL, false };
	char *l = json_dumps(labels, JSON_COMPACT), *an = json_dumps(annotations, JSON_COMPACT);
	char *d = json_dumps(defaults, JSON_COMPACT);
	int r = DB_ERR_ALLOC;

	*out = NULL;
	*created = false;
	if (l != NULL && an != NULL && d != NULL) {
		t.labels = l;
		t.annotations = an;
		t.defaults = d;
		r = db_tx_run(c, DB_TX_WRITE, env_put_body, &t);
	}
	free(l);
	free(an);
	free(d);
	if (r != DB_OK) {
		db_environment_free(t.result);
		return r;
	}
	*out = t.result;
	*created = t.created;
	return DB_OK;
}

struct env_get_tx {
	const char *name;
	struct db_environment *result;
};

static int
env_get_body(struct db_conn *c, void *cls)
{
	struct env_get_tx *t = cls;

	db_environment_free(t->result);
	t->result = NULL;
	return env_read(c, t->name, &t->result);
}

int
db_environment_get(struct db_conn *c, const char *name, struct db_environment **out)
{
	struct env_get_tx t = { name, NULL };
	int r;

	*out = NULL;
	r = db_tx_run(c, DB_TX_READ, env_get_body, &t);
	if (r != DB_OK) {
		db_environment_free(t.result);
		return r;
	}
	*out = t.result;
	return DB_OK;
}

int
db_environment_list(struct db_conn *c, long long offset, int limit, struct db_environment ***items, size_t *n,
		    long long *total)
{
	struct db_rows_page pg = { NULL, &st_env_count, &st_env_list, { NULL, NULL }, 0, offset, limit, env_decode,
				   env_free, NULL, 0, 0 };
	struct db_environment **out;
	int r;

	*items = NULL;
	*n = 0;
	*total = 0;
	r = db_rows_page_read(c, &pg);
	if (r != DB_OK)
		return r;
	out = calloc(pg.n > 0 ? pg.n : 1, sizeof(*out));
	if (out == NULL) {
		for (size_t i = 0; i < pg.n; i++)
			env_free(pg.items[i]);
		free(pg.items);
		return DB_ERR_ALLOC;
	}
	for (size_t i = 0; i < pg.n; i++)
		out[i] = pg.items[i];
	free(pg.items);
	*items = out;
	*n = pg.n;
	*total = pg.total;
	return DB_OK;
}

struct env_delete_tx {
	const char *name;
	const struct db_audit *audit;
};

static int
env_delete_body(struct db_conn *c, void *cls)
{
	struct env_delete_tx *t = cls;
	struct db_param p[] = { { t->name, 0, 0 } };
	PGresult *res = NULL;
	int r;

	/* Its secret mappings go with it (ON DELETE CASCADE). */
	r = db_exec_stmt(c, &st_env_delete, p, 1, &res);
	if (r == DB_OK && strcmp(PQcmdTuples(res), "1") != 0)
		r = DB_ERR_NOT_FOUND;
	PQclear(res);
	if (r == DB_OK)
		r = db_audit_insert(c, t->audit);
	return r;
}

int
db_environment_delete(struct db_conn *c, const char *name, const struct db_audit *audit)
{
	struct env_delete_tx t = { name, audit };

	return db_tx_run(c, DB_TX_WRITE, env_delete_body, &t);
}

/* ---- Secret mappings ------------------------------------------------------------------------------- */

void
db_secret_mapping_free(struct db_secret_mapping *m)
{
	if (m == NULL)
		return;
	free(m->environment);
	free(m->name);
	free(m->secret_name);
	json_decref(m->labels);
	json_decref(m->annotations);
	free(m);
}

static int
map_decode(PGresult *res, int row, void **out)
{
	struct db_secret_mapping *m = calloc(1, sizeof(*m));
	const char *name = PQgetvalue(res, row, MC_NAME);
	int r;

	*out = NULL;
	if (m == NULL)
		return DB_ERR_ALLOC;
	snprintf(m->uid, sizeof(m->uid), "%s", PQgetvalue(res, row, MC_UID));
	snprintf(m->created, sizeof(m->created), "%s", PQgetvalue(res, row, MC_CREATED));
	snprintf(m->updated, sizeof(m->updated), "%s", PQgetvalue(res, row, MC_UPDATED));
	r = db_rows_str(res, row, MC_ENV, false, &m->environment);
	if (r == DB_OK)
		r = db_rows_str(res, row, MC_NAME, false, &m->name);
	if (r == DB_OK)
		r = db_rows_str(res, row, MC_SECRET, false, &m->secret_name);
	if (r == DB_OK)
		r = db_rows_json(res, row, MC_LABELS, true, name, &m->labels);
	if (r == DB_OK)
		r = db_rows_json(res, row, MC_ANNOTATIONS, true, name, &m->annotations);
	if (r != DB_OK) {
		db_secret_mapping_free(m);
		return r;
	}
	*out = m;
	return DB_OK;
}

static void
map_free(void *m)
{
	db_secret_mapping_free(m);
}

/* Read one mapping inside the caller's transaction; DB_ERR_NOT_FOUND if absent. */
static int
map_read(struct db_conn *c, const char *env, const char *name, struct db_secret_mapping **out)
{
	struct db_param p[] = { { env, 0, 0 }, { name, 0, 0 } };
	PGresult *res = NULL;
	void *m = NULL;
	int r;

	*out = NULL;
	r = db_exec_stmt(c, &st_map_get, p, 2, &res);
	if (r == DB_OK)
		r = PQntuples(res) == 1 ? map_decode(res, 0, &m) : DB_ERR_NOT_FOUND;
	PQclear(res);
	*out = m;
	return r;
}

/* 0 when `st` finds the row of `key`, else DB_ERR_NOT_FOUND with *missing = `which`, or an error. */
static int
need(struct db_conn *c, const struct db_statement *st, const struct db_param *key, int nkey, enum db_missing which,
     enum db_missing *missing)
{
	int r = db_rows_exists(c, st, key, nkey);

	if (r == 0) {
		*missing = which;
		return DB_ERR_NOT_FOUND;
	}
	return r < 0 ? r : DB_OK;
}

struct map_write_tx {
	bool create;
	const char *env, *name, *secret;
	const char *labels, *annotations; /* JSON text */
	const struct db_audit *audit;
	struct db_secret_mapping *result;
	enum db_missing missing;
};

static int
map_write_body(struct db_conn *c, void *cls)
{
	struct map_write_tx *t = cls;
	struct db_param env[] = { { t->env, 0, 0 } }, secret[] = { { t->secret, 0, 0 } };
	struct db_param self[] = { { t->env, 0, 0 }, { t->name, 0, 0 } };
	PGresult *res = NULL;
	char uid[37];
	int r;

	db_secret_mapping_free(t->result);
	t->result = NULL;
	t->missing = DB_MISSING_NONE;
	/* Environment, then the mapping itself, then the secret: every row the write depends on is held. */
	r = need(c, &st_env_share, env, 1, DB_MISSING_PARENT, &t->missing);
	if (r == DB_OK && !t->create)
		r = need(c, &st_map_lock, self, 2, DB_MISSING_SELF, &t->missing);
	if (r == DB_OK)
		r = need(c, &st_secret_share, secret, 1, DB_MISSING_REF, &t->missing);
	if (r != DB_OK)
		return r;
	if (t->create) {
		if (crypto_uuid4(uid) != CRYPTO_OK)
			return DB_ERR_INTERNAL;
		struct db_param p[] = { { t->env, 0, 0 },    { t->name, 0, 0 },	 { uid, 0, 0 },
					{ t->secret, 0, 0 }, { t->labels, 0, 0 }, { t->annotations, 0, 0 } };

		r = db_exec_stmt(c, &st_map_insert, p, 6, &res); /* 23505 → DB_ERR_CONFLICT: the name exists */
	} else {
		struct db_param p[] = { { t->env, 0, 0 },    { t->name, 0, 0 },	   { t->secret, 0, 0 },
					{ t->labels, 0, 0 }, { t->annotations, 0, 0 } };

		r = db_exec_stmt(c, &st_map_update, p, 5, &res);
	}
	PQclear(res);
	if (r == DB_OK)
		r = map_read(c, t->env, t->name, &t->result);
	if (r == DB_OK)
		r = db_audit_insert(c, t->audit);
	return r;
}

static int
map_write(struct db_conn *c, bool create, const char *env, const char *name, const char *secret, json_t *labels,
	  json_t *annotations, const struct db_audit *audit, struct db_secret_mapping **out, enum db_missing *missing)
{
	struct map_write_tx t = { create, env, name, secret, NULL, NULL, audit, NULL, DB_MISSING_NONE };
	char *l = json_dumps(labels, JSON_COMPACT), *an = json_dumps(annotations, JSON_COMPACT);
	int r = DB_ERR_ALLOC;

	*out = NULL;
	*missing = DB_MISSING_NONE;
	if (l != NULL && an != NULL) {
		t.labels = l;
		t.annotations = an;
		r = db_tx_run(c, DB_TX_WRITE, map_write_body, &t);
	}
	free(l);
	free(an);
	if (r != DB_OK) {
		db_secret_mapping_free(t.result);
		if (r == DB_ERR_NOT_FOUND)
			*missing = t.missing;
		return r;
	}
	*out = t.result;
	return DB_OK;
}

int
db_secret_mapping_create(struct db_conn *c, const char *environment, const char *name, const char *secret_name,
			 json_t *labels, json_t *annotations, const struct db_audit *audit,
			 struct db_secret_mapping **out, enum db_missing *missing)
{
	return map_write(c, true, environment, name, secret_name, labels, annotations, audit, out, missing);
}

int
db_secret_mapping_update(struct db_conn *c, const char *environment, const char *name, const char *secret_name,
			 json_t *labels, json_t *annotations, const struct db_audit *audit,
			 struct db_secret_mapping **out, enum db_missing *missing)
{
	return map_write(c, false, environment, name, secret_name, labels, annotations, audit, out, missing);
}

struct map_get_tx {
	const char *env, *name;
	struct db_secret_mapping *result;
	enum db_missing missing;
};

static int
map_get_body(struct db_conn *c, void *cls)
{
	struct map_get_tx *t = cls;
	struct db_param env[] = { { t->env, 0, 0 } };
	int r;

	db_secret_mapping_free(t->result);
	t->result = NULL;
	t->missing = DB_MISSING_NONE;
	r = map_read(c, t->env, t->name, &t->result);
	if (r == DB_ERR_NOT_FOUND) {
		r = need(c, &st_env_exists, env, 1, DB_MISSING_PARENT, &t->missing);
		if (r == DB_OK) {
			t->missing = DB_MISSING_SELF;
			r = DB_ERR_NOT_FOUND;
		}
	}
	return r;
}

int
db_secret_mapping_get(struct db_conn *c, const char *environment, const char *name, struct db_secret_mapping **out,
		      enum db_missing *missing)
{
	struct map_get_tx t = { environment, name, NULL, DB_MISSING_NONE };
	int r;

	*out = NULL;
	*missing = DB_MISSING_NONE;
	r = db_tx_run(c, DB_TX_READ, map_get_body, &t);
	if (r != DB_OK) {
		db_secret_mapping_free(t.result);
		if (r == DB_ERR_NOT_FOUND)
			*missing = t.missing;
		return r;
	}
	*out = t.result;
	return DB_OK;
}

int
db_secret_mapping_list(struct db_conn *c, const char *environment, long long offset, int limit,
		       struct db_secret_mapping ***items, size_t *n, long long *total)
{
	struct db_rows_page pg = { &st_env_exists, &st_map_count, &st_map_list, { environment, NULL }, 1, offset, limit,
				   map_decode, map_free, NULL, 0, 0 };
	struct db_secret_mapping **out;
	int r;

	*items = NULL;
	*n = 0;
	*total = 0;
	r = db_rows_page_read(c, &pg);
	if (r != DB_OK)
		return r;
	out = calloc(pg.n > 0 ? pg.n : 1, sizeof(*out));
	if (out == NULL) {
		for (size_t i = 0; i < pg.n; i++)
			map_free(pg.items[i]);
		free(pg.items);
		return DB_ERR_ALLOC;
	}
	for (size_t i = 0; i < pg.n; i++)
		out[i] = pg.items[i];
	free(pg.items);
	*items = out;
	*n = pg.n;
	*total = pg.total;
	return DB_OK;
}

struct map_delete_tx {
	const char *env, *name;
	const struct db_audit *audit;
	enum db_missing missing;
};

static int
map_delete_body(struct db_conn *c, void *cls)
{
	struct map_delete_tx *t = cls;
	struct db_param env[] = { { t->env, 0, 0 } }, self[] = { { t->env, 0, 0 }, { t->name, 0, 0 } };
	PGresult *res = NULL;
	int r;

	t->missing = DB_MISSING_NONE;
	r = db_exec_stmt(c, &st_map_delete, self, 2, &res);
	if (r == DB_OK && strcmp(PQcmdTuples(res), "1") != 0) {
		/* Nothing deleted: say whether the environment or only the mapping is missing. */
		r = need(c, &st_env_exists, env, 1, DB_MISSING_PARENT, &t->missing);
		if (r == DB_OK) {
			t->missing = DB_MISSING_SELF;
			r = DB_ERR_NOT_FOUND;
		}
	}
	PQclear(res);
	if (r == DB_OK)
		r = db_audit_insert(c, t->audit);
	return r;
}

int
db_secret_mapping_delete(struct db_conn *c, const char *environment, const char *name, const struct db_audit *audit,
			 enum db_missing *missing)
{
	struct map_delete_tx t = { environment, name, audit, DB_MISSING_NONE };
	int r;

	*missing = DB_MISSING_NONE;
	r = db_tx_run(c, DB_TX_WRITE, map_delete_body, &t);
	if (r == DB_ERR_NOT_FOUND)
		*missing = t.missing;
	return r;
}
