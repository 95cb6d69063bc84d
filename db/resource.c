/*
 * db resource: the one store mechanism every resource kind uses — read one, read a page, write (create,
 * update, or create-or-update) and delete — each in one transaction of the one runner, with the audit
 * event written inside the write. A kind only declares its statements (struct db_kind, db/internal.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "crypto/log.h"
#include "db/rows.h"

/* A row: column 0 is the resource as a JSON object; a sealed kind adds its sealed flag and data. */
static int
row_decode(const struct db_kind *k, const struct db_sealer *sl, PGresult *res, int row, json_t **out)
{
	json_t *obj = NULL, *data = NULL;
	int r;

	*out = NULL;
	r = db_rows_json(res, row, 0, true, k->name, &obj);
	if (r != DB_OK || !k->sealed) {
		*out = obj;
		return r;
	}
	r = db_secret_data_open(sl, json_string_value(json_object_get(obj, "name")),
				json_string_value(json_object_get(obj, "uid")),
				json_integer_value(json_object_get(obj, "version")), strcmp(PQgetvalue(res, row, 1), "t") == 0,
				PQgetvalue(res, row, 2), &data);
	if (r == DB_OK && json_object_set_new(obj, "data", data) != 0)
		r = DB_ERR_ALLOC;
	if (r != DB_OK) {
		json_decref(obj);
		return r;
	}
	*out = obj;
	return DB_OK;
}

/* A sealed kind cannot be read or written while the key is unavailable. */
static bool
key_unavailable(const struct db_kind *k, const struct db_sealer *sl)
{
	return k->sealed && sl->enabled && sl->keyring == NULL;
}

static void
key_params(const struct db_kind *k, const char *const *keys, struct db_param *p)
{
	for (int i = 0; i < k->nkeys; i++)
		p[i] = (struct db_param){ keys[i], 0, 0 };
}

/* Read the row of `keys` inside the caller's transaction; DB_ERR_NOT_FOUND if absent. */
static int
row_read(struct db_conn *c, const struct db_kind *k, const struct db_sealer *sl, const char *const *keys,
	 json_t **out)
{
	struct db_param p[2];
	PGresult *res = NULL;
	int r;

	*out = NULL;
	key_params(k, keys, p);
	r = db_exec_stmt(c, k->get, p, k->nkeys, &res);
	if (r == DB_OK)
		r = PQntuples(res) == 1 ? row_decode(k, sl, res, 0, out) : DB_ERR_NOT_FOUND;
	PQclear(res);
	return r;
}

/* A row as stored, kept whole for the cache (cmf/cache.c): libpq's result of the kind's get statement. */
struct db_row {
	PGresult *res;
};

struct fetch_tx {
	const struct db_kind *k;
	const char *const *keys;
	PGresult *res;
};

static int
fetch_body(struct db_conn *c, void *cls)
{
	struct fetch_tx *t = cls;
	struct db_param p[2];

	PQclear(t->res);
	t->res = NULL;
	key_params(t->k, t->keys, p);
	return db_exec_stmt(c, t->k->get, p, t->k->nkeys, &t->res);
}

int
db_resource_fetch(struct db_conn *c, const struct db_kind *k, const char *const *keys, struct db_row **out)
{
	struct fetch_tx t = { k, keys, NULL };
	struct db_row *row;
	int r;

	*out = NULL;
	/* One statement through the runner (it reconnects): one snapshot, no BEGIN/COMMIT. */
	r = db_tx_run(c, DB_TX_AUTOCOMMIT, fetch_body, &t);
	if (r == DB_OK && PQntuples(t.res) != 1)
		r = DB_ERR_NOT_FOUND;
	if (r == DB_OK && (row = malloc(sizeof(*row))) == NULL)
		r = DB_ERR_ALLOC;
	if (r != DB_OK) {
		PQclear(t.res);
		return r;
	}
	row->res = t.res;
	*out = row;
	return DB_OK;
}

int
db_row_decode(const struct db_row *row, const struct db_kind *k, const struct db_sealer *sl, json_t **out)
{
	*out = NULL;
	if (key_unavailable(k, sl))
		return DB_ERR_KEY_UNAVAILABLE;
	return row_decode(k, sl, row->res, 0, out);
}

