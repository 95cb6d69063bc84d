/* db secrets: CMF Secrets stored with spec.data sealed under the current DEK (or plaintext if disabled). */
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmf/log.h"
#include "db/internal.h"

/* Column order of SECRET_COLS in db/conn.c. */
enum { COL_NAME, COL_UID, COL_VERSION, COL_LABELS, COL_ANNOTATIONS, COL_SEALED, COL_DATA, COL_CREATED, COL_UPDATED };

/* "secret/<uid>/<version>": the AAD identity binding a ciphertext to its row and version. */
static void
secret_ident(char *buf, size_t len, const char *uid, long long version)
{
	snprintf(buf, len, "secret/%s/%lld", uid, version);
}

void
db_secret_free(struct db_secret *s)
{
	if (s == NULL)
		return;
	free(s->name);
	json_decref(s->labels);
	json_decref(s->annotations);
	json_decref(s->data);
	free(s);
}

/*
 * Serialize `data` and seal it for (uid, version), counting the encryption against the DEK's nonce
 * budget in the same transaction. *out is the bytes to store (ciphertext, or JSON text when disabled).
 */
static int
seal_data(struct db_conn *c, const struct db_sealer *sl, const char *uid, long long version, json_t *data,
	  uint8_t **out, size_t *outlen)
{
	char ident[96], term_s[16];
	char *text = NULL;
	uint8_t *ct = NULL;
	size_t ctlen = 0, textlen;
	uint32_t term = 0;
	PGresult *res = NULL;
	int r = DB_OK, cr;

	*out = NULL;
	*outlen = 0;
	if (sl->enabled && sl->keyring == NULL)
		return DB_ERR_KEY_UNAVAILABLE;
	text = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS);
	if (text == NULL)
		return DB_ERR_ALLOC;
	textlen = strlen(text);
	if (!sl->enabled) {
		*out = (uint8_t *)text;
		*outlen = textlen;
		return DB_OK;
	}
	secret_ident(ident, sizeof(ident), uid, version);
	cr = crypto_keyring_seal(sl->keyring, (const uint8_t *)ident, strlen(ident), (const uint8_t *)text,
				 textlen, &ct, &ctlen);
	if (cr != CRYPTO_OK) {
		cmf_error("%s: sealing failed: %s", __func__, crypto_strerror(cr));
		r = cr == CRYPTO_ERR_ALLOC ? DB_ERR_ALLOC : cr == CRYPTO_ERR_NO_KEY ? DB_ERR_KEY_UNAVAILABLE
										    : DB_ERR_INTERNAL;
		goto out;
	}
	if (crypto_aead_term(ct, ctlen, &term) != CRYPTO_OK) {
		r = DB_ERR_INTERNAL;
		goto out;
	}
	snprintf(term_s, sizeof(term_s), "%" PRIu32, term);
	{
		struct db_param p[] = { { term_s, 0, 0 } };

		r = db_exec(c, ST_DEK_COUNT, p, 1, &res);
	}
	if (r != DB_OK)
		goto out;
	if (PQntuples(res) != 1) {
		cmf_error("%s: data key term %" PRIu32 " is not in cmf_deks", __func__, term);
		r = DB_ERR_CORRUPT;
		goto out;
	}
	if (strtoull(PQgetvalue(res, 0, 0), NULL, 10) > CRYPTO_DEK_MAX_ENCRYPTIONS) {
		cmf_error("data key term %" PRIu32 " reached its limit of %" PRIu64
			  " encryptions: rotate the data key before writing more secrets",
			  term, CRYPTO_DEK_MAX_ENCRYPTIONS);
		r = DB_ERR_NONCE_BUDGET;
		goto out;
	}
	*out = ct;
	*outlen = ctlen;
	ct = NULL;
out:
	PQclear(res);
	free(ct);
	OPENSSL_cleanse(text, textlen);
	free(text);
	return r;
}

