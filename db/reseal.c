/*
 * db reseal: stored ciphertexts moved forward in bounded batches, one transaction each, with writes going on
 * beside them: at start every secret (and kept version) below the database's ciphertext version, then the
 * lowest version opened raised to it (db_reseal); the rewrap also moves every one under an older data-key
 * term to the newest (db_rewrap, db/rewrap.c). Rows are opened and sealed again here, in the process: no
 * plaintext leaves it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/buf.h"
#include "crypto/log.h"
#include "db/internal.h"

/*
 * Secrets per transaction at start: each is one UPDATE round trip, and the whole batch (its wait for the
 * lock included) must fit in one database.requestTimeoutSeconds, even 20 ms away from PostgreSQL.
 */
#define RESEAL_BATCH 64

/* The DEK term in a ciphertext's header (crypto.h: format(1) | term(4, big endian) | ...). */
#define RESEAL_TERM_OF "((get_byte(data, 1)::bigint << 24) | (get_byte(data, 2) << 16) | (get_byte(data, 3) << 8) | get_byte(data, 4))"
/* Behind: below the version written, or ($2/$3) under a term below the target (0: the version only). */
#define RESEAL_BEHIND(term_param)                                                                                        \
	"(length(data) < 5 OR get_byte(data, 0) < (SELECT seal_version FROM cmf_encryption_state WHERE id = 1) OR "    \
	RESEAL_TERM_OF " < " term_param ")"

/*
 * Keyset order by name: each row is visited once, even one that does not open and so stays behind.
 * FOR UPDATE: a write racing the batch either commits first (and the batch sees its new ciphertext, already
 * under the newest term, or re-seals that) or waits for the batch; it is never overwritten with stale data.
 */
static const struct db_statement st_reseal_batch = {
	"reseal_batch",
	"SELECT name, uid::text, version, data FROM cmf_secrets WHERE sealed AND name > $1 AND " RESEAL_BEHIND("$2::bigint")
	" ORDER BY name LIMIT $3::integer FOR UPDATE",
	3,
};
/* A batch's new ciphertexts in one statement (arrays), not one round trip and one trigger call per row. */
static const struct db_statement st_reseal_update = {
	"reseal_update",
	"UPDATE cmf_secrets s SET data = u.data FROM unnest($1::text[], $2::bytea[]) AS u(name, data) WHERE s.name = u.name",
	2,
};
/* Then the kept versions (the current one among them: its own copy), keyset order by (name, version). */
static const struct db_statement st_reseal_versions_batch = {
	"reseal_versions_batch",
	"SELECT name, uid::text, version, data FROM cmf_secret_versions WHERE sealed AND data IS NOT NULL AND "
	"(name, version) > ($1, $4::bigint) AND " RESEAL_BEHIND("$2::bigint") " ORDER BY name, version LIMIT $3::integer "
	"FOR UPDATE",
	4,
};
static const struct db_statement st_reseal_versions_update = {
	"reseal_versions_update",
	"UPDATE cmf_secret_versions v SET data = u.data FROM unnest($1::text[], $2::bigint[], $3::bytea[]) AS "
	"u(name, version, data) WHERE v.name = u.name AND v.version = u.version",
	3,
};
static const struct db_statement st_reseal_count = {
	"reseal_count",
	"SELECT (SELECT count(*) FROM cmf_secrets WHERE sealed AND " RESEAL_BEHIND("$1::bigint") ") + "
	"(SELECT count(*) FROM cmf_secret_versions WHERE sealed AND data IS NOT NULL AND " RESEAL_BEHIND("$1::bigint") ")",
	1,
};
static const struct db_statement st_formats_raise = {
	"formats_raise", "UPDATE cmf_encryption_state SET min_open_version = seal_version WHERE id = 1", 0,
};
static const struct db_statement st_formats_read = {
	"formats_read", "SELECT seal_version, min_open_version FROM cmf_encryption_state WHERE id = 1", 0,
};
/* A re-seal changes ciphertexts, never what they hold: the replicas' caches stay (migration 10). */
static const struct db_statement st_quiet = { "reseal_quiet", "SELECT set_config('cmf.quiet', 'on', true)", 0 };

struct reseal_tx {
	const struct db_sealer *sl;
	const struct db_reseal_opts *o;
	bool versions;                /* the secrets are done: the kept versions now */
	char after[256];              /* the last name of the previous batch ("" at first; names ≤ 253) */
	char after_version[24];       /* and, for versions, its version ("0" at first) */
	char term[16], limit[16];     /* the target term and the batch size, as parameters */
	long long unreadable_before;  /* in the batches before this one */
	/* outputs of one attempt */
	char last[256], last_version[24];
	long long resealed, unreadable;
	bool phase_done, done;
	int seal, min; /* the database's versions after the last batch */
};

