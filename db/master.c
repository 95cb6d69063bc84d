/*
 * db master: the master-key rotation. The keyring (every DEK term) is wrapped by the new key as well, in one
 * transaction, and stays wrapped by the previous one until no replica serves with it any more; then that
 * wrapping is destroyed. No secret is touched: the DEKs do not change.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/log.h"
#include "db/internal.h"

static const struct db_statement st_master_state = {
	"master_state",
	"SELECT enabled, coalesce(key_id, ''), coalesce(previous_key_id, ''), "
	"coalesce(extract(epoch FROM now() - key_rotated_at), 0) FROM cmf_encryption_state WHERE id = 1",
	0,
};
static const struct db_statement st_master_deks = {
	"master_deks", "SELECT term, wrapped FROM cmf_deks ORDER BY term FOR UPDATE", 0,
};
static const struct db_statement st_master_dek_update = {
	"master_dek_update", "UPDATE cmf_deks SET wrapped_previous = wrapped, wrapped = $2::bytea WHERE term = $1::integer", 2,
};
static const struct db_statement st_master_record = {
	"master_record",
	"UPDATE cmf_encryption_state SET key_id = $1, previous_key_id = $2, key_rotated_at = now() WHERE id = 1", 2,
};
static const struct db_statement st_master_finish_deks = {
	"master_finish_deks", "UPDATE cmf_deks SET wrapped_previous = NULL WHERE wrapped_previous IS NOT NULL", 0,
};
static const struct db_statement st_master_finish_state = {
	"master_finish_state", "UPDATE cmf_encryption_state SET previous_key_id = NULL WHERE id = 1", 0,
};
static const struct db_statement st_holder_beat = {
	"holder_beat",
	"INSERT INTO cmf_key_holders (holder, key_id, seen_at) VALUES ($1, $2, now()) ON CONFLICT (holder) DO UPDATE "
	"SET key_id = $2, seen_at = now()",
	2,
};
/* Replicas other than `$1` seen serving with key `$2` within the last `$3` seconds. */
static const struct db_statement st_holders_of = {
	"holders_of",
	"SELECT count(*) FROM cmf_key_holders WHERE holder <> $1 AND key_id = $2 AND "
	"seen_at > now() - make_interval(secs => $3::integer)",
	3,
};
static const struct db_statement st_holders_prune = {
	"holders_prune", "DELETE FROM cmf_key_holders WHERE seen_at < now() - interval '1 day'", 0,
};

struct master_tx {
	const struct crypto_key *from, *to;
	const struct db_audit *audit;
	bool done; /* rotated (rotate) / finished (finish) by this call */
	char *why;
	size_t whylen;
	/* db_master_status */
	struct db_master_state *st;
};

static int
read_state(struct db_conn *c, struct db_master_state *st, char *why, size_t whylen)
{
	PGresult *res = NULL;
	int r;

	memset(st, 0, sizeof(*st));
	r = db_exec_stmt(c, &st_master_state, NULL, 0, &res);
	if (r != DB_OK)
		return r;
	if (PQntuples(res) != 1) {
		snprintf(why, whylen, "the database has not been initialized");
		r = DB_ERR_NOT_INITIALIZED;
	} else if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		snprintf(why, whylen, "the database was initialized with encryption disabled: it has no master key");
		r = DB_ERR_MODE_MISMATCH;
	} else {
		snprintf(st->key_id, sizeof(st->key_id), "%s", PQgetvalue(res, 0, 1));
		snprintf(st->previous_key_id, sizeof(st->previous_key_id), "%s", PQgetvalue(res, 0, 2));
		st->rotated_seconds_ago = strtod(PQgetvalue(res, 0, 3), NULL);
	}
	PQclear(res);
	return r;
}

