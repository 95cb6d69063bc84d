/* db rotate: new data-key (DEK) terms, on demand or once the current term is used up, and the status. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/log.h"
#include "db/internal.h"

static const struct db_statement st_rot_state = {
	"rot_state", "SELECT enabled, key_id FROM cmf_encryption_state WHERE id = 1", 0,
};
static const struct db_statement st_rot_max = { "rot_max", "SELECT coalesce(max(term), 0) FROM cmf_deks", 0 };
static const struct db_statement st_rot_insert = {
	"rot_insert", "INSERT INTO cmf_deks (term, wrapped) VALUES ($1::integer, $2::bytea)", 2,
};
static const struct db_statement st_status_state = {
	"status_state", "SELECT enabled, coalesce(key_id, ''), seal_version FROM cmf_encryption_state WHERE id = 1", 0,
};
static const struct db_statement st_status_deks = {
	"status_deks",
	"SELECT term, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), encryptions FROM cmf_deks "
	"ORDER BY term",
	0,
};
/*
 * Ciphertexts by the DEK term in their header (crypto.h: format(1) | term(4, big endian) | ...): the
 * secrets (their current version) and every kept version (the current one included), destroyed ones left
 * out. A full scan of both tables: a status read, not a hot path.
 */
static const struct db_statement st_status_rows = {
	"status_rows",
	"SELECT term, sum(secrets)::bigint, sum(versions)::bigint FROM ("
	" SELECT (get_byte(data, 1)::bigint << 24) | (get_byte(data, 2) << 16) | (get_byte(data, 3) << 8) |"
	"  get_byte(data, 4) AS term, count(*) AS secrets, 0 AS versions"
	" FROM cmf_secrets WHERE sealed AND length(data) >= 5 GROUP BY 1"
	" UNION ALL"
	" SELECT (get_byte(data, 1)::bigint << 24) | (get_byte(data, 2) << 16) | (get_byte(data, 3) << 8) |"
	"  get_byte(data, 4), 0, count(*)"
	" FROM cmf_secret_versions WHERE sealed AND data IS NOT NULL AND length(data) >= 5 GROUP BY 1"
	") AS t GROUP BY term ORDER BY term",
	0,
};

struct rotate_tx {
	const struct crypto_key *master;
	uint32_t expect;
	const struct db_audit *audit;
	uint32_t term;
	bool created;
	char *why;
	size_t whylen;
};

/* The database's recorded key must be `master`'s: a term wrapped by another key could never be opened. */
static int
rotate_check_key(struct rotate_tx *t, struct db_conn *c)
{
	char kid[CRYPTO_KEY_ID_SIZE];
	PGresult *res = NULL;
	int r;

	if (crypto_key_id(t->master, kid) != CRYPTO_OK)
		return DB_ERR_INTERNAL;
	r = db_exec_stmt(c, &st_rot_state, NULL, 0, &res);
	if (r != DB_OK)
		return r;
	if (PQntuples(res) != 1) {
		snprintf(t->why, t->whylen, "the database has not been initialized");
		r = DB_ERR_NOT_INITIALIZED;
	} else if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		snprintf(t->why, t->whylen, "the database was initialized with encryption disabled: it has no data key");
		r = DB_ERR_MODE_MISMATCH;
	} else if (strcmp(PQgetvalue(res, 0, 1), kid) != 0) {
		snprintf(t->why, t->whylen,
			 "the configured key (key id %s) is not the database's key (key id %s): a data key wrapped by it "
			 "could never be opened",
			 kid, PQgetvalue(res, 0, 1));
		r = DB_ERR_KEY_MISMATCH;
	}
	PQclear(res);
	return r;
}