void
db_row_free(struct db_row *row)
{
	if (row == NULL)
		return;
	PQclear(row->res);
	free(row);
}

/* A nested kind's row is missing: say whether its parent is, or only the row (*missing). */
static int
missing_which(struct db_conn *c, const struct db_kind *k, const char *const *keys, enum db_missing *missing)
{
	struct db_param p[] = { { keys[0], 0, 0 } };
	int r;

	*missing = DB_MISSING_SELF;
	if (k->nkeys < 2)
		return DB_ERR_NOT_FOUND;
	r = db_rows_exists(c, k->parent, p, 1);
	if (r < 0)
		return r;
	if (r == 0)
		*missing = DB_MISSING_PARENT;
	return DB_ERR_NOT_FOUND;
}

/* What every transaction body of this file carries: the call's arguments and its outputs. */
struct res_tx {
	const struct db_kind *k;
	const struct db_sealer *sl;
	const char *const *keys;
	enum db_missing missing;
	json_t *row; /* get, write */
	/* list */
	long long offset;
	int limit;
	long long total;
	/* write */
	enum db_write how;
	json_t *doc;
	const char *doc_text; /* doc as stored (a sealed kind's data left out) */
	const struct db_audit *audit;
	const char *update_action;
	struct db_match *match;
	bool created;
	long long version; /* get_version */
	/* delete */
	const char *actor;
	json_t *users;
};

static void
tx_reset(struct res_tx *t)
{
	json_decref(t->row);
	t->row = NULL;
	json_decref(t->users);
	t->users = NULL;
	t->missing = DB_MISSING_NONE;
	t->total = 0;
	t->created = false;
}

/*
 * The end of every call: *missing (may be NULL) says which row a DB_ERR_NOT_FOUND is about
 * (DB_MISSING_NONE on every other return), and what the transaction body kept is released.
 */
static int
tx_end(struct res_tx *t, int r, enum db_missing *missing)
{
	if (missing != NULL)
		*missing = r == DB_ERR_NOT_FOUND ? t->missing : DB_MISSING_NONE;
	tx_reset(t);
	return r;
}


static int
get_body(struct db_conn *c, void *cls)
{
	struct res_tx *t = cls;
	int r;

	tx_reset(t);
	r = row_read(c, t->k, t->sl, t->keys, &t->row);
	if (r == DB_ERR_NOT_FOUND)
		r = missing_which(c, t->k, t->keys, &t->missing);
	return r;
}

int
db_resource_get(struct db_conn *c, const struct db_kind *k, const struct db_sealer *sl, const char *const *keys,
		json_t **row, enum db_missing *missing)
{
	struct res_tx t = { .k = k, .sl = sl, .keys = keys };
	int r;

	*row = NULL;
	if (key_unavailable(k, sl))
		return tx_end(&t, DB_ERR_KEY_UNAVAILABLE, missing);
	/*
	 * The row is one statement, a snapshot by itself: no BEGIN/COMMIT, one round trip. Only a missing row
	 * takes a second statement (which of parent or row is missing), where a race can only change the
	 * wording of the 404.
	 */
	r = db_tx_run(c, DB_TX_AUTOCOMMIT, get_body, &t);
	if (r == DB_OK) {
		*row = t.row;
		t.row = NULL;
	}
	return tx_end(&t, r, missing);
}

void
db_resource_etag(const char *uid, long long version, char *buf, size_t len)
{
	snprintf(buf, len, "\"%s.%lld\"", uid, version);
}