static int
rotate_body(struct db_conn *c, void *cls)
{
	struct master_tx *t = cls;
	struct db_master_state st;
	char from_id[CRYPTO_KEY_ID_SIZE], to_id[CRYPTO_KEY_ID_SIZE], resource[64];
	PGresult *res = NULL, *deks = NULL;
	int r;

	t->done = false;
	r = db_exec_stmt(c, &db_st_init_lock, NULL, 0, &res);
	PQclear(res);
	res = NULL;
	if (r != DB_OK || (r = read_state(c, &st, t->why, t->whylen)) != DB_OK)
		return r;
	if (crypto_key_id(t->from, from_id) != CRYPTO_OK || crypto_key_id(t->to, to_id) != CRYPTO_OK)
		return DB_ERR_INTERNAL;
	if (strcmp(st.key_id, to_id) == 0 && strcmp(st.previous_key_id, from_id) == 0)
		return DB_OK; /* another replica rotated first: nothing to do */
	if (strcmp(st.key_id, from_id) != 0) {
		snprintf(t->why, t->whylen,
			 "cannot rotate the master key to key id %s: the previous key (key id %s) is not the database's "
			 "key (key id %s)",
			 to_id, from_id, st.key_id);
		return DB_ERR_KEY_MISMATCH;
	}
	/* One rotation at a time: a second would replace the first one's previous wrapping, locking out the
	 * replicas that still have only that key, without its destruction being recorded. */
	if (st.previous_key_id[0] != '\0') {
		snprintf(t->why, t->whylen,
			 "cannot rotate the master key to key id %s: the rotation from key id %s is not finished (remove the "
			 "previous key property everywhere, or run `cmf rotate finish`, first)",
			 to_id, st.previous_key_id);
		return DB_ERR_CONFLICT;
	}
	if ((r = db_exec_stmt(c, &st_master_deks, NULL, 0, &deks)) != DB_OK)
		return r;
	for (int i = 0; i < PQntuples(deks) && r == DB_OK; i++) {
		uint32_t term = (uint32_t)strtoul(PQgetvalue(deks, i, 0), NULL, 10);
		size_t len = 0, wlen = 0;
		unsigned char *wrapped = PQunescapeBytea((const unsigned char *)PQgetvalue(deks, i, 1), &len);
		uint8_t *w = NULL;
		int cr;

		if (wrapped == NULL) {
			r = DB_ERR_ALLOC;
			break;
		}
		cr = crypto_keyring_rewrap(t->from, t->to, term, wrapped, len, &w, &wlen);
		PQfreemem(wrapped);
		if (cr != CRYPTO_OK) {
			snprintf(t->why, t->whylen, "cannot wrap data key term %" PRIu32 " by the new master key: %s", term,
				 crypto_strerror(cr));
			r = cr == CRYPTO_ERR_ALLOC ? DB_ERR_ALLOC : DB_ERR_CORRUPT;
			break;
		}
		{
			struct db_param p[] = { { PQgetvalue(deks, i, 0), 0, 0 }, { (const char *)w, (int)wlen, 1 } };

			r = db_exec_stmt(c, &st_master_dek_update, p, 2, &res);
			PQclear(res);
			res = NULL;
		}
		free(w);
	}
	PQclear(deks);
	if (r != DB_OK)
		return r;
	{
		struct db_param p[] = { { to_id, 0, 0 }, { from_id, 0, 0 } };

		r = db_exec_stmt(c, &st_master_record, p, 2, &res);
		PQclear(res);
	}
	snprintf(resource, sizeof(resource), "master-key/%s", to_id);
	if (r == DB_OK)
		r = db_audit_insert_as(c, t->audit, "encryption.rotate", NULL, resource);
	if (r == DB_OK)
		t->done = true;
	return r;
}

int
db_master_rotate(struct db_conn *c, const struct crypto_key *from, const struct crypto_key *to,
		 const struct db_audit *audit, bool *rotated, char *why, size_t whylen)
{
	char scratch[8];
	struct master_tx t = { .from = from, .to = to, .audit = audit, .why = why != NULL ? why : scratch,
			       .whylen = why != NULL ? whylen : sizeof(scratch) };
	int r;

	*rotated = false;
	if (from == NULL || to == NULL)
		return DB_ERR_KEY_UNAVAILABLE;
	r = db_tx_run_why(c, DB_TX_LOCKED, rotate_body, &t, t.why, t.whylen, "cannot rotate the master key");
	*rotated = r == DB_OK && t.done;
	return r;
}

