/* db internals shared by the db module only: the connection struct, prepared statements, migrations. */
#ifndef CMF_DB_INTERNAL_H
#define CMF_DB_INTERNAL_H

#include <libpq-fe.h>
#include <stddef.h>

#include "db/db.h"

/* Every SQL statement cmf runs (besides migrations and BEGIN/COMMIT), prepared once per connection. */
enum db_stmt {
	ST_PING,
	ST_HAS_TABLE,
	ST_MIG_MAX,
	ST_MIG_INSERT,
	ST_STATE_GET,
	ST_STATE_INSERT,
	ST_DEKS_GET,
	ST_DEK_INSERT,
	ST_DEK_COUNT,
	ST_SECRET_INSERT,
	ST_SECRET_GET,
	ST_SECRET_LOCK,
	ST_SECRET_UPDATE,
	ST_SECRET_DELETE,
	ST_SECRET_LIST,
	ST_SECRET_COUNT,
	ST_ADVISORY_LOCK,
	ST_ADVISORY_LOCK_SHARED,
	ST_AUDIT_INSERT,
	ST_AUDIT_LIST,
	ST_AUDIT_COUNT,
	ST__COUNT
};

/*
 * A statement declared next to the code that uses it (db/environments.c, ...), prepared on its first
 * use on each connection. `name` must be unique across the program.
 */
struct db_statement {
	const char *name;
	const char *sql;
	int nparams;
};

/* Module statements one connection can hold prepared; the program declares fewer. */
#define DB_MAX_MODULE_STMTS 96

struct db_conn {
	PGconn *pg;
	char *url;
	char *password;
	unsigned char prepared[ST__COUNT];
	const struct db_statement *prepared_stmts[DB_MAX_MODULE_STMTS];
	size_t nprepared_stmts;
	int in_commit; /* set while COMMIT is in flight: a lost connection then has an unknown outcome */
	/* Statements sent that may write (anything but SELECT): autocommit bodies replay only before one. */
	unsigned long writes_sent;
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
int db_exec(struct db_conn *c, enum db_stmt st, const struct db_param *params, int nparams, PGresult **res);

/* As db_exec, for a statement declared with struct db_statement. */
int db_exec_stmt(struct db_conn *c, const struct db_statement *st, const struct db_param *params, int nparams,
		 PGresult **res);

/* Run a parameterless SQL script (migrations, BEGIN/COMMIT/ROLLBACK); same error mapping. */
int db_exec_script(struct db_conn *c, const char *what, const char *sql);

/* "secret/<uid>/<version>": the AAD identity binding a secret's ciphertext to its row and version. */
void db_secret_ident(char *buf, size_t len, const char *uid, long long version);

/*
 * Open a stored secret's data column (`data_escaped`: bytea as libpq returns it in text form) into a
 * JSON object of strings (*data, new reference; values are plaintext). `sealed` is the row's flag; it
 * must match the database's mode. DB_ERR_CORRUPT when it does not open (tampering, moved row),
 * DB_ERR_KEY_UNAVAILABLE without a keyring. The plaintext buffer is wiped.
 */
int db_secret_data_open(const struct db_sealer *sl, const char *name, const char *uid, long long version,
			bool sealed, const char *data_escaped, json_t **data);

/* Insert an audit event inside the caller's transaction (no-op when `a` is NULL). */
int db_audit_insert(struct db_conn *c, const struct db_audit *a);

/* Embedded migrations, generated from db/migrations/NNNN_name.sql by db/embed.sh. */
struct db_migration {
	int version;
	const char *name;
	const char *sql;
};
extern const struct db_migration db_migrations[];
extern const size_t db_migrations_count;

#endif