static int
get_version_body(struct db_conn *c, void *cls)
{
	struct res_tx *t = cls;
	char version_s[24];
	struct db_param p[] = { { t->keys[0], 0, 0 }, { version_s, 0, 0 } };
	PGresult *res = NULL;
	int r;

	tx_reset(t);
	snprintf(version_s, sizeof(version_s), "%lld", t->version);
	r = db_exec_stmt(c, t->k->get_version, p, 2, &res);
	if (r == DB_OK && PQntuples(res) == 1 && PQgetisnull(res, 0, 2))
		r = DB_ERR_GONE;
	else if (r == DB_OK && PQntuples(res) == 1)
		r = row_decode(t->k, t->sl, res, 0, &t->row);
	else if (r == DB_OK) {
		/* Which is missing: the row, or only that version of it. */
		r = db_rows_exists(c, t->k->get, p, 1);
		t->missing = r == 0 ? DB_MISSING_SELF : DB_MISSING_REF;
		r = r < 0 ? r : DB_ERR_NOT_FOUND;
	}
	PQclear(res);
	return r;
}

int
db_resource_get_version(struct db_conn *c, const struct db_kind *k, const struct db_sealer *sl,
			const char *const *keys, long long version, json_t **row, enum db_missing *missing)
{
	struct res_tx t = { .k = k, .sl = sl, .keys = keys, .version = version };
	int r;

	*row = NULL;
	if (k->get_version == NULL || k->nkeys != 1)
		return tx_end(&t, DB_ERR_INTERNAL, missing);
	if (key_unavailable(k, sl))
		return tx_end(&t, DB_ERR_KEY_UNAVAILABLE, missing);
	/* Like a GET: one statement, a snapshot by itself; only a missing one takes a second. */
	r = db_tx_run(c, DB_TX_AUTOCOMMIT, get_version_body, &t);
	if (r == DB_OK) {
		*row = t.row;
		t.row = NULL;
	}
	return tx_end(&t, r, missing);
}

/*
 * The precondition of a write or delete on the row held (`locked`, with its uid and version): "*" wants
 * a row, an ETag wants that row's.
 */
static int
match_check(struct db_match *m, bool locked, const char *uid, long long version)
{
	char etag[DB_ETAG_MAX];

	if (m == NULL || (m->if_match == NULL && !m->none_match))
		return DB_OK;
	m->current = locked ? version : 0;
	if (m->none_match && locked)
		return DB_ERR_PRECONDITION;
	if (m->if_match == NULL)
		return DB_OK;
	if (!locked)
		return DB_ERR_PRECONDITION;
	if (strcmp(m->if_match, "*") == 0)
		return DB_OK;
	db_resource_etag(uid, version, etag, sizeof(etag));
	return strcmp(m->if_match, etag) == 0 ? DB_OK : DB_ERR_PRECONDITION;
}

static int
list_body(struct db_conn *c, void *cls)
{
	struct res_tx *t = cls;
	const struct db_kind *k = t->k;
	int nfilters = k->count->nparams, rows;
	char limit_s[24], offset_s[24];
	struct db_param p[DB_LIST_MAX_FILTERS + 2];
	PGresult *res = NULL;
	json_t *row;
	int r;

	tx_reset(t);
	if (nfilters > DB_LIST_MAX_FILTERS)
		return DB_ERR_INTERNAL;
	for (int i = 0; i < nfilters; i++)
		p[i] = (struct db_param){ t->keys[i], 0, 0 };
	if (k->parent != NULL) {
		r = db_rows_exists(c, k->parent, p, 1);
		if (r <= 0) {
			t->missing = DB_MISSING_PARENT;
			return r == 0 ? DB_ERR_NOT_FOUND : r;
		}
	}
	r = db_exec_stmt(c, k->count, p, nfilters, &res);
	if (r != DB_OK)
		return r;
	t->total = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	snprintf(limit_s, sizeof(limit_s), "%d", t->limit);
	snprintf(offset_s, sizeof(offset_s), "%lld", t->offset);
	p[nfilters] = (struct db_param){ limit_s, 0, 0 };
	p[nfilters + 1] = (struct db_param){ offset_s, 0, 0 };
	r = db_exec_stmt(c, k->list, p, nfilters + 2, &res);
	if (r != DB_OK)
		return r;
	t->row = json_array();
	rows = PQntuples(res);
	for (int i = 0; r == DB_OK && i < rows; i++) {
		r = t->row != NULL ? row_decode(k, t->sl, res, i, &row) : DB_ERR_ALLOC;
		/*
		 * One row whose sealed data fails its integrity check does not fail the page: it is listed
		 * without data and marked (DB_LIST_INTEGRITY), so the others stay readable and the bad one
		 * is named. A row whose own JSON is unreadable still fails the page.
		 */
		if ((r == DB_ERR_CORRUPT || r == DB_ERR_RETIRED) && k->sealed &&
		    db_rows_json(res, i, 0, true, k->name, &row) == DB_OK) {
			crypto_log_warn("%s '%s': stored data fails its integrity check; listed without it", k->name,
					json_string_value(json_object_get(row, "name")));
			r = json_object_set_new(row, DB_LIST_INTEGRITY,
						json_string(r == DB_ERR_RETIRED
								    ? "the stored data is sealed under a retired data key "
								      "and can never be decrypted: write this secret again"
								    : "the stored data fails its integrity check (tampered or "
								      "damaged): restore this secret from a backup, or write it "
								      "again")) == 0
				    ? DB_OK
				    : DB_ERR_ALLOC;
		}
		if (r == DB_OK && json_array_append_new(t->row, row) != 0)
			r = DB_ERR_ALLOC;
	}
	PQclear(res);
	return r;
}

