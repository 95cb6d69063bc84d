/* db internals shared by the db module only: the connection struct, prepared statements, migrations. */
#ifndef CMF_DB_INTERNAL_H
#define CMF_DB_INTERNAL_H

#include <libpq-fe.h>
#include <stddef.h>

#include "db/db.h"

/*
 * Every SQL statement cmf runs (besides migrations and BEGIN/COMMIT) is declared next to the code that
 * uses it (db/environments.c, ...) and prepared on its first use on each connection. `name` must be
 * unique across the program.
 */
struct db_statement {
	const char *name;
	const char *sql;
	int nparams;
};

/* Statements one connection can hold prepared; the program declares fewer. */
#define DB_MAX_MODULE_STMTS 96

struct db_conn {
	PGconn *pg;
	char *url;
	char *password;
	const struct db_statement *prepared_stmts[DB_MAX_MODULE_STMTS];
	size_t nprepared_stmts;
	int in_commit; /* set while COMMIT is in flight: a lost connection then has an unknown outcome */
	/* Statements sent that may write (anything but SELECT): autocommit bodies replay only before one. */
	unsigned long writes_sent;
	/* CLOCK_MONOTONIC ns by which the current call must have its answers (db_tx_run sets it). */
	long long deadline_ns;
	bool deadline_missed; /* the session was closed for missing it: no reconnect, no replay in this call */
	long long connect_failed_ns; /* when the last connection attempt failed (0: it did not) */
};

/*
 * Internal to db/: a write transaction found this process's encryption reservation used up; the
 * caller reserves another block in a transaction of its own and runs the write again.
 */
#define DB_ERR_NEED_BUDGET (-100)

/* A parameter: text (len 0 → strlen) or binary bytes. */
struct db_param {
	const char *value;
	int len;
	int binary;
};

/*
 * Run a prepared statement with text results. Returns 0 with *res (PQclear it) for
 * PGRES_TUPLES_OK/PGRES_COMMAND_OK; otherwise logs (function, statement name, SQLSTATE, server
 * message — never parameters), clears, and maps: 23505 → DB_ERR_CONFLICT, 40001/40P01 →
 * DB_ERR_BUSY, class 08 or a dead connection → DB_ERR_UNAVAILABLE, else DB_ERR_INTERNAL.
 */
int db_exec_stmt(struct db_conn *c, const struct db_statement *st, const struct db_param *params, int nparams,
		 PGresult **res);

/* Run a parameterless SQL script (migrations, BEGIN/COMMIT/ROLLBACK); same error mapping. */
int db_exec_script(struct db_conn *c, const char *what, const char *sql);

/*
 * db_tx_run for a call that explains its failures: `why` (size whylen, the body's own sentence buffer) is
 * emptied first, and a failure the body did not explain gets "<what>: <db_strerror>".
 */
int db_tx_run_why(struct db_conn *c, enum db_tx_mode mode, db_tx_body body, void *cls, char *why, size_t whylen,
		  const char *what);

/* The initialization lock (transaction-scoped): initialization, migrations and the re-seal take it. */
extern const struct db_statement db_st_init_lock;

/* The ciphertext versions this database writes and opens (from its encryption state; db/seal.c). */
void db_seal_formats_set(int seal, int min);

/*
 * Open a stored secret's data column (`data_escaped`: bytea as libpq returns it in text form) into a
 * JSON object of strings (*data, new reference; values are plaintext). `sealed` is the row's flag; it
 * must match the database's mode. DB_ERR_RETIRED under a retired data-key term; DB_ERR_CORRUPT when it does not open (tampering, a ciphertext moved to
 * another secret, a version below the database's lowest), DB_ERR_KEY_UNAVAILABLE without a keyring. The plaintext buffer is wiped.
 */
int db_secret_data_open(const struct db_sealer *sl, const char *name, const char *uid, long long version,
			bool sealed, const char *data_escaped, json_t **data);

/*
 * Serialize `data` and seal it for secret `name` (uid, version) under the current DEK in the database's
 * ciphertext version (2 binds the name as well), taking one encryption from this
 * process's reservation (DB_ERR_NEED_BUDGET when it is used up: reserve with db_seal_reserve, outside the
 * transaction, and run the write again). *out is the bytes to store (ciphertext, or JSON text when
 * encryption is disabled); the caller wipes and frees it.
 */
int db_seal_data(const struct db_sealer *sl, const char *name, const char *uid, long long version, json_t *data,
		 uint8_t **out, size_t *outlen);

/*
 * A stored ciphertext (`data_escaped`, bytea text form) opened and sealed again as it is, under the current
 * term and the database's ciphertext version, without a JSON round trip (the re-seal and the rewrap).
 * Errors as db_secret_data_open (DB_ERR_RETIRED, DB_ERR_CORRUPT) and db_seal_data (DB_ERR_NEED_BUDGET).
 */
