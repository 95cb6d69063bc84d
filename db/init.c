/* db initialization: embedded migrations and the encryption-mode lock, in one locked transaction. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/log.h"
#include "db/internal.h"

/* The statements of initialization: schema, migrations, the encryption-mode lock and the DEK keyring. */
static const struct db_statement st_has_table = { "has_table", "SELECT to_regclass($1::text) IS NOT NULL", 1 };
static const struct db_statement st_mig_max = {
	"mig_max", "SELECT coalesce(max(version), 0) FROM cmf_schema_migrations", 0,
};
static const struct db_statement st_mig_insert = {
	"mig_insert", "INSERT INTO cmf_schema_migrations (version, name) VALUES ($1::integer, $2)", 2,
};
static const struct db_statement st_state_get = {
	"state_get", "SELECT enabled, key_id, '' FROM cmf_encryption_state WHERE id = 1", 0,
};
/* From schema 10: the key the keyring is also wrapped by while a master-key rotation is under way. */
static const struct db_statement st_state_get10 = {
	"state_get10", "SELECT enabled, key_id, coalesce(previous_key_id, '') FROM cmf_encryption_state WHERE id = 1", 0,
};
static const struct db_statement st_state_insert = {
	"state_insert", "INSERT INTO cmf_encryption_state (id, enabled, key_id) VALUES (1, $1::boolean, $2)", 2,
};
/* The ciphertext versions written and opened (schema 6). */
static const struct db_statement st_formats_get = {
	"formats_get", "SELECT seal_version, min_open_version FROM cmf_encryption_state WHERE id = 1", 0,
};
/* What a database without its encryption state still holds (a partial restore, a mistaken DELETE). */
static const struct db_statement st_leftovers = {
	"leftovers", "SELECT (SELECT count(*) FROM cmf_secrets), (SELECT count(*) FROM cmf_deks)", 0,
};
static const struct db_statement st_deks_get = { "deks_get", "SELECT term, wrapped FROM cmf_deks ORDER BY term", 0 };
/*
 * From schema 10, never a retired term: a wrapped DEK put back from an old backup below min_dek_term is not
 * loaded, so what it sealed stays unreadable (DB_ERR_RETIRED).
 */
static const struct db_statement st_deks_get10 = {
	"deks_get10",
	"SELECT term, wrapped FROM cmf_deks WHERE term >= (SELECT min_dek_term FROM cmf_encryption_state WHERE id = 1) "
	"ORDER BY term",
	0,
};
static const struct db_statement st_deks_get_previous = {
	"deks_get_previous",
	"SELECT term, wrapped_previous FROM cmf_deks WHERE term >= (SELECT min_dek_term FROM cmf_encryption_state "
	"WHERE id = 1) ORDER BY term",
	0,
};
static const struct db_statement st_dek_insert = {
	"dek_insert", "INSERT INTO cmf_deks (term, wrapped) VALUES ($1::integer, $2::bytea)", 2,
};
/* 0x636d66 = "cmf": one application-wide lock key for initialization, migrations and the re-seal. */
const struct db_statement db_st_init_lock = { "advisory_lock", "SELECT pg_advisory_xact_lock(6516070)", 0 };
static const struct db_statement st_advisory_lock_shared = {
	"advisory_lock_shared", "SELECT pg_advisory_xact_lock_shared(6516070)", 0,
};

struct init_tx {
	/* inputs */
	bool enabled;
	const struct crypto_key *master;
	bool check_only;
	char *why;
	size_t whylen;
	bool on_previous; /* `master` is the previous key of a rotation under way: its wrapping is loaded */
	/* outputs, reset at the start of every attempt */
	struct crypto_keyring *kr;
	struct db_init_result res;
};

static int
has_table(struct db_conn *c, const char *name, bool *out)
{
	struct db_param p[] = { { name, 0, 0 } };
	PGresult *res = NULL;
	int r;

	r = db_exec_stmt(c, &st_has_table, p, 1, &res);
	if (r == DB_OK)
		*out = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return r;
}

static int
schema_version(struct db_conn *c, int *version)
{
	PGresult *res = NULL;
	bool exists = false;
	int r;

	*version = 0;
	r = has_table(c, "cmf_schema_migrations", &exists);
	if (r != DB_OK || !exists)
		return r;
	r = db_exec_stmt(c, &st_mig_max, NULL, 0, &res);
	if (r == DB_OK)
		*version = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return r;
}

