/* db secrets: CMF Secrets stored with spec.data sealed under the current DEK (or plaintext if disabled). */
#include <inttypes.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/log.h"
#include "db/rows.h"

/* Column order of SECRET_COLS in db/conn.c. */
enum { COL_NAME, COL_UID, COL_VERSION, COL_LABELS, COL_ANNOTATIONS, COL_SEALED, COL_DATA, COL_CREATED, COL_UPDATED };

/* The environments that map one secret, sorted: a Secret's status.environments. */
static const struct db_statement st_secret_envs = {
	"secret_envs",
	"SELECT coalesce(json_agg(DISTINCT environment ORDER BY environment), '[]')::text FROM cmf_secret_mappings "
	"WHERE secret_name = $1",
	1,
};

/* The same for a page of secrets, named by a JSON array of names: one row per secret that is mapped. */
static const struct db_statement st_secret_envs_page = {
	"secret_envs_page",
	"SELECT secret_name, json_agg(DISTINCT environment ORDER BY environment)::text FROM cmf_secret_mappings "
	"WHERE secret_name IN (SELECT json_array_elements_text($1::json)) GROUP BY secret_name",
	1,
};

/* Delete: hold the row first, so a mapping being created concurrently either commits before (and is
 * seen below) or waits and then finds the secret gone. */
static const struct db_statement st_secret_delete_lock = {
	"secret_delete_lock",
	"SELECT 1 FROM cmf_secrets WHERE name = $1 FOR UPDATE",
	1,
};

void
db_secret_free(struct db_secret *s)
{
	if (s == NULL)
		return;
	free(s->name);
	json_decref(s->labels);
	json_decref(s->annotations);
	json_decref(s->data);
	json_decref(s->environments);
	free(s);
}

/*
 * The nonce budget. Counting every encryption in the DEK's row would make every write in every
 * process contend for that one row (and, under SERIALIZABLE, retry). Instead each process reserves
 * DB_ENCRYPTION_BLOCK encryptions at a time in a short transaction of its own and counts them off
 * here; a reservation a process never uses (it exits) is simply lost, which errs on the safe side.
 */
#define DB_ENCRYPTION_BLOCK 1024 /* 2^31 / 1024 = 2 million reservations before the DEK must rotate */

static pthread_mutex_t budget_mutex = PTHREAD_MUTEX_INITIALIZER;
/* One refill at a time per process: threads that ran dry together share the block one of them reserves. */
static pthread_mutex_t refill_mutex = PTHREAD_MUTEX_INITIALIZER;
static uint32_t budget_term;
static uint64_t budget_left;

/* Take one encryption under `term` from this process's reservation; DB_ERR_NEED_BUDGET if none left. */
static int
budget_take(uint32_t term)
{
	int r = DB_ERR_NEED_BUDGET;

	pthread_mutex_lock(&budget_mutex);
	if (budget_term == term && budget_left > 0) {
		budget_left--;
		r = DB_OK;
	}
	pthread_mutex_unlock(&budget_mutex);
	return r;
}

struct reserve_tx {
	uint32_t term;
	uint64_t total; /* reserved under the term after this block */
};

static int
reserve_body(struct db_conn *c, void *cls)
{
	struct reserve_tx *t = cls;
	char term_s[16], block_s[16];
	struct db_param p[] = { { term_s, 0, 0 }, { block_s, 0, 0 } };
	PGresult *res = NULL;
	int r;

	snprintf(term_s, sizeof(term_s), "%" PRIu32, t->term);
	snprintf(block_s, sizeof(block_s), "%d", DB_ENCRYPTION_BLOCK);
	r = db_exec(c, ST_DEK_COUNT, p, 2, &res);
	if (r == DB_OK && PQntuples(res) != 1) {
		crypto_log_error("data key term %" PRIu32 " is not in cmf_deks", t->term);
		r = DB_ERR_CORRUPT;
	}
	if (r == DB_OK)
		t->total = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return r;
}