static int
rotate_body(struct db_conn *c, void *cls)
{
	struct rotate_tx *t = cls;
	struct crypto_keyring *kr = NULL;
	uint8_t *wrapped = NULL;
	size_t wlen = 0;
	PGresult *res = NULL;
	char term_s[16], resource[32];
	uint32_t max;
	int r, cr;

	t->term = 0;
	t->created = false;
	/* Replicas crossing the threshold together queue here; each then sees the term the first one made. */
	r = db_exec_stmt(c, &db_st_init_lock, NULL, 0, &res);
	PQclear(res);
	res = NULL;
	if (r != DB_OK)
		return r;
	if ((r = rotate_check_key(t, c)) != DB_OK)
		return r;
	r = db_exec_stmt(c, &st_rot_max, NULL, 0, &res);
	if (r != DB_OK)
		return r;
	max = (uint32_t)strtoul(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	res = NULL;
	if (t->expect != 0 && max != t->expect) {
		t->term = max; /* another process rotated first */
		return DB_OK;
	}
	if (max == 0 || max == UINT32_MAX) {
		snprintf(t->why, t->whylen, "the database holds no data key to rotate from");
		return DB_ERR_CORRUPT;
	}
	/* A keyring of its own: the DEK is generated and wrapped there, and wiped with it at once. */
	if (crypto_keyring_new(&kr) != CRYPTO_OK)
		return DB_ERR_ALLOC;
	cr = crypto_keyring_create(kr, t->master, max + 1, &wrapped, &wlen);
	crypto_keyring_free(kr);
	if (cr != CRYPTO_OK) {
		snprintf(t->why, t->whylen, "cannot create data key term %" PRIu32 ": %s", max + 1, crypto_strerror(cr));
		return cr == CRYPTO_ERR_ALLOC ? DB_ERR_ALLOC : DB_ERR_INTERNAL;
	}
	snprintf(term_s, sizeof(term_s), "%" PRIu32, max + 1);
	{
		struct db_param p[] = { { term_s, 0, 0 }, { (const char *)wrapped, (int)wlen, 1 } };

		r = db_exec_stmt(c, &st_rot_insert, p, 2, &res);
		PQclear(res);
	}
	free(wrapped);
	if (r != DB_OK)
		return r;
	snprintf(resource, sizeof(resource), "dek/%" PRIu32, max + 1);
	if (t->audit != NULL) {
		struct db_audit a = *t->audit;

		a.action = "encryption.rotate";
		a.resource = resource;
		r = db_audit_insert(c, &a);
	}
	if (r != DB_OK)
		return r;
	t->term = max + 1;
	t->created = true;
	return DB_OK;
}

int
db_dek_rotate(struct db_conn *c, const struct crypto_key *master, uint32_t expect, const struct db_audit *audit,
	      uint32_t *term, bool *created, char *why, size_t whylen)
{
	char scratch[8];
	struct rotate_tx t = {
		.master = master,
		.expect = expect,
		.audit = audit,
		.why = why != NULL ? why : scratch,
		.whylen = why != NULL ? whylen : sizeof(scratch),
	};
	int r;

	*term = 0;
	*created = false;
	t.why[0] = '\0';
	if (master == NULL)
		return DB_ERR_KEY_UNAVAILABLE;
	r = db_tx_run(c, DB_TX_LOCKED, rotate_body, &t);
	if (r != DB_OK) {
		if (t.why[0] == '\0')
			snprintf(t.why, t.whylen, "cannot rotate the data key: %s", db_strerror(r));
		return r;
	}
	*term = t.term;
	*created = t.created;
	if (t.created)
		crypto_log_info("data key rotated: new term %" PRIu32 " (%s)", t.term,
				expect != 0 ? "the previous term reached encryption.dek.rotateAfterEncryptions"
					    : "on demand");
	return DB_OK;
}

struct status_tx {
	json_t *out;
};

/* A bigint column as a JSON integer (the counts fit: at most 2^31 encryptions, far fewer rows). */
static json_t *
int_of(PGresult *res, int row, int col)
{
	return json_integer(strtoll(PQgetvalue(res, row, col), NULL, 10));
}

static int
status_body(struct db_conn *c, void *cls)
{
	struct status_tx *t = cls;
	PGresult *res = NULL, *rows = NULL;
	json_t *o = NULL, *terms = NULL;
	int r;

	json_decref(t->out);
	t->out = NULL;
	r = db_exec_stmt(c, &st_status_state, NULL, 0, &res);
	if (r != DB_OK)
		goto out;
	if (PQntuples(res) != 1) {
		r = DB_ERR_NOT_INITIALIZED;
		goto out;
	}
	o = json_pack("{s:b,s:s*,s:i}", "enabled", strcmp(PQgetvalue(res, 0, 0), "t") == 0, "keyId",
		      PQgetvalue(res, 0, 1)[0] != '\0' ? PQgetvalue(res, 0, 1) : NULL, "sealVersion",
		      atoi(PQgetvalue(res, 0, 2)));
	terms = json_array();
	PQclear(res);
	res = NULL;
	if (o == NULL || terms == NULL) {
		r = DB_ERR_ALLOC;
		goto out;
	}
	if ((r = db_exec_stmt(c, &st_status_deks, NULL, 0, &res)) != DB_OK ||
	    (r = db_exec_stmt(c, &st_status_rows, NULL, 0, &rows)) != DB_OK)
		goto out;
	for (int i = 0; i < PQntuples(res); i++) {
		long long term = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		json_t *d = json_pack("{s:I,s:s,s:o,s:I,s:I}", "term", term, "createdAt", PQgetvalue(res, i, 1),
				      "encryptions", int_of(res, i, 2), "secrets", (json_int_t)0, "versions",
				      (json_int_t)0);

		for (int j = 0; d != NULL && j < PQntuples(rows); j++) {
			if (strtoll(PQgetvalue(rows, j, 0), NULL, 10) != term)
				continue;
			json_object_set_new(d, "secrets", int_of(rows, j, 1));
			json_object_set_new(d, "versions", int_of(rows, j, 2));
		}
		if (d == NULL || json_array_append_new(terms, d) != 0) {
			r = DB_ERR_ALLOC;
			goto out;
		}
	}
	/* Ciphertexts naming a term the keyring does not hold (a restore from elsewhere) are counted apart. */
	{
		long long orphans = 0;

		for (int j = 0; j < PQntuples(rows); j++) {
			long long term = strtoll(PQgetvalue(rows, j, 0), NULL, 10);
			bool known = false;

			for (int i = 0; i < PQntuples(res) && !known; i++)
				known = strtoll(PQgetvalue(res, i, 0), NULL, 10) == term;
			if (!known)
				orphans += strtoll(PQgetvalue(rows, j, 2), NULL, 10);
		}
		if (json_object_set_new(o, "currentTerm",
					json_integer(PQntuples(res) > 0
							     ? strtoll(PQgetvalue(res, PQntuples(res) - 1, 0), NULL, 10)
							     : 0)) != 0 ||
		    json_object_set_new(o, "versionsUnderUnknownTerms", json_integer(orphans)) != 0) {
			r = DB_ERR_ALLOC;
			goto out;
		}
	}
	if (json_object_set_new(o, "deks", terms) != 0) {
		terms = NULL;
		r = DB_ERR_ALLOC;
		goto out;
	}
	terms = NULL;
	t->out = o;
	o = NULL;
out:
	PQclear(res);
	PQclear(rows);
	json_decref(o);
	json_decref(terms);
	return r;
}

int
db_encryption_status(struct db_conn *c, json_t **out)
{
	struct status_tx t = { NULL };
	int r;

	*out = NULL;
	r = db_tx_run(c, DB_TX_READ, status_body, &t);
	if (r != DB_OK) {
		json_decref(t.out);
		return r;
	}
	*out = t.out;
	return DB_OK;
}