int db_seal_reseal(const struct db_sealer *sl, const char *name, const char *uid, long long version,
		   const char *data_escaped, uint8_t **out, size_t *outlen);

/* Reserve a block of encryptions under the sealer's current DEK term, in a transaction of its own. */
int db_seal_reserve(struct db_conn *c, const struct db_sealer *sl);

/*
 * How db_reseal_run moves stored ciphertexts forward (db/reseal.c): every sealed secret, then every kept
 * version, below the database's ciphertext version or (below_term > 0) under a data-key term below
 * below_term, opened and sealed again under the sealer's current term; `batch` rows per transaction
 * (READ COMMITTED, rows locked FOR UPDATE, so writes go on beside it and are never overwritten).
 */
struct db_reseal_opts {
	uint32_t below_term;
	int batch;
	/* First in each batch's transaction (NULL: the initialization lock); anything but DB_OK stops the run. */
	int (*begin)(void *cls, struct db_conn *c);
	/* Last in it: `moved` and `unreadable` of this batch, `last` when the run is complete. */
	int (*end)(void *cls, struct db_conn *c, long long moved, long long unreadable, bool last);
	/* After each committed batch: the run's totals so far. */
	void (*progress)(void *cls, long long moved, long long unreadable);
	void *cls;
};

/* As db_reseal, with `o`; a run stopped anywhere goes on when run again (rows moved stay moved). */
int db_reseal_run(struct db_conn *c, const struct db_sealer *sl, const struct db_reseal_opts *o,
		  struct db_reseal_result *res);

/* The ciphertexts db_reseal_run with below_term would move, in one snapshot (*n). */
int db_reseal_count(struct db_conn *c, uint32_t below_term, long long *n);

/*
 * A stored resource kind, as the generic runners of db/resource.c see it: only its statements.
 * Keys are (name) or, for a kind nested in a parent, (parent, name). Every row statement returns
 * the resource as a JSON object in column 0 (a sealed kind adds its `sealed` flag and `data`
 * columns); writes take the document the API built (jsonb) and read what they need from it.
 */
struct db_kind {
	const char *name;                        /* in logs: "secret" */
	int nkeys;                               /* 1 or 2 */
	const struct db_statement *get;          /* keys → the row */
	const struct db_statement *get_version;  /* kept versions: keys, version → the row at that version
						  * (its data NULL when destroyed); NULL: no versions */
	const struct db_statement *count;        /* the parent key, if nested → count(*) */
	const struct db_statement *list;         /* the parent key, if nested, LIMIT, OFFSET → rows by name */
	const struct db_statement *parent;       /* nested: the parent key → a row when the parent exists */
	const struct db_statement *parent_share; /* nested: the same FOR KEY SHARE (writes: it cannot go away) */
	const struct db_statement *self_lock;    /* updates: keys → the row FOR UPDATE (sealed: uid, version);
						  * NULL: an update that matches no row is the 404 */
	const struct db_statement *insert;       /* keys, uid, doc [, sealed, data] */
	const struct db_statement *update;       /* keys, doc [, version, sealed, data]; NULL: no update */
	const struct db_statement *ref_share;    /* the row a write refers to, FOR KEY SHARE */
	const char *ref_field;                   /* the doc field naming that row (absent or null: none) */
	const struct db_statement *clash;        /* writes: keys, doc → JSON array naming the rows the doc
						  * contradicts (non-empty: DB_ERR_CONFLICT); run after the
						  * locks, under SERIALIZABLE, so concurrent writes cannot both pass */
	const struct db_statement *del_lock;     /* deletes: keys → the row FOR UPDATE, before `users` */
	const struct db_statement *users;        /* keys → JSON array of what still refers to the row */
	const struct db_statement *del;          /* keys [, actor] → deletes (or revokes) one row */
	bool del_actor;                          /* del takes the acting principal */
	bool sealed;                             /* doc.data is sealed into the data column */
};

/* Insert an audit event inside the caller's transaction (no-op when `a` is NULL). */
int db_audit_insert(struct db_conn *c, const struct db_audit *a);

/*
 * `base` (the caller's principal and client; NULL: nothing is inserted) as an event of its own: `action`,
 * `resource`, and `outcome` unless NULL (then base's), inside the caller's transaction.
 */
int db_audit_insert_as(struct db_conn *c, const struct db_audit *base, const char *action, const char *outcome,
		       const char *resource);

/* Embedded migrations, generated from db/migrations/NNNN_name.sql by db/embed.sh. */
struct db_migration {
	int version;
	const char *name;
	const char *sql;
};
extern const struct db_migration db_migrations[];
extern const size_t db_migrations_count;

#endif