/* Load and unwrap every DEK; a DEK that does not open under `master` means the wrong master key. */
static int
load_keyring(struct init_tx *t, struct db_conn *c)
{
	PGresult *res = NULL;
	int r;

	r = crypto_keyring_new(&t->kr);
	if (r != CRYPTO_OK)
		return DB_ERR_ALLOC;
	r = db_exec_stmt(c, t->on_previous ? &st_deks_get_previous : t->res.schema_version >= 10 ? &st_deks_get10 : &st_deks_get,
			 NULL, 0, &res);
	if (r != DB_OK)
		return r;
	for (int i = 0; i < PQntuples(res); i++) {
		long term = strtol(PQgetvalue(res, i, 0), NULL, 10);
		size_t len = 0;
		unsigned char *wrapped;
		int cr;

		/* A term made during the rotation by a replica without the previous key: this one cannot open it. */
		if (PQgetisnull(res, i, 1)) {
			snprintf(t->why, t->whylen,
				 "data key term %ld is not wrapped by the previous master key this replica still has: "
				 "mount the new key",
				 term);
			r = DB_ERR_KEY_MISMATCH;
			break;
		}
		wrapped = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 1), &len);

		if (wrapped == NULL) {
			r = DB_ERR_ALLOC;
			break;
		}
		cr = crypto_keyring_add_wrapped(t->kr, t->master, (uint32_t)term, wrapped, len);
		PQfreemem(wrapped);
		if (cr == CRYPTO_ERR_MAC_INVALID) {
			snprintf(t->why, t->whylen,
				 "the configured encryption key does not decrypt the database's keyring (data key term "
				 "%ld): it is not the key this database was initialized with, or the keyring was altered",
				 term);
			r = DB_ERR_KEY_MISMATCH;
			break;
		}
		if (cr != CRYPTO_OK) {
			snprintf(t->why, t->whylen, "cannot load data key term %ld: %s", term, crypto_strerror(cr));
			r = cr == CRYPTO_ERR_ALLOC ? DB_ERR_ALLOC : DB_ERR_CORRUPT;
			break;
		}
	}
	PQclear(res);
	if (r == DB_OK && crypto_keyring_count(t->kr) == 0) {
		snprintf(t->why, t->whylen,
			 "the database records encryption as enabled but holds no data key: the keyring was deleted");
		r = DB_ERR_CORRUPT;
	}
	return r;
}

/* Compare the recorded mode (if any) with the configuration. *recorded tells whether one exists. */
/*
 * No encryption state recorded: initializing is only safe on a database that holds no secret and no data
 * key. Otherwise the state was lost (a partial restore, a DELETE), and initializing would lock the
 * database to whatever key this process has and make every stored secret unreadable for good.
 */
static int
check_no_leftovers(struct init_tx *t, struct db_conn *c)
{
	PGresult *res = NULL;
	long long secrets, deks;
	int r;

	r = db_exec_stmt(c, &st_leftovers, NULL, 0, &res);
	if (r != DB_OK)
		return r;
	secrets = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	deks = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	if (secrets == 0 && deks == 0)
		return DB_OK;
	snprintf(t->why, t->whylen,
		 "the database holds %lld secret(s) and %lld data key(s) but no encryption state "
		 "(cmf_encryption_state is empty: a partial restore or a manual change?): refusing to initialize it, "
		 "which would lock it to this key and leave the stored secrets unreadable; restore "
		 "cmf_encryption_state and cmf_deks from the same backup as the secrets",
		 secrets, deks);
	return DB_ERR_INCONSISTENT;
}

