/* db tokens: API tokens as rows with the SHA-256 of their secret part; the value itself is never stored. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/log.h"
#include "db/internal.h"
#include "db/rows.h"

/* Columns of a token row, in the order of the enum below; st_token_lookup adds secret_hash and revoked. */
#define TOKEN_COLS                                                                                \
	"id, name, uid::text, role, array_to_json(environments)::text, " DB_ROWS_TS("created_at") ", "  \
	"coalesce(" DB_ROWS_TS("expires_at") ", ''), created_by, (expires_at IS NOT NULL AND expires_at <= now())"

static const struct db_statement st_token_insert = {
	"token_insert",
	"INSERT INTO cmf_tokens (id, name, uid, role, environments, secret_hash, expires_at, created_at, created_by) "
	"VALUES ($1, $2, $3::uuid, $4, $5::text[], $6::bytea, $7::timestamptz, now(), $8) RETURNING " TOKEN_COLS,
	8,
};
static const struct db_statement st_token_lookup = {
	"token_lookup", "SELECT " TOKEN_COLS ", secret_hash, revoked_at IS NOT NULL FROM cmf_tokens WHERE id = $1", 1,
};
static const struct db_statement st_token_get = {
	"token_get", "SELECT " TOKEN_COLS " FROM cmf_tokens WHERE name = $1 AND revoked_at IS NULL", 1,
};
static const struct db_statement st_token_list = {
	"token_list",
	"SELECT " TOKEN_COLS " FROM cmf_tokens WHERE revoked_at IS NULL ORDER BY name LIMIT $1::bigint OFFSET $2::bigint",
	2,
};
static const struct db_statement st_token_count = {
	"token_count", "SELECT count(*) FROM cmf_tokens WHERE revoked_at IS NULL", 0,
};
static const struct db_statement st_token_revoke = {
	"token_revoke", "UPDATE cmf_tokens SET revoked_at = now(), revoked_by = $2 WHERE name = $1 AND revoked_at IS NULL",
	2,
};

enum { TC_ID, TC_NAME, TC_UID, TC_ROLE, TC_ENVS, TC_CREATED, TC_EXPIRES, TC_CREATED_BY, TC_EXPIRED, TC_HASH, TC_REVOKED };

void
db_token_free(struct db_token *t)
{
	if (t == NULL)
		return;
	free(t->name);
	free(t->role);
	free(t->created_by);
	json_decref(t->environments);
	free(t);
}

static int
row_to_token(PGresult *res, int row, struct db_token **out)
{
	struct db_token *t = calloc(1, sizeof(*t));
	json_error_t jerr;

	*out = NULL;
	if (t == NULL)
		return DB_ERR_ALLOC;
	snprintf(t->id, sizeof(t->id), "%s", PQgetvalue(res, row, TC_ID));
	snprintf(t->uid, sizeof(t->uid), "%s", PQgetvalue(res, row, TC_UID));
	snprintf(t->created, sizeof(t->created), "%s", PQgetvalue(res, row, TC_CREATED));
	snprintf(t->expires, sizeof(t->expires), "%s", PQgetvalue(res, row, TC_EXPIRES));
	t->name = strdup(PQgetvalue(res, row, TC_NAME));
	t->role = strdup(PQgetvalue(res, row, TC_ROLE));
	t->created_by = strdup(PQgetvalue(res, row, TC_CREATED_BY));
	t->environments = json_loads(PQgetvalue(res, row, TC_ENVS), 0, &jerr);
	t->expired = strcmp(PQgetvalue(res, row, TC_EXPIRED), "t") == 0;
	if (t->name == NULL || t->role == NULL || t->created_by == NULL || !json_is_array(t->environments)) {
		db_token_free(t);
		return DB_ERR_ALLOC;
	}
	*out = t;
	return DB_OK;
}

/*
 * A PostgreSQL text[] literal of the environment names, each element double-quoted: unquoted, the valid
 * name "null" would be read as SQL NULL. Names are DNS-1123 (no quotes or backslashes to escape).
 */
static char *
text_array(json_t *envs)
{
	size_t i, len = 3;
	json_t *v;
	char *s;

	json_array_foreach (envs, i, v)
		len += strlen(json_string_value(v)) + 3;
	s = malloc(len);
	if (s == NULL)
		return NULL;
	strcpy(s, "{");
	json_array_foreach (envs, i, v) {
		if (i > 0)
			strcat(s, ",");
		strcat(s, "\"");
		strcat(s, json_string_value(v));
		strcat(s, "\"");
	}
	strcat(s, "}");
	return s;
}

struct create_tx {
	const char *id, *name, *role, *expires, *by, *uid, *envs;
	const uint8_t *hash;
	const struct db_audit *audit;
	struct db_token *result;
};