/* Reserve a block of encryptions under `term` (a transaction of its own, outside any write). */
static int
budget_refill(struct db_conn *c, uint32_t term)
{
	struct reserve_tx t = { term, 0 };
	int r;

	pthread_mutex_lock(&refill_mutex);
	pthread_mutex_lock(&budget_mutex);
	r = budget_term == term && budget_left > 0;
	pthread_mutex_unlock(&budget_mutex);
	if (r) {
		pthread_mutex_unlock(&refill_mutex);
		return DB_OK; /* another thread refilled while this one waited */
	}
	r = db_tx_run(c, DB_TX_LOCKED, reserve_body, &t);
	if (r != DB_OK)
		goto out;
	if (t.total > CRYPTO_DEK_MAX_ENCRYPTIONS) {
		crypto_log_error("data key term %" PRIu32 " reached its limit of %" PRIu64
			  " encryptions: rotate the data key before writing more secrets",
			  term, CRYPTO_DEK_MAX_ENCRYPTIONS);
		r = DB_ERR_NONCE_BUDGET;
		goto out;
	}
	if (t.total >= CRYPTO_DEK_MAX_ENCRYPTIONS / 2)
		crypto_log_warn("data key term %" PRIu32 " has used %" PRIu64 " of %" PRIu64 " encryptions: plan a rotation",
			 term, t.total, CRYPTO_DEK_MAX_ENCRYPTIONS);
	pthread_mutex_lock(&budget_mutex);
	if (budget_term != term) {
		budget_term = term;
		budget_left = 0;
	}
	budget_left += DB_ENCRYPTION_BLOCK;
	pthread_mutex_unlock(&budget_mutex);
out:
	pthread_mutex_unlock(&refill_mutex);
	return r;
}

/*
 * Serialize `data` and seal it for (uid, version) under the current DEK, taking one encryption from
 * this process's reservation. *out is the bytes to store (ciphertext, or JSON text when disabled).
 */
static int
seal_data(const struct db_sealer *sl, const char *uid, long long version, json_t *data, uint8_t **out,
	  size_t *outlen)
{
	char ident[96];
	char *text = NULL;
	uint8_t *ct = NULL;
	size_t ctlen = 0, textlen;
	int r = DB_OK, cr;

	*out = NULL;
	*outlen = 0;
	if (sl->enabled && sl->keyring == NULL)
		return DB_ERR_KEY_UNAVAILABLE;
	text = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS);
	if (text == NULL)
		return DB_ERR_ALLOC;
	textlen = strlen(text);
	if (textlen > CRYPTO_MAX_PLAINTEXT) {
		r = DB_ERR_TOO_LARGE;
		goto out;
	}
	if (!sl->enabled) {
		*out = (uint8_t *)text;
		*outlen = textlen;
		return DB_OK;
	}
	r = budget_take(crypto_keyring_current_term(sl->keyring));
	if (r != DB_OK)
		goto out;
	db_secret_ident(ident, sizeof(ident), uid, version);
	cr = crypto_keyring_seal(sl->keyring, (const uint8_t *)ident, strlen(ident), (const uint8_t *)text,
				 textlen, &ct, &ctlen);
	if (cr != CRYPTO_OK) {
		crypto_log_error("%s: sealing failed: %s", __func__, crypto_strerror(cr));
		r = cr == CRYPTO_ERR_ALLOC ? DB_ERR_ALLOC : cr == CRYPTO_ERR_NO_KEY ? DB_ERR_KEY_UNAVAILABLE
										    : DB_ERR_INTERNAL;
		goto out;
	}
	*out = ct;
	*outlen = ctlen;
out:
	OPENSSL_cleanse(text, textlen);
	free(text);
	return r;
}

/* Decode one row; its data is opened by db_secret_data_open (db/seal.c), the one place rows decrypt. */
static int
row_to_secret(const struct db_sealer *sl, PGresult *res, int row, struct db_secret **out)
{
	struct db_secret *s = NULL;
	json_error_t jerr;
	int r = DB_OK;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return DB_ERR_ALLOC;
	s->name = strdup(PQgetvalue(res, row, COL_NAME));
	snprintf(s->uid, sizeof(s->uid), "%s", PQgetvalue(res, row, COL_UID));
	s->version = strtoll(PQgetvalue(res, row, COL_VERSION), NULL, 10);
	snprintf(s->created, sizeof(s->created), "%s", PQgetvalue(res, row, COL_CREATED));
	snprintf(s->updated, sizeof(s->updated), "%s", PQgetvalue(res, row, COL_UPDATED));
	s->labels = json_loads(PQgetvalue(res, row, COL_LABELS), 0, &jerr);
	s->annotations = json_loads(PQgetvalue(res, row, COL_ANNOTATIONS), 0, &jerr);
	s->environments = json_array(); /* filled by secret_envs_load where the caller needs it */
	if (s->name == NULL || s->environments == NULL) {
		r = DB_ERR_ALLOC;
		goto out;
	}
	if (s->labels == NULL || s->annotations == NULL) {
		crypto_log_error("%s: secret %s: stored labels/annotations are not JSON", __func__, s->name);
		r = DB_ERR_CORRUPT;
		goto out;
	}
	r = db_secret_data_open(sl, s->name, s->uid, s->version, strcmp(PQgetvalue(res, row, COL_SEALED), "t") == 0,
				PQgetvalue(res, row, COL_DATA), &s->data);
	if (r != DB_OK)
		goto out;
	*out = s;
	s = NULL;
out:
	db_secret_free(s);
	return r;
}