/* Decode one row; opens the data (the plaintext buffer is wiped once parsed). */
static int
row_to_secret(const struct db_sealer *sl, PGresult *res, int row, struct db_secret **out)
{
	char ident[96];
	struct db_secret *s = NULL;
	unsigned char *raw = NULL;
	uint8_t *pt = NULL;
	size_t rawlen = 0, ptlen = 0;
	bool sealed = strcmp(PQgetvalue(res, row, COL_SEALED), "t") == 0;
	json_error_t jerr;
	int r = DB_OK, cr;

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
	raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, COL_DATA), &rawlen);
	if (s->name == NULL || raw == NULL) {
		r = DB_ERR_ALLOC;
		goto out;
	}
	if (s->labels == NULL || s->annotations == NULL) {
		cmf_error("%s: secret %s: stored labels/annotations are not JSON", __func__, s->name);
		r = DB_ERR_CORRUPT;
		goto out;
	}
	/* The row's form must match the database's mode: a plaintext row in an encrypted database was
	 * not written by cmf, and is refused rather than served. */
	if (sealed != sl->enabled) {
		cmf_error("%s: secret %s is stored %s but the database has encryption %s", __func__, s->name,
			  sealed ? "encrypted" : "in plaintext", sl->enabled ? "enabled" : "disabled");
		r = DB_ERR_CORRUPT;
		goto out;
	}
	if (sealed) {
		if (sl->keyring == NULL) {
			r = DB_ERR_KEY_UNAVAILABLE;
			goto out;
		}
		secret_ident(ident, sizeof(ident), s->uid, s->version);
		cr = crypto_keyring_open(sl->keyring, (const uint8_t *)ident, strlen(ident), raw, rawlen, &pt,
					 &ptlen);
		if (cr != CRYPTO_OK) {
			cmf_error("%s: secret %s (uid %s, version %lld) does not decrypt: %s", __func__, s->name,
				  s->uid, s->version, crypto_strerror(cr));
			r = cr == CRYPTO_ERR_ALLOC ? DB_ERR_ALLOC : DB_ERR_CORRUPT;
			goto out;
		}
		s->data = json_loadb((const char *)pt, ptlen, 0, &jerr);
	} else {
		s->data = json_loadb((const char *)raw, rawlen, 0, &jerr);
	}
	if (!json_is_object(s->data)) {
		cmf_error("%s: secret %s: stored data is not a JSON object", __func__, s->name);
		r = DB_ERR_CORRUPT;
		goto out;
	}
	*out = s;
	s = NULL;
out:
	if (pt != NULL) {
		OPENSSL_cleanse(pt, ptlen);
		free(pt);
	}
	if (raw != NULL) {
		OPENSSL_cleanse(raw, rawlen);
		PQfreemem(raw);
	}
	db_secret_free(s);
	return r;
}

struct write_tx {
	const struct db_sealer *sl;
	const char *name;
	json_t *labels, *annotations, *data;
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

	r = seal_data(c, t->sl, uid, version, t->data, &blob, &bloblen);
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
	  json_t *annotations, json_t *data, struct db_secret **out)
{
	struct write_tx t = { sl, name, labels, annotations, data, NULL };
	int r;

	*out = NULL;
	if (sl->enabled && sl->keyring == NULL)
		return DB_ERR_KEY_UNAVAILABLE;
	r = db_tx_run(c, DB_TX_WRITE, body, &t);
	if (r != DB_OK) {
		db_secret_free(t.result);
		return r;
	}
	*out = t.result;
	return DB_OK;
}

int
db_secret_create(struct db_conn *c, const struct db_sealer *sl, const char *name, json_t *labels,
		 json_t *annotations, json_t *data, struct db_secret **out)
{
	return write_run(c, sl, create_body, name, labels, annotations, data, out);
}

int
db_secret_update(struct db_conn *c, const struct db_sealer *sl, const char *name, json_t *labels,
		 json_t *annotations, json_t *data, struct db_secret **out)
{
	return write_run(c, sl, update_body, name, labels, annotations, data, out);
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

static int
delete_body(struct db_conn *c, void *cls)
{
	const char *name = cls;
	struct db_param p[] = { { name, 0, 0 } };
	PGresult *res = NULL;
	int r;

	r = db_exec(c, ST_SECRET_DELETE, p, 1, &res);
	if (r == DB_OK && strcmp(PQcmdTuples(res), "1") != 0)
		r = DB_ERR_NOT_FOUND;
	PQclear(res);
	return r;
}

int
db_secret_delete(struct db_conn *c, const char *name)
{
	return db_tx_run(c, DB_TX_WRITE, delete_body, (void *)(uintptr_t)name);
}