int
db_resource_list(struct db_conn *c, const struct db_kind *k, const struct db_sealer *sl, const char *const *filters,
		 long long offset, int limit, json_t **rows, long long *total)
{
	struct res_tx t = { .k = k, .sl = sl, .keys = filters, .offset = offset, .limit = limit };
	int r;

	*rows = NULL;
	*total = 0;
	if (key_unavailable(k, sl))
		return DB_ERR_KEY_UNAVAILABLE;
	r = db_tx_run(c, DB_TX_READ, list_body, &t);
	if (r == DB_OK) {
		*rows = t.row;
		*total = t.total;
		t.row = NULL;
	}
	return tx_end(&t, r, NULL);
}

/* 0 when `st` (one parameter) finds a row, else DB_ERR_NOT_FOUND with *missing = `which`, or an error. */
static int
need(struct db_conn *c, const struct db_statement *st, const char *key, enum db_missing which,
     enum db_missing *missing)
{
	struct db_param p[] = { { key, 0, 0 } };
	int r = db_rows_exists(c, st, p, 1);

	if (r == 0) {
		*missing = which;
		return DB_ERR_NOT_FOUND;
	}
	return r < 0 ? r : DB_OK;
}

/*
 * Insert (uid new, version 1) or update (the locked row's uid, version + 1) with the parameters every
 * kind's statements take: keys, [uid,] doc, and for a sealed kind [version,] sealed flag and data.
 */
static int
row_store(struct db_conn *c, struct res_tx *t, bool insert, const char *uid, long long version)
{
	const struct db_kind *k = t->k;
	struct db_param p[7];
	char version_s[24], new_uid[37];
	uint8_t *blob = NULL;
	size_t bloblen = 0;
	PGresult *res = NULL;
	int n = k->nkeys, r;

	key_params(k, t->keys, p);
	if (insert) {
		if (crypto_uuid4(new_uid) != CRYPTO_OK)
			return DB_ERR_INTERNAL;
		uid = new_uid;
		version = 1;
		p[n++] = (struct db_param){ uid, 0, 0 };
	}
	p[n++] = (struct db_param){ t->doc_text, 0, 0 };
	if (k->sealed) {
		r = db_seal_data(t->sl, t->keys[k->nkeys - 1], uid, version, json_object_get(t->doc, "data"), &blob,
				 &bloblen);
		if (r != DB_OK)
			return r;
		snprintf(version_s, sizeof(version_s), "%lld", version);
		if (!insert)
			p[n++] = (struct db_param){ version_s, 0, 0 };
		p[n++] = (struct db_param){ t->sl->enabled ? "true" : "false", 0, 0 };
		p[n++] = (struct db_param){ (const char *)blob, (int)bloblen, 1 };
	}
	r = db_exec_stmt(c, insert ? k->insert : k->update, p, n, &res); /* 23505 → DB_ERR_CONFLICT */
	/* Without a lock taken first, an update that matched nothing is how a missing row shows. */
	if (r == DB_OK && !insert && k->self_lock == NULL && strcmp(PQcmdTuples(res), "1") != 0) {
		t->missing = DB_MISSING_SELF;
		r = DB_ERR_NOT_FOUND;
	}
	PQclear(res);
	/* Plaintext JSON when encryption is disabled: wiped either way. */
	crypto_freezero(blob, bloblen);
	return r;
}