/* A batch's updates as PostgreSQL array literals (text form): names, versions, ciphertexts (hex). */
/*
 * A batch's updates: the names and versions as array literals (text), the ciphertexts as a bytea[] in
 * PostgreSQL's binary array format (array_send: ndim, flags, element type, then the dimension and each
 * element as a length and its bytes), so nothing is hex-encoded here or parsed from hex by the server.
 * Ciphertexts only: nothing secret is held in these buffers.
 */
struct reseal_arrays {
	struct crypto_buf *names, *versions;
	uint8_t *data;
	size_t len, cap, count;
};

#define BYTEA_OID 17
#define ARRAY_HEADER_LEN 20

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Room for `more` bytes in the binary array (doubling, so a batch grows it a few times at most). */
static int
data_reserve(struct reseal_arrays *a, size_t more)
{
	size_t cap = a->cap > 0 ? a->cap : 65536;
	uint8_t *p;

	if (more > SIZE_MAX / 2 - a->len)
		return DB_ERR_ALLOC;
	while (cap < a->len + more)
		cap *= 2;
	if (cap == a->cap)
		return DB_OK;
	if ((p = realloc(a->data, cap)) == NULL)
		return DB_ERR_ALLOC;
	a->data = p;
	a->cap = cap;
	return DB_OK;
}

/* Append `s` as a quoted array element: '"' and '\\' escaped, as array input requires. */
static int
put_quoted(struct crypto_buf *b, const char *s)
{
	int r = crypto_buf_put(b, crypto_buf_len(b) > 1 ? ",\"" : "\"", crypto_buf_len(b) > 1 ? 2 : 1);

	for (; r == CRYPTO_OK && *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			r = crypto_buf_put(b, "\\", 1);
		if (r == CRYPTO_OK)
			r = crypto_buf_put(b, s, 1);
	}
	return r == CRYPTO_OK ? crypto_buf_put(b, "\"", 1) : r;
}

/* Append a ciphertext as an element of the binary bytea[]. */
static int
put_bytea(struct reseal_arrays *a, const uint8_t *data, size_t len)
{
	int r;

	if (len > INT32_MAX)
		return DB_ERR_TOO_LARGE;
	if ((r = data_reserve(a, 4 + len)) != DB_OK)
		return r;
	put_be32(a->data + a->len, (uint32_t)len);
	memcpy(a->data + a->len + 4, data, len);
	a->len += 4 + len;
	a->count++;
	return DB_OK;
}

/* Open and seal again one row of the batch, into the arrays; a row that does not open is counted and left. */
static int
reseal_row(struct reseal_tx *t, struct reseal_arrays *a, PGresult *rows, int i)
{
	const char *name = PQgetvalue(rows, i, 0), *uid = PQgetvalue(rows, i, 1);
	long long version = strtoll(PQgetvalue(rows, i, 2), NULL, 10);
	uint8_t *blob = NULL;
	size_t bloblen = 0;
	int r, cr = CRYPTO_OK;

	r = db_seal_reseal(t->sl, name, uid, version, PQgetvalue(rows, i, 3), &blob, &bloblen);
	if (r == DB_ERR_CORRUPT || r == DB_ERR_RETIRED) {
		t->unreadable++;
		return DB_OK;
	}
	if (r == DB_OK) {
		cr = put_quoted(a->names, name);
		if (cr == CRYPTO_OK && t->versions)
			cr = crypto_buf_put_str(a->versions, crypto_buf_len(a->versions) > 1 ? "," : "");
		if (cr == CRYPTO_OK && t->versions)
			cr = crypto_buf_put_str(a->versions, PQgetvalue(rows, i, 2));
		if (cr != CRYPTO_OK)
			r = cr == CRYPTO_ERR_ALLOC || cr == CRYPTO_ERR_TOO_LARGE ? DB_ERR_ALLOC : DB_ERR_INTERNAL;
		if (r == DB_OK)
			r = put_bytea(a, blob, bloblen);
	}
	crypto_freezero(blob, bloblen);
	if (r == DB_OK)
		t->resealed++;
	return r;
}

/* Bytes per part of a batch: far below PostgreSQL's 1 GB per value, and a bounded memory cost here. */
#define RESEAL_FLUSH_BYTES (32u * 1024u * 1024u)

