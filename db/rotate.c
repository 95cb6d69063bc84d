/* db rotate: new data-key (DEK) terms, on demand or once the current term is used up; the retirement of
 * unused ones (crypto-shredding); and the status. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/log.h"
#include "db/internal.h"

static const struct db_statement st_rot_state = {
	"rot_state", "SELECT enabled, key_id, coalesce(previous_key_id, '') FROM cmf_encryption_state WHERE id = 1", 0,
};
static const struct db_statement st_rot_max = { "rot_max", "SELECT coalesce(max(term), 0) FROM cmf_deks", 0 };
static const struct db_statement st_rot_insert = {
	"rot_insert", "INSERT INTO cmf_deks (term, wrapped, wrapped_previous) VALUES ($1::integer, $2::bytea, $3::bytea)",
	3,
};
static const struct db_statement st_status_state = {
	"status_state",
	"SELECT enabled, coalesce(key_id, ''), seal_version, min_dek_term, coalesce(previous_key_id, ''), "
	"coalesce(to_char(key_rotated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '') "
	"FROM cmf_encryption_state WHERE id = 1",
	0,
};
/* The latest rewrap, and whether a session holds the rewrap's lock (db/rewrap.c) now. */
static const struct db_statement st_status_rewrap = {
	"status_rewrap",
	"SELECT state, started_by, target_term, total, done, unreadable, batches, "
	"to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
	"to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
	"coalesce(to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''), coalesce(error, ''), "
	"EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = 0 AND objid = 6516071 AND "
	"objsubid = 1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())), extract(epoch FROM now() - started_at) "
	"FROM cmf_rewrap WHERE id = 1",
	0,
};
/*
 * Only the terms below the lowest one still used: min_dek_term then describes every retired term, so the
 * write guard refuses a ciphertext under any of them (a term above it, unused now, could still be written
 * by a replica that has not loaded the newest term yet, and must stay).
 */
static const struct db_statement st_retire_delete = {
	"retire_delete", "DELETE FROM cmf_deks WHERE term < $1::integer RETURNING term", 1,
};
/* Never lowered: a row put back with the guard disabled does not bring a retired term back. */
static const struct db_statement st_retire_min = {
	"retire_min", "UPDATE cmf_encryption_state SET min_dek_term = GREATEST(min_dek_term, $1::integer) WHERE id = 1",
	1,
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
	const struct crypto_key *master, *previous;
	bool wrap_previous; /* a master-key rotation is under way and `previous` is its previous key */
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
	} else if (strcmp(PQgetvalue(res, 0, 2), kid) == 0) {
		snprintf(t->why, t->whylen,
			 "this process still has the previous master key (key id %s) of a rotation to key id %s: a new "
			 "data key is made by a process that has the new key",
			 kid, PQgetvalue(res, 0, 1));
		r = DB_ERR_KEY_MISMATCH;
	} else if (strcmp(PQgetvalue(res, 0, 1), kid) != 0) {
		snprintf(t->why, t->whylen,
			 "the configured key (key id %s) is not the database's key (key id %s): a data key wrapped by it "
			 "could never be opened",
			 kid, PQgetvalue(res, 0, 1));
		r = DB_ERR_KEY_MISMATCH;
	} else if (PQgetvalue(res, 0, 2)[0] != '\0') {
		/* During a master-key rotation the new term is wrapped by the previous key too, when this process
		 * has it, so replicas still holding only that key load it; otherwise they cannot until they get
		 * the new key (logged). */
		char pid[CRYPTO_KEY_ID_SIZE];

		t->wrap_previous = t->previous != NULL && crypto_key_id(t->previous, pid) == CRYPTO_OK &&
				   strcmp(pid, PQgetvalue(res, 0, 2)) == 0;
		if (!t->wrap_previous)
			crypto_log_warn("a data key is made during a master-key rotation without the previous key (key id "
					"%s): replicas that still have only that key cannot load it until they get the new one",
					PQgetvalue(res, 0, 2));
	}
	PQclear(res);
	return r;
}