static int
create_body(struct db_conn *c, void *cls)
{
	struct create_tx *t = cls;
	struct db_param p[] = {
		{ t->id, 0, 0 },    { t->name, 0, 0 },			     { t->uid, 0, 0 },
		{ t->role, 0, 0 },  { t->envs, 0, 0 },			     { (const char *)t->hash, 32, 1 },
		{ t->expires, 0, 0 }, { t->by, 0, 0 },
	};
	PGresult *res = NULL;
	int r;

	db_token_free(t->result);
	t->result = NULL;
	r = db_exec_stmt(c, &st_token_insert, p, 8, &res);
	if (r == DB_OK)
		r = row_to_token(res, 0, &t->result);
	PQclear(res);
	if (r == DB_OK)
		r = db_audit_insert(c, t->audit);
	return r;
}

int
db_token_create(struct db_conn *c, const char *id, const char *name, const char *role, json_t *environments,
		const char *expires_at, const uint8_t secret_hash[32], const char *created_by,
		const struct db_audit *audit, struct db_token **out)
{
	char uid[37];
	char *envs = NULL;
	struct create_tx t = { id, name, role, expires_at, created_by, uid, NULL, secret_hash, audit, NULL };
	int r;

	*out = NULL;
	if (crypto_uuid4(uid) != CRYPTO_OK)
		return DB_ERR_INTERNAL;
	envs = text_array(environments);
	if (envs == NULL)
		return DB_ERR_ALLOC;
	t.envs = envs;
	r = db_tx_run(c, DB_TX_WRITE, create_body, &t);
	free(envs);
	if (r != DB_OK) {
		db_token_free(t.result);
		return r;
	}
	*out = t.result;
	return DB_OK;
}

struct get_tx {
	const struct db_statement *st;
	const char *key;
	struct db_token *result;
	bool revoked;
};

static int
get_body(struct db_conn *c, void *cls)
{
	struct get_tx *t = cls;
	struct db_param p[] = { { t->key, 0, 0 } };
	PGresult *res = NULL;
	int r;

	db_token_free(t->result);
	t->result = NULL;
	r = db_exec_stmt(c, t->st, p, 1, &res);
	if (r != DB_OK)
		return r;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return DB_ERR_NOT_FOUND;
	}
	r = row_to_token(res, 0, &t->result);
	if (r == DB_OK && t->st == &st_token_lookup) {
		size_t len = 0;
		unsigned char *h = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, TC_HASH), &len);

		if (h == NULL || len != sizeof(t->result->secret_hash)) {
			r = h == NULL ? DB_ERR_ALLOC : DB_ERR_CORRUPT;
		} else {
			memcpy(t->result->secret_hash, h, len);
			t->revoked = strcmp(PQgetvalue(res, 0, TC_REVOKED), "t") == 0;
		}
		PQfreemem(h);
	}
	PQclear(res);
	return r;
}

int
db_token_lookup(struct db_conn *c, const char *id, struct db_token **out, bool *revoked)
{
	struct get_tx t = { &st_token_lookup, id, NULL, false };
	int r;

	*out = NULL;
	*revoked = false;
	/* One statement: no transaction around it (this runs on every authenticated request). */
	r = db_tx_run(c, DB_TX_AUTOCOMMIT, get_body, &t);
	if (r != DB_OK) {
		db_token_free(t.result);
		return r;
	}
	*out = t.result;
	*revoked = t.revoked;
	return DB_OK;
}

int
db_token_get(struct db_conn *c, const char *name, struct db_token **out)
{
	struct get_tx t = { &st_token_get, name, NULL, false };
	int r;

	*out = NULL;
	r = db_tx_run(c, DB_TX_READ, get_body, &t);
	if (r != DB_OK) {
		db_token_free(t.result);
		return r;
	}
	*out = t.result;
	return DB_OK;
}

static int
token_decode(PGresult *res, int row, void **out)
{
	return row_to_token(res, row, (struct db_token **)out);
}

static void
token_free(void *t)
{
	db_token_free(t);
}

int
db_token_list(struct db_conn *c, long long offset, int limit, struct db_token ***items, size_t *n,
	      long long *total)
{
	struct db_rows_page pg = {
		.count = &st_token_count,
		.list = &st_token_list,
		.offset = offset,
		.limit = limit,
		.decode = token_decode,
		.free_item = token_free,
	};
	struct db_token **out;
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
			token_free(pg.items[i]);
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

struct revoke_tx {
	const char *name, *by;
	const struct db_audit *audit;
};

static int
revoke_body(struct db_conn *c, void *cls)
{
	struct revoke_tx *t = cls;
	struct db_param p[] = { { t->name, 0, 0 }, { t->by, 0, 0 } };
	PGresult *res = NULL;
	int r;

	r = db_exec_stmt(c, &st_token_revoke, p, 2, &res);
	if (r == DB_OK && strcmp(PQcmdTuples(res), "1") != 0)
		r = DB_ERR_NOT_FOUND;
	PQclear(res);
	if (r == DB_OK)
		r = db_audit_insert(c, t->audit);
	return r;
}

int
db_token_revoke(struct db_conn *c, const char *name, const char *by, const struct db_audit *audit)
{
	struct revoke_tx t = { name, by, audit };

	return db_tx_run(c, DB_TX_WRITE, revoke_body, &t);
}
