/* db tokens: API tokens as rows with the SHA-256 of their secret part; the value itself is never stored. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/rows.h"

/* A live token as the API returns it (revoked rows stay for the audit trail, invisible here). */
#define TOKEN_ROW                                                                                        \
	"jsonb_build_object('id', k.id, 'name', k.name, 'uid', k.uid::text, 'role', k.role, 'environments', "   \
	"to_jsonb(k.environments), 'created', " DB_ROWS_TS("k.created_at") ", 'expires', "                    \
	"coalesce(" DB_ROWS_TS("k.expires_at") ", ''), 'createdBy', k.created_by, 'expired', "                \
	"(k.expires_at IS NOT NULL AND k.expires_at <= now()))::text"

DB_KIND_STATEMENTS(token, "cmf_tokens", TOKEN_ROW, "k.revoked_at IS NULL", "0");
/* The doc carries the token's public id and the SHA-256 of its secret part (base64); expiresAt may be absent. */
DB_STATEMENT(token, insert, 3,
	     "INSERT INTO cmf_tokens (id, name, uid, role, environments, secret_hash, expires_at, created_at, "
	     "created_by) SELECT d->>'id', $1::text, $2::uuid, d->>'role', "
	     "ARRAY(SELECT jsonb_array_elements_text(d->'environments')), decode(d->>'secretHash', 'base64'), "
	     "(d->>'expiresAt')::timestamptz, now(), d->>'createdBy' FROM " DB_ROWS_DOC("3"));
/* Revoked, never deleted: the row stays so the audit trail can name the token. */
DB_STATEMENT(token, revoke, 2,
	     "UPDATE cmf_tokens SET revoked_at = now(), revoked_by = $2 WHERE name = $1 AND revoked_at IS NULL");
DB_STATEMENT(token, lookup, 1,
	     "SELECT id, name, role, array_to_json(environments)::text, coalesce(extract(epoch FROM expires_at), 0), "
	     "secret_hash, revoked_at IS NOT NULL FROM cmf_tokens WHERE id = $1");
enum { TC_ID, TC_NAME, TC_ROLE, TC_ENVS, TC_EXPIRES, TC_HASH, TC_REVOKED };
/* Every token, revoked ones too (their refusal says so): what a replica keeps in memory. */
DB_STATEMENT(token, all, 0,
	     "SELECT id, name, role, array_to_json(environments)::text, coalesce(extract(epoch FROM expires_at), 0), "
	     "secret_hash, revoked_at IS NOT NULL FROM cmf_tokens");

const struct db_kind db_kind_token = {
	.name = "token",
	.nkeys = 1,
	.get = &token_get,
	.count = &token_count,
	.list = &token_list,
	.insert = &token_insert,
	.del = &token_revoke,
	.del_actor = true,
};

void
db_token_free(struct db_token *t)
{
	if (t == NULL)
		return;
	OPENSSL_cleanse(t->secret_hash, sizeof(t->secret_hash));
	free(t->name);
	free(t->role);
	json_decref(t->environments);
	free(t);
}

struct lookup_tx {
	const char *id;
	struct db_token *result;
	bool revoked;
};

/* Row `i` of a token statement's result as a token (*out; caller frees) and whether it is revoked. */
static int
token_from_row(PGresult *res, int i, struct db_token **out, bool *revoked)
{
	struct db_token *tok = calloc(1, sizeof(*tok));
	unsigned char *h = NULL;
	size_t len = 0;
	int r;

	*out = NULL;
	if (tok == NULL)
		return DB_ERR_ALLOC;
	snprintf(tok->id, sizeof(tok->id), "%s", PQgetvalue(res, i, TC_ID));
	tok->expires_at = strtod(PQgetvalue(res, i, TC_EXPIRES), NULL);
	r = db_rows_str(res, i, TC_NAME, false, &tok->name);
	if (r == DB_OK)
		r = db_rows_str(res, i, TC_ROLE, false, &tok->role);
	if (r == DB_OK)
		r = db_rows_json(res, i, TC_ENVS, false, "token", &tok->environments);
	if (r == DB_OK) {
		h = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, TC_HASH), &len);
		r = h == NULL ? DB_ERR_ALLOC : len != sizeof(tok->secret_hash) ? DB_ERR_CORRUPT : DB_OK;
	}
	if (r == DB_OK) {
		memcpy(tok->secret_hash, h, len);
		*revoked = strcmp(PQgetvalue(res, i, TC_REVOKED), "t") == 0;
		*out = tok;
		tok = NULL;
	}
	PQfreemem(h);
	db_token_free(tok);
	return r;
}

static int
lookup_body(struct db_conn *c, void *cls)
{
	struct lookup_tx *t = cls;
	struct db_param p[] = { { t->id, 0, 0 } };
	PGresult *res = NULL;
	int r;

	db_token_free(t->result);
	t->result = NULL;
	r = db_exec_stmt(c, &token_lookup, p, 1, &res);
	if (r == DB_OK && PQntuples(res) != 1)
		r = DB_ERR_NOT_FOUND;
	if (r == DB_OK)
		r = token_from_row(res, 0, &t->result, &t->revoked);
	PQclear(res);
	return r;
}

int
db_token_lookup(struct db_conn *c, const char *id, struct db_token **out, bool *revoked)
{
	struct lookup_tx t = { id, NULL, false };
	int r;

	*out = NULL;
	*revoked = false;
	/* One statement: no transaction around it (this runs on every authenticated request). */
	r = db_tx_run(c, DB_TX_AUTOCOMMIT, lookup_body, &t);
	if (r != DB_OK) {
		db_token_free(t.result);
		return r;
	}
	*out = t.result;
	*revoked = t.revoked;
	return DB_OK;
}

struct all_tx {
	PGresult *res;
};

static int
all_body(struct db_conn *c, void *cls)
{
	struct all_tx *t = cls;

	PQclear(t->res);
	t->res = NULL;
	return db_exec_stmt(c, &token_all, NULL, 0, &t->res);
}

int
db_token_load_all(struct db_conn *c, int (*fn)(void *cls, struct db_token *t, bool revoked), void *cls)
{
	struct all_tx t = { NULL };
	int r = db_tx_run(c, DB_TX_AUTOCOMMIT, all_body, &t);

	for (int i = 0; r == DB_OK && i < PQntuples(t.res); i++) {
		struct db_token *tok = NULL;
		bool revoked = false;

		r = token_from_row(t.res, i, &tok, &revoked);
		if (r == DB_OK)
			r = fn(cls, tok, revoked);
	}
	PQclear(t.res);
	return r;
}