static int
arrays_open(struct reseal_arrays *a, size_t expect)
{
	/* Caps far above a part: the cap is a guard, not a limit (one row is at most 16 MiB sealed). */
	if (crypto_buf_new(SIZE_MAX / 4, &a->names) != CRYPTO_OK || crypto_buf_new(SIZE_MAX / 4, &a->versions) != CRYPTO_OK ||
	    crypto_buf_put_str(a->names, "{") != CRYPTO_OK || crypto_buf_put_str(a->versions, "{") != CRYPTO_OK)
		return DB_ERR_ALLOC;
	a->len = a->count = 0;
	/* Sized once for the batch (its rows' stored lengths), not grown row by row. */
	if (data_reserve(a, ARRAY_HEADER_LEN + (expect < RESEAL_FLUSH_BYTES ? expect : RESEAL_FLUSH_BYTES)) != DB_OK)
		return DB_ERR_ALLOC;
	a->len = ARRAY_HEADER_LEN;
	return DB_OK;
}

static void
arrays_close(struct reseal_arrays *a)
{
	crypto_buf_free(a->names);
	crypto_buf_free(a->versions);
	free(a->data);
	memset(a, 0, sizeof(*a));
}

/* The batch's UPDATE (one per part). */
static int
reseal_store(struct db_conn *c, struct reseal_tx *t, struct reseal_arrays *a)
{
	PGresult *res = NULL;
	int r;

	if (crypto_buf_put_str(a->names, "}") != CRYPTO_OK || crypto_buf_put_str(a->versions, "}") != CRYPTO_OK)
		return DB_ERR_ALLOC;
	put_be32(a->data, 1);			/* one dimension */
	put_be32(a->data + 4, 0);		/* no NULL element */
	put_be32(a->data + 8, BYTEA_OID);	/* of bytea */
	put_be32(a->data + 12, (uint32_t)a->count); /* elements */
	put_be32(a->data + 16, 1);		/* from index 1 */
	if (t->versions) {
		struct db_param p[] = { { crypto_buf_str(a->names), 0, 0 }, { crypto_buf_str(a->versions), 0, 0 },
					{ (const char *)a->data, (int)a->len, 1 } };

		r = db_exec_stmt(c, &st_reseal_versions_update, p, 3, &res);
	} else {
		struct db_param p[] = { { crypto_buf_str(a->names), 0, 0 }, { (const char *)a->data, (int)a->len, 1 } };

		r = db_exec_stmt(c, &st_reseal_update, p, 2, &res);
	}
	PQclear(res);
	return r;
}

/* The last batch: raise the lowest version opened if nothing stayed behind, and read both versions. */
static int
reseal_finish(struct db_conn *c, struct reseal_tx *t)
{
	PGresult *res = NULL;
	int r = DB_OK;

	/*
	 * Every secret that opens is in the database's version now. The lowest version opened is raised only
	 * when none stayed behind: one that did not open (a data key missing after a partial restore, a
	 * damaged row) could still be repaired and re-sealed, and raising it would refuse it for good.
	 */
	if (t->unreadable_before + t->unreadable == 0) {
		r = db_exec_stmt(c, &st_formats_raise, NULL, 0, &res);
		PQclear(res);
		if (r != DB_OK)
			return r;
	}
	r = db_exec_stmt(c, &st_formats_read, NULL, 0, &res);
	if (r == DB_OK && PQntuples(res) == 1) {
		t->seal = atoi(PQgetvalue(res, 0, 0));
		t->min = atoi(PQgetvalue(res, 0, 1));
		t->done = true;
	}
	PQclear(res);
	return r;
}