static int
write_body(struct db_conn *c, void *cls)
{
	struct res_tx *t = cls;
	const struct db_kind *k = t->k;
	struct db_param p[2], p3[3];
	const char *ref = k->ref_field != NULL ? json_string_value(json_object_get(t->doc, k->ref_field)) : NULL;
	char uid[37] = "";
	long long version = 0;
	PGresult *res = NULL;
	struct db_audit a;
	int r = DB_OK, locked = 0;

	tx_reset(t);
	/* Parent, then the row itself, then what it refers to: every row the write depends on is held. */
	if (k->nkeys > 1)
		r = need(c, k->parent_share, t->keys[0], DB_MISSING_PARENT, &t->missing);
	if (r == DB_OK && t->how != DB_WRITE_CREATE && k->self_lock != NULL) {
		key_params(k, t->keys, p);
		r = db_exec_stmt(c, k->self_lock, p, k->nkeys, &res);
		if (r == DB_OK && (locked = PQntuples(res) == 1) && k->sealed) {
			snprintf(uid, sizeof(uid), "%s", PQgetvalue(res, 0, 0));
			version = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		}
		PQclear(res);
		if (r == DB_OK && !locked && t->how == DB_WRITE_UPDATE) {
			t->missing = DB_MISSING_SELF;
			r = DB_ERR_NOT_FOUND;
		}
		if (r == DB_OK)
			r = match_check(t->match, locked, uid, version);
	}
	if (r == DB_OK && ref != NULL)
		r = need(c, k->ref_share, ref, DB_MISSING_REF, &t->missing);
	if (r == DB_OK && k->clash != NULL) {
		key_params(k, t->keys, p3);
		p3[k->nkeys] = (struct db_param){ t->doc_text, 0, 0 };
		r = db_exec_stmt(c, k->clash, p3, k->nkeys + 1, &res);
		if (r == DB_OK)
			r = db_rows_json(res, 0, 0, false, k->name, &t->users);
		PQclear(res);
		res = NULL;
		if (r == DB_OK && json_array_size(t->users) > 0)
			r = DB_ERR_CONFLICT;
	}
	if (r != DB_OK)
		return r;
	/* Create-or-update: under SERIALIZABLE a concurrent insert of the same name is a 40001 (retried). */
	t->created = t->how == DB_WRITE_CREATE || (t->how == DB_WRITE_PUT && !locked);
	r = row_store(c, t, t->created, uid, version + 1);
	if (r == DB_OK)
		r = row_read(c, k, t->sl, t->keys, &t->row);
	if (r != DB_OK || t->audit == NULL)
		return r;
	a = *t->audit;
	if (!t->created && t->update_action != NULL)
		a.action = t->update_action;
	return db_audit_insert(c, &a);
}

int
db_resource_write(struct db_conn *c, const struct db_kind *k, const struct db_sealer *sl, enum db_write how,
		  const char *const *keys, json_t *doc, const struct db_audit *audit, const char *update_action,
		  struct db_match *match, json_t **row, bool *created, json_t **clash, enum db_missing *missing)
{
	struct res_tx t = { .k = k, .sl = sl, .keys = keys, .how = how, .doc = doc, .audit = audit,
			    .update_action = update_action, .match = match };
	json_t *stored = json_copy(doc); /* shallow: the sealed data is left out, never copied */
	char *text = NULL;
	int r = DB_ERR_ALLOC;