static int
rotate_body(struct db_conn *c, void *cls)
{
	struct rotate_tx *t = cls;
	struct crypto_keyring *kr = NULL;
	uint8_t *wrapped = NULL, *wprev = NULL;
	size_t wlen = 0, wprevlen = 0;
	PGresult *res = NULL;
	char term_s[16], resource[32];
	uint32_t max;
	int r, cr;

	t->term = 0;
	t->created = false;
	t->wrap_previous = false;
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
	if (t->wrap_previous &&
	    (cr = crypto_keyring_rewrap(t->master, t->previous, max + 1, wrapped, wlen, &wprev, &wprevlen)) != CRYPTO_OK) {
		free(wrapped);
		snprintf(t->why, t->whylen, "cannot wrap data key term %" PRIu32 " by the previous master key: %s", max + 1,
			 crypto_strerror(cr));
		return cr == CRYPTO_ERR_ALLOC ? DB_ERR_ALLOC : DB_ERR_INTERNAL;
	}
	{
		struct db_param p[] = { { term_s, 0, 0 },
					{ (const char *)wrapped, (int)wlen, 1 },
					{ (const char *)wprev, (int)wprevlen, 1 } };

		r = db_exec_stmt(c, &st_rot_insert, p, 3, &res);
		PQclear(res);
	}
	free(wrapped);
	free(wprev);
	if (r != DB_OK)
		return r;
	snprintf(resource, sizeof(resource), "dek/%" PRIu32, max + 1);
	if ((r = db_audit_insert_as(c, t->audit, "encryption.rotate", NULL, resource)) != DB_OK)
		return r;
	t->term = max + 1;
	t->created = true;
	return DB_OK;
}