/* Fill s->environments from the secret mappings, inside the caller's transaction. */
static int
secret_envs_load(struct db_conn *c, struct db_secret *s)
{
	struct db_param p[] = { { s->name, 0, 0 } };
	PGresult *res = NULL;
	json_t *envs = NULL;
	int r;

	r = db_exec_stmt(c, &st_secret_envs, p, 1, &res);
	if (r == DB_OK)
		r = db_rows_json(res, 0, 0, false, s->name, &envs);
	PQclear(res);
	if (r == DB_OK) {
		json_decref(s->environments);
		s->environments = envs;
	}
	return r;
}

/* secret_envs_load for a page of secrets, in one query. */
static int
secret_envs_load_page(struct db_conn *c, struct db_secret **items, size_t n)
{
	json_t *names = json_array();
	char *names_s = NULL;
	PGresult *res = NULL;
	int r = DB_OK;

	if (names == NULL)
		return DB_ERR_ALLOC;
	for (size_t i = 0; i < n; i++)
		if (json_array_append_new(names, json_string(items[i]->name)) != 0)
			r = DB_ERR_ALLOC;
	names_s = r == DB_OK ? json_dumps(names, JSON_COMPACT) : NULL;
	json_decref(names);
	if (names_s == NULL)
		return DB_ERR_ALLOC;
	{
		struct db_param p[] = { { names_s, 0, 0 } };

		r = db_exec_stmt(c, &st_secret_envs_page, p, 1, &res);
	}
	free(names_s);
	for (int row = 0; r == DB_OK && row < PQntuples(res); row++) {
		for (size_t i = 0; i < n; i++) {
			if (strcmp(items[i]->name, PQgetvalue(res, row, 0)) != 0)
				continue;
			json_decref(items[i]->environments);
			items[i]->environments = NULL;
			r = db_rows_json(res, row, 1, false, items[i]->name, &items[i]->environments);
			break;
		}
	}
	PQclear(res);
	return r;
}

struct write_tx {
	const struct db_sealer *sl;
	const char *name;
	json_t *labels, *annotations, *data;
	const struct db_audit *audit;
	struct db_secret *result;
};

static int
write_params_run(struct db_conn *c, struct write_tx *t, enum db_stmt st, const char *uid, long long version)
{
	char version_s[24];
	char *labels = NULL, *annotations = NULL;
	uint8_t *blob = NULL;
	size_t bloblen = 0;
	PGresult *res = NULL;
	int r;

	r = seal_data(t->sl, uid, version, t->data, &blob, &bloblen);
	if (r != DB_OK)
		return r;
	labels = json_dumps(t->labels, JSON_COMPACT);
	annotations = json_dumps(t->annotations, JSON_COMPACT);
	if (labels == NULL || annotations == NULL) {
		r = DB_ERR_ALLOC;
		goto out;
	}
	snprintf(version_s, sizeof(version_s), "%lld", version);
	{
		/* INSERT takes (name, uid, labels, annotations, sealed, data); UPDATE (name, version, ...). */
		struct db_param p[] = {
			{ t->name, 0, 0 },
			{ st == ST_SECRET_INSERT ? uid : version_s, 0, 0 },
			{ labels, 0, 0 },
			{ annotations, 0, 0 },
			{ t->sl->enabled ? "true" : "false", 0, 0 },
			{ (const char *)blob, (int)bloblen, 1 },
		};

		r = db_exec(c, st, p, 6, &res);
	}
	if (r != DB_OK)
		goto out;
	if (PQntuples(res) != 1) {
		r = DB_ERR_NOT_FOUND;
		goto out;
	}
	r = row_to_secret(t->sl, res, 0, &t->result);
	if (r == DB_OK && st == ST_SECRET_UPDATE)
		r = secret_envs_load(c, t->result); /* a new secret is mapped nowhere yet */
	if (r == DB_OK)
		r = db_audit_insert(c, t->audit);
out:
	PQclear(res);
	free(labels);
	free(annotations);
	if (blob != NULL) {
		/* Plaintext JSON when encryption is disabled; wipe either way. */
		OPENSSL_cleanse(blob, bloblen);
		free(blob);
	}
	return r;
}