	*row = NULL;
	if (created != NULL)
		*created = false;
	if (clash != NULL)
		*clash = NULL;
	if (key_unavailable(k, sl)) {
		json_decref(stored);
		return tx_end(&t, DB_ERR_KEY_UNAVAILABLE, missing);
	}
	if (stored != NULL && k->sealed)
		json_object_del(stored, "data");
	if (stored != NULL)
		text = json_dumps(stored, JSON_COMPACT);
	json_decref(stored);
	t.doc_text = text;
	/* A sealed write that found this process's reservation empty runs again after reserving (twice covers a
	 * race with another thread). */
	for (int attempt = 0; text != NULL && attempt < 3; attempt++) {
		r = db_tx_run(c, DB_TX_WRITE, write_body, &t);
		if (r != DB_ERR_NEED_BUDGET)
			break;
		r = db_seal_reserve(c, sl);
		if (r != DB_OK)
			break;
		r = DB_ERR_BUSY;
	}
	/* The document may carry what only the database should see (a token's hash): wiped like any secret. */
	crypto_freezero(text, text != NULL ? strlen(text) : 0);
	if (r == DB_OK) {
		*row = t.row;
		t.row = NULL;
		if (created != NULL)
			*created = t.created;
	} else if (r == DB_ERR_CONFLICT && clash != NULL && json_array_size(t.users) > 0) {
		*clash = t.users;
		t.users = NULL;
	}
	return tx_end(&t, r, missing);
}

static int
delete_body(struct db_conn *c, void *cls)
{
	struct res_tx *t = cls;
	const struct db_kind *k = t->k;
	struct db_param p[3];
	PGresult *res = NULL;
	int r;

	tx_reset(t);
	key_params(k, t->keys, p);
	if (t->match != NULL && (t->match->if_match != NULL || t->match->none_match)) {
		/* The precondition, on the row held: the lock returns its uid and version. */
		if (k->del_lock == NULL)
			return DB_ERR_INTERNAL;
		r = db_exec_stmt(c, k->del_lock, p, k->nkeys, &res);
		if (r == DB_OK && PQntuples(res) == 0)
			r = DB_ERR_NOT_FOUND;
		if (r == DB_OK)
			r = match_check(t->match, true, PQgetvalue(res, 0, 0), strtoll(PQgetvalue(res, 0, 1), NULL, 10));
		PQclear(res);
		res = NULL;
		if (r != DB_OK)
			return r;
	}
	if (k->users != NULL) {
		/* Hold the row first: a referrer being created waits for this transaction, then finds it gone. */
		r = db_rows_exists(c, k->del_lock, p, k->nkeys);
		if (r <= 0)
			return r == 0 ? DB_ERR_NOT_FOUND : r;
		r = db_exec_stmt(c, k->users, p, k->nkeys, &res);
		if (r == DB_OK)
			r = db_rows_json(res, 0, 0, false, k->name, &t->users);
		PQclear(res);
		if (r != DB_OK)
			return r;
		if (json_array_size(t->users) > 0)
			return DB_ERR_CONFLICT;
	}
	if (k->del_actor)
		p[k->nkeys] = (struct db_param){ t->actor, 0, 0 };
	/* The foreign keys (RESTRICT) are the backstop: 23503 → DB_ERR_CONFLICT; CASCADE takes dependents along. */
	r = db_exec_stmt(c, k->del, p, k->nkeys + (k->del_actor ? 1 : 0), &res);
	if (r == DB_OK && strcmp(PQcmdTuples(res), "1") != 0)
		r = missing_which(c, k, t->keys, &t->missing);
	PQclear(res);
	if (r == DB_OK)
		r = db_audit_insert(c, t->audit);
	return r;
}

int
db_resource_delete(struct db_conn *c, const struct db_kind *k, const char *const *keys, const char *actor,
		   const struct db_audit *audit, struct db_match *match, json_t **users, enum db_missing *missing)
{
	struct res_tx t = { .k = k, .keys = keys, .actor = actor, .audit = audit, .match = match };
	int r;

	if (users != NULL)
		*users = NULL;
	r = db_tx_run(c, DB_TX_WRITE, delete_body, &t);
	if (r == DB_ERR_CONFLICT && users != NULL) {
		/* Without a list, only the foreign key refused: a referrer created concurrently. */
		*users = t.users != NULL ? t.users : json_array();
		t.users = NULL;
	}
	return tx_end(&t, r, missing);
}