int
db_dek_rotate(struct db_conn *c, const struct crypto_key *master, const struct crypto_key *previous, uint32_t expect,
	      const struct db_audit *audit, uint32_t *term, bool *created, char *why, size_t whylen)
{
	char scratch[8];
	struct rotate_tx t = {
		.master = master,
		.previous = previous,
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
	r = db_tx_run_why(c, DB_TX_LOCKED, rotate_body, &t, t.why, t.whylen, "cannot rotate the data key");
	if (r != DB_OK)
		return r;
	*term = t.term;
	*created = t.created;
	if (t.created)
		crypto_log_info("data key rotated: new term %" PRIu32 " (%s)", t.term,
				expect != 0 ? "the previous term reached encryption.dek.rotateAfterEncryptions"
					    : "on demand");
	return DB_OK;
}

struct retire_tx {
	const struct db_audit *audit;
	int retired;
	uint32_t min_term;
	char *why;
	size_t whylen;
};

/*
 * SERIALIZABLE, with the secret tables locked in SHARE mode first (before the snapshot): every write in
 * flight has committed and is counted, and later ones wait for this commit, after which the write guard
 * (migration 10) refuses anything under a retired term.
 */
static int
retire_body(struct db_conn *c, void *cls)
{
	struct retire_tx *t = cls;
	PGresult *res = NULL, *rows = NULL;
	char min_s[16], resource[256];
	size_t rlen = 0;
	uint32_t current, min;
	int r;

	t->retired = 0;
	t->min_term = 0;
	r = db_exec_script(c, "lock the secret tables", "LOCK TABLE cmf_secrets, cmf_secret_versions IN SHARE MODE");
	if (r != DB_OK)
		return r;
	r = db_exec_stmt(c, &db_st_init_lock, NULL, 0, &res);
	PQclear(res);
	res = NULL;
	if (r != DB_OK || (r = db_exec_stmt(c, &st_rot_max, NULL, 0, &res)) != DB_OK)
		return r;
	current = (uint32_t)strtoul(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	res = NULL;
	if (current == 0) {
		snprintf(t->why, t->whylen, "the database holds no data key");
		return DB_ERR_MODE_MISMATCH;
	}
	if ((r = db_exec_stmt(c, &st_status_rows, NULL, 0, &rows)) != DB_OK)
		return r;
	/* The lowest term in use (or the current term) becomes the minimum. */
	min = current;
	for (int i = 0; i < PQntuples(rows); i++) {
		long long term = strtoll(PQgetvalue(rows, i, 0), NULL, 10);

		if (term > 0 && term < (long long)min)
			min = (uint32_t)term;
	}
	PQclear(rows);
	snprintf(min_s, sizeof(min_s), "%" PRIu32, min);
	{
		struct db_param p[] = { { min_s, 0, 0 } };

		r = db_exec_stmt(c, &st_retire_delete, p, 1, &res);
	}
	if (r != DB_OK)
		return r;
	t->retired = PQntuples(res);
	rlen = (size_t)snprintf(resource, sizeof(resource), "dek/");
	for (int i = 0; i < PQntuples(res) && rlen < sizeof(resource); i++)
		rlen += (size_t)snprintf(resource + rlen, sizeof(resource) - rlen, "%s%s", i > 0 ? "," : "",
					 PQgetvalue(res, i, 0));
	PQclear(res);
	res = NULL;
	{
		struct db_param p[] = { { min_s, 0, 0 } };

		r = db_exec_stmt(c, &st_retire_min, p, 1, &res);
		PQclear(res);
	}
	if (r == DB_OK && t->retired > 0 && t->audit != NULL) {
		struct db_audit a = *t->audit;

		a.action = "encryption.retire";
		a.resource = resource;
		a.resource_cut = rlen >= sizeof(resource);
		r = db_audit_insert(c, &a);
	}
	if (r == DB_OK)
		t->min_term = min;
	return r;
}

int
db_dek_retire(struct db_conn *c, const struct db_audit *audit, int *retired, uint32_t *min_term, char *why,
	      size_t whylen)
{
	char scratch[8];
	struct retire_tx t = {
		.audit = audit,
		.why = why != NULL ? why : scratch,
		.whylen = why != NULL ? whylen : sizeof(scratch),
	};
	int r;

	*retired = 0;
	*min_term = 0;
	r = db_tx_run_why(c, DB_TX_WRITE, retire_body, &t, t.why, t.whylen, "cannot retire data keys");
	if (r != DB_OK)
		return r;
	*retired = t.retired;
	*min_term = t.min_term;
	if (t.retired > 0)
		crypto_log_info("retired %d data key term(s) no ciphertext used; the lowest term held is %" PRIu32,
				t.retired, t.min_term);
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

/*
 * The latest rewrap ("rewrap": null before the first): its stored progress, with "running" from the lock,
 * so a rewrap killed mid-way shows as "interrupted" (run it again) rather than running for ever.
 */
static int
status_rewrap(struct db_conn *c, json_t *o)
{
	PGresult *res = NULL;
	json_t *w = NULL;
	const char *state;
	bool held;
	double elapsed, done, total;
	int r;

	r = db_exec_stmt(c, &st_status_rewrap, NULL, 0, &res);
	if (r != DB_OK)
		return r;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return json_object_set_new(o, "rewrap", json_null()) == 0 ? DB_OK : DB_ERR_ALLOC;
	}
	held = strcmp(PQgetvalue(res, 0, 11), "t") == 0;
	state = PQgetvalue(res, 0, 0);
	if (strcmp(state, "running") == 0 && !held)
		state = "interrupted";
	done = strtod(PQgetvalue(res, 0, 4), NULL);
	total = strtod(PQgetvalue(res, 0, 3), NULL);
	elapsed = strtod(PQgetvalue(res, 0, 12), NULL);
	w = json_pack("{s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:s,s:s,s:s*,s:s*}", "state", state, "startedBy",
		      PQgetvalue(res, 0, 1), "targetTerm", int_of(res, 0, 2), "total", int_of(res, 0, 3), "done",
		      int_of(res, 0, 4), "unreadable", int_of(res, 0, 5), "batches", int_of(res, 0, 6), "startedAt",
		      PQgetvalue(res, 0, 7), "updatedAt", PQgetvalue(res, 0, 8), "finishedAt",
		      PQgetvalue(res, 0, 9)[0] != '\0' ? PQgetvalue(res, 0, 9) : NULL, "error",
		      PQgetvalue(res, 0, 10)[0] != '\0' ? PQgetvalue(res, 0, 10) : NULL);
	/* Rate and the time left, for a rewrap running now. */
	if (w != NULL && held && elapsed > 0 && done > 0) {
		json_object_set_new(w, "rowsPerSecond", json_real(done / elapsed));
		json_object_set_new(w, "secondsLeft", json_real(total > done ? (total - done) * elapsed / done : 0));
	}
	PQclear(res);
	if (w == NULL || json_object_set_new(o, "rewrap", w) != 0)
		return DB_ERR_ALLOC;
	return DB_OK;
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
	o = json_pack("{s:b,s:s*,s:i,s:I,s:s*,s:s*}", "enabled", strcmp(PQgetvalue(res, 0, 0), "t") == 0, "keyId",
		      PQgetvalue(res, 0, 1)[0] != '\0' ? PQgetvalue(res, 0, 1) : NULL, "sealVersion",
		      atoi(PQgetvalue(res, 0, 2)), "minDecryptionTerm", (json_int_t)strtoll(PQgetvalue(res, 0, 3), NULL, 10),
		      "previousKeyId", PQgetvalue(res, 0, 4)[0] != '\0' ? PQgetvalue(res, 0, 4) : NULL, "keyRotatedAt",
		      PQgetvalue(res, 0, 5)[0] != '\0' ? PQgetvalue(res, 0, 5) : NULL);
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
	if ((r = status_rewrap(c, o)) != DB_OK)
		goto out;
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