static int
create_body(struct db_conn *c, void *cls)
{
	struct write_tx *t = cls;
	char uid[37];

	db_secret_free(t->result);
	t->result = NULL;
	if (crypto_uuid4(uid) != CRYPTO_OK)
		return DB_ERR_INTERNAL;
	return write_params_run(c, t, ST_SECRET_INSERT, uid, 1);
}

static int
update_body(struct db_conn *c, void *cls)
{
	struct write_tx *t = cls;
	struct db_param p[] = { { t->name, 0, 0 } };
	char uid[37];
	long long version;
	PGresult *res = NULL;
	int r;

	db_secret_free(t->result);
	t->result = NULL;
	r = db_exec(c, ST_SECRET_LOCK, p, 1, &res);
	if (r != DB_OK)
		return r;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return DB_ERR_NOT_FOUND;
	}
	snprintf(uid, sizeof(uid), "%s", PQgetvalue(res, 0, 0));
	version = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	return write_params_run(c, t, ST_SECRET_UPDATE, uid, version + 1);
}

static int
write_run(struct db_conn *c, const struct db_sealer *sl, db_tx_body body, const char *name, json_t *labels,
	  json_t *annotations, json_t *data, const struct db_audit *audit, struct db_secret **out)
{
	struct write_tx t = { sl, name, labels, annotations, data, audit, NULL };
	int r;

	*out = NULL;
	if (sl->enabled && sl->keyring == NULL)
		return DB_ERR_KEY_UNAVAILABLE;
	/* A write that found the reservation empty is run again after reserving (twice covers a race). */
	for (int attempt = 0; attempt < 3; attempt++) {
		r = db_tx_run(c, DB_TX_WRITE, body, &t);
		if (r != DB_ERR_NEED_BUDGET)
			break;
		r = budget_refill(c, crypto_keyring_current_term(sl->keyring));
		if (r != DB_OK)
			break;
		r = DB_ERR_BUSY;
	}
	if (r != DB_OK) {
		db_secret_free(t.result);
		return r;
	}
	*out = t.result;
	return DB_OK;
}

int
db_secret_create(struct db_conn *c, const struct db_sealer *sl, const char *name, json_t *labels,
		 json_t *annotations, json_t *data, const struct db_audit *audit, struct db_secret **out)
{
	return write_run(c, sl, create_body, name, labels, annotations, data, audit, out);
}

int
db_secret_update(struct db_conn *c, const struct db_sealer *sl, const char *name, json_t *labels,
		 json_t *annotations, json_t *data, const struct db_audit *audit, struct db_secret **out)
{
	return write_run(c, sl, update_body, name, labels, annotations, data, audit, out);
}

struct get_tx {
	const struct db_sealer *sl;
	const char *name;
	struct db_secret *result;
};

static int
get_body(struct db_conn *c, void *cls)
{
	struct get_tx *t = cls;
	struct db_param p[] = { { t->name, 0, 0 } };
	PGresult *res = NULL;
	int r;

	db_secret_free(t->result);
	t->result = NULL;
	r = db_exec(c, ST_SECRET_GET, p, 1, &res);
	if (r != DB_OK)
		return r;
	r = PQntuples(res) == 1 ? row_to_secret(t->sl, res, 0, &t->result) : DB_ERR_NOT_FOUND;
	PQclear(res);
	if (r == DB_OK)
		r = secret_envs_load(c, t->result);
	return r;
}

int
db_secret_get(struct db_conn *c, const struct db_sealer *sl, const char *name, struct db_secret **out)
{
	struct get_tx t = { sl, name, NULL };
	int r;

	*out = NULL;
	if (sl->enabled && sl->keyring == NULL)
		return DB_ERR_KEY_UNAVAILABLE;
	r = db_tx_run(c, DB_TX_READ, get_body, &t);
	if (r != DB_OK) {
		db_secret_free(t.result);
		return r;
	}
	*out = t.result;
	return DB_OK;
}

struct list_tx {
	const struct db_sealer *sl;
	long long offset;
	int limit;
	struct db_secret **items;
	size_t n;
	long long total;
};