static int
batch_body(struct db_conn *c, void *cls)
{
	struct reseal_tx *t = cls;
	struct db_param p[] = { { t->after, 0, 0 }, { t->term, 0, 0 }, { t->limit, 0, 0 }, { t->after_version, 0, 0 } };
	PGresult *rows = NULL, *res = NULL;
	int n, r;

	t->resealed = t->unreadable = 0;
	t->phase_done = t->done = false;
	snprintf(t->last, sizeof(t->last), "%s", t->after);
	snprintf(t->last_version, sizeof(t->last_version), "%s", t->after_version);
	if (t->o->begin != NULL) {
		r = t->o->begin(t->o->cls, c);
	} else {
		r = db_exec_stmt(c, &db_st_init_lock, NULL, 0, &res);
		PQclear(res);
		res = NULL;
	}
	if (r == DB_OK) {
		r = db_exec_stmt(c, &st_quiet, NULL, 0, &res);
		PQclear(res);
	}
	if (r != DB_OK)
		return r;
	r = t->versions ? db_exec_stmt(c, &st_reseal_versions_batch, p, 4, &rows)
			: db_exec_stmt(c, &st_reseal_batch, p, 3, &rows);
	if (r != DB_OK)
		return r;
	n = PQntuples(rows);
	{
		struct reseal_arrays a;
		long long stored = 0;
		size_t expect = 0;

		/* The stored hex text is 2 + 2 × the bytes; the new ciphertexts are as long, plus a length each. */
		for (int i = 0; i < n; i++)
			expect += (size_t)PQgetlength(rows, i, 3) / 2 + 4;
		memset(&a, 0, sizeof(a));
		r = arrays_open(&a, expect);
		for (int i = 0; i < n && r == DB_OK; i++) {
			r = reseal_row(t, &a, rows, i);
			/* PostgreSQL takes no value over 1 GB, and rows may be up to 16 MiB sealed: store in parts. */
			if (r == DB_OK && t->resealed > stored && a.len > RESEAL_FLUSH_BYTES) {
				r = reseal_store(c, t, &a);
				stored = t->resealed;
				arrays_close(&a);
				if (r == DB_OK)
					r = arrays_open(&a, expect);
			}
		}
		if (r == DB_OK && t->resealed > stored)
			r = reseal_store(c, t, &a);
		arrays_close(&a);
	}
	if (r == DB_OK && n > 0) {
		snprintf(t->last, sizeof(t->last), "%s", PQgetvalue(rows, n - 1, 0));
		snprintf(t->last_version, sizeof(t->last_version), "%s", PQgetvalue(rows, n - 1, 2));
	}
	PQclear(rows);
	if (r != DB_OK)
		return r;
	t->phase_done = n < t->o->batch;
	if (t->phase_done && t->versions)
		r = reseal_finish(c, t);
	if (r == DB_OK && t->o->end != NULL)
		r = t->o->end(t->o->cls, c, t->resealed, t->unreadable, t->done);
	return r;
}

int
db_reseal_run(struct db_conn *c, const struct db_sealer *sl, const struct db_reseal_opts *o,
	      struct db_reseal_result *res)
{
	struct reseal_tx t = { .sl = sl, .o = o, .after_version = "0" };
	int r = DB_OK;

	memset(res, 0, sizeof(*res));
	if (!sl->enabled || sl->keyring == NULL)
		return sl->enabled ? DB_ERR_KEY_UNAVAILABLE : DB_OK;
	snprintf(t.term, sizeof(t.term), "%u", (unsigned)o->below_term);
	snprintf(t.limit, sizeof(t.limit), "%d", o->batch);
	while (!t.done) {
		r = db_tx_run(c, DB_TX_LOCKED, batch_body, &t);
		if (r == DB_ERR_NEED_BUDGET) {
			/* The reservation ran dry mid-batch: reserve, then run the batch again (it rolled back). */
			r = db_seal_reserve(c, sl);
			if (r != DB_OK)
				break;
			continue;
		}
		if (r != DB_OK)
			break;
		res->resealed += t.resealed;
		res->unreadable += t.unreadable;
		t.unreadable_before += t.unreadable;
		if (o->progress != NULL)
			o->progress(o->cls, res->resealed, res->unreadable);
		snprintf(t.after, sizeof(t.after), "%s", t.last);
		snprintf(t.after_version, sizeof(t.after_version), "%s", t.last_version);
		if (t.phase_done && !t.versions) {
			t.versions = true;
			snprintf(t.after, sizeof(t.after), "%s", "");
			snprintf(t.after_version, sizeof(t.after_version), "%s", "0");
		}
	}
	if (r == DB_OK) {
		res->older_refused = t.min >= t.seal;
		db_seal_formats_set(t.seal, t.min);
	}
	return r;
}

int
db_reseal(struct db_conn *c, const struct db_sealer *sl, struct db_reseal_result *res)
{
	const struct db_reseal_opts o = { .batch = RESEAL_BATCH };

	return db_reseal_run(c, sl, &o, res);
}

struct count_tx {
	const char *term;
	long long n;
};

static int
count_body(struct db_conn *c, void *cls)
{
	struct count_tx *t = cls;
	struct db_param p[] = { { t->term, 0, 0 } };
	PGresult *res = NULL;
	int r;

	r = db_exec_stmt(c, &st_reseal_count, p, 1, &res);
	if (r == DB_OK)
		t->n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return r;
}

int
db_reseal_count(struct db_conn *c, uint32_t below_term, long long *n)
{
	char term[16];
	struct count_tx t = { term, 0 };
	int r;

	snprintf(term, sizeof(term), "%u", (unsigned)below_term);
	r = db_tx_run(c, DB_TX_READ, count_body, &t);
	*n = r == DB_OK ? t.n : 0;
	return r;
}