static int
check_mode(struct init_tx *t, struct db_conn *c, bool *recorded)
{
	char kid[CRYPTO_KEY_ID_SIZE] = "";
	PGresult *res = NULL;
	bool exists = false, db_enabled;
	int r;

	*recorded = false;
	r = has_table(c, "cmf_encryption_state", &exists);
	if (r != DB_OK || !exists)
		return r;
	r = db_exec_stmt(c, t->res.schema_version >= 10 ? &st_state_get10 : &st_state_get, NULL, 0, &res);
	if (r != DB_OK)
		return r;
	if (PQntuples(res) == 0) {
		r = check_no_leftovers(t, c);
		goto out;
	}
	*recorded = true;
	db_enabled = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	if (db_enabled != t->enabled) {
		snprintf(t->why, t->whylen,
			 "cannot change the encryption mode: the database was initialized with encryption.enabled=%s, "
			 "the configuration has encryption.enabled=%s",
			 db_enabled ? "true" : "false", t->enabled ? "true" : "false");
		r = DB_ERR_MODE_MISMATCH;
		goto out;
	}
	if (!t->enabled)
		goto out;
	if (crypto_key_id(t->master, kid) != CRYPTO_OK) {
		r = DB_ERR_INTERNAL;
		goto out;
	}
	/*
	 * The key a master-key rotation is moving away from, while the keyring is still wrapped by it too: a
	 * replica whose kubelet has not yet delivered the new key keeps serving (db_master_rotate).
	 */
	t->on_previous = strcmp(PQgetvalue(res, 0, 1), kid) != 0 && strcmp(PQgetvalue(res, 0, 2), kid) == 0;
	if (t->on_previous)
		crypto_log_warn("the configured encryption key (key id %s) is the previous key of a master-key rotation "
				"to key id %s: serving with it until the new key is mounted",
				kid, PQgetvalue(res, 0, 1));
	if (strcmp(PQgetvalue(res, 0, 1), kid) != 0 && !t->on_previous) {
		snprintf(t->why, t->whylen,
			 "cannot change the encryption key: the database was initialized with the key whose key id "
			 "is %s, the configured key has key id %s",
			 PQgetvalue(res, 0, 1), kid);
		r = DB_ERR_KEY_MISMATCH;
		goto out;
	}
	r = load_keyring(t, c);
out:
	PQclear(res);
	return r;
}

static int
apply_migrations(struct init_tx *t, struct db_conn *c, int from)
{
	char ver[16];
	int r;

	r = db_exec_script(c, "create migrations table",
			   "CREATE TABLE IF NOT EXISTS cmf_schema_migrations ("
			   " version integer PRIMARY KEY, name text NOT NULL,"
			   " applied_at timestamptz NOT NULL DEFAULT now())");
	if (r != DB_OK)
		return r;
	for (size_t i = 0; i < db_migrations_count; i++) {
		const struct db_migration *m = &db_migrations[i];
		struct db_param p[] = { { ver, 0, 0 }, { m->name, 0, 0 } };
		PGresult *res = NULL;

		if (m->version <= from)
			continue;
		r = db_exec_script(c, m->name, m->sql);
		if (r != DB_OK) {
			snprintf(t->why, t->whylen, "migration %s failed: %s", m->name, db_strerror(r));
			return r;
		}
		snprintf(ver, sizeof(ver), "%d", m->version);
		r = db_exec_stmt(c, &st_mig_insert, p, 2, &res);
		PQclear(res);
		if (r != DB_OK)
			return r;
		t->res.migrations_applied++;
		t->res.schema_version = m->version;
	}
	return DB_OK;
}

/* First initialization: record the mode and, when enabled, create and store DEK term 1. */
static int
record_mode(struct init_tx *t, struct db_conn *c)
{
	char kid[CRYPTO_KEY_ID_SIZE];
	uint8_t *wrapped = NULL;
	size_t wlen = 0;
	PGresult *res = NULL;
	int r;

	if (t->enabled) {
		if (crypto_key_id(t->master, kid) != CRYPTO_OK)
			return DB_ERR_INTERNAL;
		if (crypto_keyring_new(&t->kr) != CRYPTO_OK)
			return DB_ERR_ALLOC;
		r = crypto_keyring_create(t->kr, t->master, 1, &wrapped, &wlen);
		if (r != CRYPTO_OK) {
			snprintf(t->why, t->whylen, "cannot create the first data key: %s", crypto_strerror(r));
			return r == CRYPTO_ERR_ALLOC ? DB_ERR_ALLOC : DB_ERR_INTERNAL;
		}
	}
	{
		struct db_param p[] = { { t->enabled ? "true" : "false", 0, 0 }, { t->enabled ? kid : NULL, 0, 0 } };

		r = db_exec_stmt(c, &st_state_insert, p, 2, &res);
		PQclear(res);
	}
	if (r == DB_OK && t->enabled) {
		struct db_param p[] = { { "1", 0, 0 }, { (const char *)wrapped, (int)wlen, 1 } };

		r = db_exec_stmt(c, &st_dek_insert, p, 2, &res);
		PQclear(res);
	}
	free(wrapped);
	if (r == DB_OK)
		t->res.initialized_now = true;
	return r;
}