static void
list_reset(struct list_tx *t)
{
	for (size_t i = 0; i < t->n; i++)
		db_secret_free(t->items[i]);
	free(t->items);
	t->items = NULL;
	t->n = 0;
	t->total = 0;
}

static int
list_body(struct db_conn *c, void *cls)
{
	struct list_tx *t = cls;
	char limit_s[24], offset_s[24];
	struct db_param p[] = { { limit_s, 0, 0 }, { offset_s, 0, 0 } };
	PGresult *res = NULL;
	int r, rows;

	list_reset(t);
	r = db_exec(c, ST_SECRET_COUNT, NULL, 0, &res);
	if (r != DB_OK)
		return r;
	t->total = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	snprintf(limit_s, sizeof(limit_s), "%d", t->limit);
	snprintf(offset_s, sizeof(offset_s), "%lld", t->offset);
	r = db_exec(c, ST_SECRET_LIST, p, 2, &res);
	if (r != DB_OK)
		return r;
	rows = PQntuples(res);
	t->items = calloc(rows > 0 ? (size_t)rows : 1, sizeof(*t->items));
	if (t->items == NULL) {
		r = DB_ERR_ALLOC;
		goto out;
	}
	for (int i = 0; i < rows; i++) {
		r = row_to_secret(t->sl, res, i, &t->items[t->n]);
		if (r != DB_OK)
			goto out;
		t->n++;
	}
	r = secret_envs_load_page(c, t->items, t->n);
out:
	PQclear(res);
	return r;
}

int
db_secret_list(struct db_conn *c, const struct db_sealer *sl, long long offset, int limit,
	       struct db_secret ***items, size_t *n, long long *total)
{
	struct list_tx t = { sl, offset, limit, NULL, 0, 0 };
	int r;

	*items = NULL;
	*n = 0;
	*total = 0;
	if (sl->enabled && sl->keyring == NULL)
		return DB_ERR_KEY_UNAVAILABLE;
	r = db_tx_run(c, DB_TX_READ, list_body, &t);
	if (r != DB_OK) {
		list_reset(&t);
		return r;
	}
	*items = t.items;
	*n = t.n;
	*total = t.total;
	return DB_OK;
}

struct delete_tx {
	const char *name;
	const struct db_audit *audit;
	json_t *mapped_in; /* on DB_ERR_CONFLICT */
};

static int
delete_body(struct db_conn *c, void *cls)
{
	struct delete_tx *t = cls;
	struct db_param p[] = { { t->name, 0, 0 } };
	PGresult *res = NULL;
	int r;

	json_decref(t->mapped_in);
	t->mapped_in = NULL;
	r = db_exec_stmt(c, &st_secret_delete_lock, p, 1, &res);
	if (r == DB_OK && PQntuples(res) != 1)
		r = DB_ERR_NOT_FOUND;
	PQclear(res);
	if (r != DB_OK)
		return r;
	/* A mapping never dangles: refuse while any environment maps the secret (the FK is the backstop). */
	r = db_exec_stmt(c, &st_secret_envs, p, 1, &res);
	if (r == DB_OK)
		r = db_rows_json(res, 0, 0, false, t->name, &t->mapped_in);
	PQclear(res);
	if (r != DB_OK)
		return r;
	if (json_array_size(t->mapped_in) > 0)
		return DB_ERR_CONFLICT;
	r = db_exec(c, ST_SECRET_DELETE, p, 1, &res);
	if (r == DB_OK && strcmp(PQcmdTuples(res), "1") != 0)
		r = DB_ERR_NOT_FOUND;
	PQclear(res);
	if (r == DB_OK)
		r = db_audit_insert(c, t->audit);
	return r;
}

int
db_secret_delete(struct db_conn *c, const char *name, const struct db_audit *audit, json_t **mapped_in)
{
	struct delete_tx t = { name, audit, NULL };
	int r;

	if (mapped_in != NULL)
		*mapped_in = NULL;
	r = db_tx_run(c, DB_TX_WRITE, delete_body, &t);
	if (r == DB_ERR_CONFLICT && t.mapped_in == NULL)
		t.mapped_in = json_array(); /* the foreign key refused: a mapping made concurrently */
	if (r == DB_ERR_CONFLICT && mapped_in != NULL) {
		*mapped_in = t.mapped_in;
		t.mapped_in = NULL;
	}
	json_decref(t.mapped_in);
	return r;
}
