/*
 * db reseal: every stored secret, and every kept version of it, moved to the database's ciphertext version
 * at start, in bounded batches under the initialization lock, then the lowest version opened raised to it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/log.h"
#include "db/internal.h"

/*
 * Secrets per transaction: each is one UPDATE round trip, and the whole batch (its wait for the lock
 * included) must fit in one database.requestTimeoutSeconds, even 20 ms away from PostgreSQL.
 */
#define RESEAL_BATCH 64
#define RESEAL_STR_(x) #x
#define RESEAL_STR(x) RESEAL_STR_(x)

/* Keyset order by name: each row is visited once, even one that does not open and so stays behind. */
static const struct db_statement st_reseal_batch = {
	"reseal_batch",
	"SELECT name, uid::text, version, data FROM cmf_secrets WHERE sealed AND name > $1 AND "
	"(CASE WHEN length(data) = 0 THEN 0 ELSE get_byte(data, 0) END) < "
	"(SELECT seal_version FROM cmf_encryption_state WHERE id = 1) ORDER BY name LIMIT " RESEAL_STR(RESEAL_BATCH)
	" FOR UPDATE",
	1,
};
static const struct db_statement st_reseal_update = {
	"reseal_update", "UPDATE cmf_secrets SET data = $2::bytea WHERE name = $1", 2,
};
/* Then the kept versions (the current one among them: its own copy), keyset order by (name, version). */
static const struct db_statement st_reseal_versions_batch = {
	"reseal_versions_batch",
	"SELECT name, uid::text, version, data FROM cmf_secret_versions WHERE sealed AND data IS NOT NULL AND "
	"(name, version) > ($1, $2::bigint) AND (CASE WHEN length(data) = 0 THEN 0 ELSE get_byte(data, 0) END) < "
	"(SELECT seal_version FROM cmf_encryption_state WHERE id = 1) ORDER BY name, version LIMIT "
	RESEAL_STR(RESEAL_BATCH) " FOR UPDATE",
	2,
};
static const struct db_statement st_reseal_versions_update = {
	"reseal_versions_update", "UPDATE cmf_secret_versions SET data = $3::bytea WHERE name = $1 AND version = $2::bigint",
	3,
};
static const struct db_statement st_formats_raise = {
	"formats_raise", "UPDATE cmf_encryption_state SET min_open_version = seal_version WHERE id = 1", 0,
};
static const struct db_statement st_formats_read = {
	"formats_read", "SELECT seal_version, min_open_version FROM cmf_encryption_state WHERE id = 1", 0,
};

struct reseal_tx {
	const struct db_sealer *sl;
	bool versions;                /* the secrets are done: the kept versions now */
	char after[256];              /* the last name of the previous batch ("" at first; names ≤ 253) */
	char after_version[24];       /* and, for versions, its version ("0" at first) */
	long long unreadable_before;  /* in the batches before this one */
	/* outputs of one attempt */
	char last[256], last_version[24];
	long long resealed, unreadable;
	bool phase_done, done;
	int seal, min; /* the database's versions after the last batch */
};

/* Open and seal again one row of the batch; a row that does not open is counted and left as it is. */
static int
reseal_row(struct db_conn *c, struct reseal_tx *t, PGresult *rows, int i)
{
	const char *name = PQgetvalue(rows, i, 0), *uid = PQgetvalue(rows, i, 1);
	long long version = strtoll(PQgetvalue(rows, i, 2), NULL, 10);
	json_t *data = NULL;
	uint8_t *blob = NULL;
	size_t bloblen = 0;
	PGresult *res = NULL;
	int r;

	r = db_secret_data_open(t->sl, name, uid, version, true, PQgetvalue(rows, i, 3), &data);
	if (r == DB_ERR_CORRUPT) {
		t->unreadable++;
		return DB_OK;
	}
	if (r != DB_OK)
		return r;
	r = db_seal_data(t->sl, name, uid, version, data, &blob, &bloblen);
	json_decref(data); /* wiped as it is freed (jansson's free hook, cmf/cli/main.c) */
	if (r == DB_OK) {
		struct db_param p[] = { { name, 0, 0 }, { (const char *)blob, (int)bloblen, 1 } };
		struct db_param pv[] = { { name, 0, 0 }, { PQgetvalue(rows, i, 2), 0, 0 },
					 { (const char *)blob, (int)bloblen, 1 } };

		r = t->versions ? db_exec_stmt(c, &st_reseal_versions_update, pv, 3, &res)
				: db_exec_stmt(c, &st_reseal_update, p, 2, &res);
		PQclear(res);
	}
	crypto_freezero(blob, bloblen);
	if (r == DB_OK)
		t->resealed++;
	return r;
}

static int
batch_body(struct db_conn *c, void *cls)
{
	struct reseal_tx *t = cls;
	struct db_param p[] = { { t->after, 0, 0 }, { t->after_version, 0, 0 } };
	PGresult *rows = NULL, *res = NULL;
	int n, r;

	t->resealed = t->unreadable = 0;
	t->phase_done = t->done = false;
	snprintf(t->last, sizeof(t->last), "%s", t->after);
	snprintf(t->last_version, sizeof(t->last_version), "%s", t->after_version);
	r = db_exec_stmt(c, &db_st_init_lock, NULL, 0, &res);
	PQclear(res);
	if (r != DB_OK)
		return r;
	r = t->versions ? db_exec_stmt(c, &st_reseal_versions_batch, p, 2, &rows)
			: db_exec_stmt(c, &st_reseal_batch, p, 1, &rows);
	if (r != DB_OK)
		return r;
	n = PQntuples(rows);
	for (int i = 0; i < n && r == DB_OK; i++)
		r = reseal_row(c, t, rows, i);
	if (r == DB_OK && n > 0) {
		snprintf(t->last, sizeof(t->last), "%s", PQgetvalue(rows, n - 1, 0));
		snprintf(t->last_version, sizeof(t->last_version), "%s", PQgetvalue(rows, n - 1, 2));
	}
	PQclear(rows);
	if (r != DB_OK || n == RESEAL_BATCH)
		return r;
	t->phase_done = true;
	if (!t->versions)
		return r;
	/*
	 * The last batch: every secret that opens is in the database's version now. The lowest version opened
	 * is raised only when none stayed behind: one that did not open (a data key missing after a partial
	 * restore, a damaged row) could still be repaired and re-sealed, and raising it would refuse it for good.
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

int
db_reseal(struct db_conn *c, const struct db_sealer *sl, struct db_reseal_result *res)
{
	struct reseal_tx t = { .sl = sl, .after_version = "0" };
	int r = DB_OK;

	memset(res, 0, sizeof(*res));
	if (!sl->enabled || sl->keyring == NULL)
		return sl->enabled ? DB_ERR_KEY_UNAVAILABLE : DB_OK;
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