static int
init_body(struct db_conn *c, void *cls)
{
	struct init_tx *t = cls;
	PGresult *res = NULL;
	bool recorded = false;
	int known = db_migrations_count > 0 ? db_migrations[db_migrations_count - 1].version : 0;
	int version = 0, r;

	crypto_keyring_free(t->kr);
	t->kr = NULL;
	memset(&t->res, 0, sizeof(t->res));
	if (t->why != NULL && t->whylen > 0)
		t->why[0] = '\0';

	/* Serializes concurrent starts: the second waits here, then sees the first one's work. */
	r = db_exec_stmt(c, t->check_only ? &st_advisory_lock_shared : &db_st_init_lock, NULL, 0, &res);
	PQclear(res);
	if (r != DB_OK)
		return r;
	r = schema_version(c, &version);
	if (r != DB_OK)
		return r;
	t->res.schema_version = version;
	if (version > known) {
		snprintf(t->why, t->whylen,
			 "the database schema is at version %d but this cmf binary knows versions up to %d: run a "
			 "newer cmf (downgrades are not supported)",
			 version, known);
		return DB_ERR_SCHEMA_NEWER;
	}
	/* Every refusal happens here, before the first write. */
	r = check_mode(t, c, &recorded);
	if (r != DB_OK)
		return r;
	if (t->check_only) {
		for (size_t i = 0; i < db_migrations_count; i++)
			if (db_migrations[i].version > version)
				t->res.migrations_pending++;
		if (!recorded) {
			snprintf(t->why, t->whylen,
				 "the database has not been initialized: run `cmf init` (or start `cmf serve`) once");
			return DB_ERR_NOT_INITIALIZED;
		}
		goto done;
	}
	r = apply_migrations(t, c, version);
	if (r != DB_OK)
		return r;
	if (!recorded) {
		r = record_mode(t, c);
		if (r != DB_OK)
			return r;
	}
	r = db_exec_stmt(c, &st_formats_get, NULL, 0, &res);
	if (r == DB_OK && PQntuples(res) == 1) {
		t->res.seal_format = atoi(PQgetvalue(res, 0, 0));
		t->res.min_format = atoi(PQgetvalue(res, 0, 1));
	}
	PQclear(res);
	if (r != DB_OK)
		return r;
done:
	t->res.dek_count = t->kr != NULL ? crypto_keyring_count(t->kr) : 0;
	t->res.dek_term = t->kr != NULL ? crypto_keyring_current_term(t->kr) : 0;
	return DB_OK;
}

int
db_init(struct db_conn *c, bool encryption_enabled, const struct crypto_key *master, bool check_only,
	struct crypto_keyring **keyring, struct db_init_result *res, char *why, size_t whylen)
{
	char scratch[8];
	struct init_tx t = {
		.enabled = encryption_enabled,
		.master = master,
		.check_only = check_only,
		.why = why != NULL ? why : scratch,
		.whylen = why != NULL ? whylen : sizeof(scratch),
	};
	int r;

	*keyring = NULL;
	memset(res, 0, sizeof(*res));
	if (encryption_enabled != (master != NULL))
		return DB_ERR_INTERNAL;
	r = db_tx_run_why(c, check_only ? DB_TX_LOCKED_READ : DB_TX_LOCKED, init_body, &t, t.why, t.whylen,
			  "database initialization failed");
	if (r != DB_OK) {
		crypto_keyring_free(t.kr);
		return r;
	}
	*res = t.res;
	*keyring = t.kr;
	if (t.res.seal_format > 0)
		db_seal_formats_set(t.res.seal_format, t.res.min_format);
	return DB_OK;
}

static int
keyring_body(struct db_conn *c, void *cls)
{
	struct init_tx *t = cls;
	bool recorded = false;
	int r;

	crypto_keyring_free(t->kr);
	t->kr = NULL;
	r = schema_version(c, &t->res.schema_version);
	if (r == DB_OK)
		r = check_mode(t, c, &recorded);
	if (r == DB_OK && !recorded) {
		snprintf(t->why, t->whylen, "the database has not been initialized");
		r = DB_ERR_NOT_INITIALIZED;
	}
	return r;
}

int
db_keyring_load(struct db_conn *c, const struct crypto_key *master, struct crypto_keyring **keyring, char *why,
		size_t whylen)
{
	char scratch[8];
	struct init_tx t = {
		.enabled = true,
		.master = master,
		.why = why != NULL ? why : scratch,
		.whylen = why != NULL ? whylen : sizeof(scratch),
	};
	int r;

	*keyring = NULL;
	r = db_tx_run_why(c, DB_TX_READ, keyring_body, &t, t.why, t.whylen, "cannot load the keyring");
	if (r != DB_OK) {
		crypto_keyring_free(t.kr);
		return r;
	}
	*keyring = t.kr;
	return DB_OK;
}