static int
finish_body(struct db_conn *c, void *cls)
{
	struct master_tx *t = cls;
	struct db_master_state st;
	char kid[CRYPTO_KEY_ID_SIZE], resource[64];
	PGresult *res = NULL;
	int r;

	t->done = false;
	r = db_exec_stmt(c, &db_st_init_lock, NULL, 0, &res);
	PQclear(res);
	res = NULL;
	if (r != DB_OK || (r = read_state(c, &st, t->why, t->whylen)) != DB_OK)
		return r;
	if (crypto_key_id(t->to, kid) != CRYPTO_OK)
		return DB_ERR_INTERNAL;
	/* Only a holder of the new key may drop the old wrapping: anyone else would lock itself out. */
	if (strcmp(st.key_id, kid) != 0) {
		snprintf(t->why, t->whylen,
			 "the configured key (key id %s) is not the database's current master key (key id %s): finish the "
			 "rotation with the new key mounted",
			 kid, st.key_id);
		return DB_ERR_KEY_MISMATCH;
	}
	if (st.previous_key_id[0] == '\0')
		return DB_OK; /* nothing to finish */
	if ((r = db_exec_stmt(c, &st_master_finish_deks, NULL, 0, &res)) != DB_OK)
		return r;
	PQclear(res);
	res = NULL;
	if ((r = db_exec_stmt(c, &st_master_finish_state, NULL, 0, &res)) != DB_OK)
		return r;
	PQclear(res);
	res = NULL;
	snprintf(resource, sizeof(resource), "master-key/%s/previous-destroyed", st.previous_key_id);
	r = db_audit_insert_as(c, t->audit, "encryption.rotate", NULL, resource);
	if (r == DB_OK)
		t->done = true;
	return r;
}

int
db_master_finish(struct db_conn *c, const struct crypto_key *current, const struct db_audit *audit, bool *finished,
		 char *why, size_t whylen)
{
	char scratch[8];
	struct master_tx t = { .to = current, .audit = audit, .why = why != NULL ? why : scratch,
			       .whylen = why != NULL ? whylen : sizeof(scratch) };
	int r;

	*finished = false;
	if (current == NULL)
		return DB_ERR_KEY_UNAVAILABLE;
	r = db_tx_run_why(c, DB_TX_LOCKED, finish_body, &t, t.why, t.whylen, "cannot finish the master-key rotation");
	*finished = r == DB_OK && t.done;
	return r;
}

struct holder_tx {
	const char *holder, *key_id;
	int within;
	struct db_master_state *st;
	long long others;
	char why[256];
};

static int
beat_body(struct db_conn *c, void *cls)
{
	struct holder_tx *t = cls;
	struct db_param p[] = { { t->holder, 0, 0 }, { t->key_id, 0, 0 } };
	char within[16];
	struct db_param q[] = { { t->holder, 0, 0 }, { t->st->previous_key_id, 0, 0 }, { within, 0, 0 } };
	PGresult *res = NULL;
	int r;

	t->others = 0;
	if ((r = read_state(c, t->st, t->why, sizeof(t->why))) != DB_OK)
		return r;
	/* Outside a rotation nothing is recorded: no write per poll on a quiet installation. */
	if (t->st->previous_key_id[0] == '\0')
		return DB_OK;
	if ((r = db_exec_stmt(c, &st_holder_beat, p, 2, &res)) != DB_OK)
		return r;
	PQclear(res);
	res = NULL;
	if ((r = db_exec_stmt(c, &st_holders_prune, NULL, 0, &res)) != DB_OK)
		return r;
	PQclear(res);
	res = NULL;
	snprintf(within, sizeof(within), "%d", t->within);
	r = db_exec_stmt(c, &st_holders_of, q, 3, &res);
	if (r == DB_OK)
		t->others = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return r;
}

int
db_key_holder_beat(struct db_conn *c, const char *holder, const char *key_id, int within_seconds,
		   struct db_master_state *st, long long *previous_holders)
{
	struct holder_tx t = { holder, key_id, within_seconds, st, 0, "" };
	int r;

	*previous_holders = 0;
	/* Statement by statement: replicas beating together must not abort each other (as SERIALIZABLE would). */
	r = db_tx_run(c, DB_TX_AUTOCOMMIT, beat_body, &t);
	if (r == DB_OK)
		*previous_holders = t.others;
	else
		crypto_log_warn("key holder heartbeat failed: %s", db_strerror(r));
	return r;
}

static int
state_body(struct db_conn *c, void *cls)
{
	char why[8];

	return read_state(c, cls, why, sizeof(why));
}

int
db_master_state_get(struct db_conn *c, struct db_master_state *st)
{
	return db_tx_run(c, DB_TX_READ, state_body, st);
}
