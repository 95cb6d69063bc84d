/* db: the PostgreSQL store — connections, the one transaction runner, migrations + mode lock, secrets. */
#ifndef CMF_DB_H
#define CMF_DB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto.h"

/*
 * Return codes: 0 on success or one of these. PostgreSQL's error text is logged by db/ with the
 * function name and SQLSTATE, never SQL parameters (they may be ciphertexts); it is never part of
 * these codes or of any client-visible message.
 */
enum {
	DB_OK = 0,
	DB_ERR_INTERNAL = -1,          /* unexpected PostgreSQL error (logged) */
	DB_ERR_ALLOC = -2,
	DB_ERR_UNAVAILABLE = -3,       /* PostgreSQL unreachable (connection failure, SQLSTATE class 08) */
	DB_ERR_CONFLICT = -4,          /* unique violation (23505), or a row still in use (23503 backstop) */
	DB_ERR_NOT_FOUND = -5,
	DB_ERR_BUSY = -6,              /* serialization failure / deadlock still failing after retries */
	DB_ERR_MODE_MISMATCH = -7,     /* encryption.enabled differs from the database's recorded mode */
	DB_ERR_KEY_MISMATCH = -8,      /* master key is not the one the database was initialized with */
	DB_ERR_NOT_INITIALIZED = -9,   /* (check only) the database has never been initialized */
	DB_ERR_SCHEMA_NEWER = -10,     /* the database has migrations this binary does not know */
	DB_ERR_CORRUPT = -11,          /* a stored value fails to decrypt or parse (tampering, bad row) */
	DB_ERR_KEY_UNAVAILABLE = -12,  /* encryption is enabled but no keyring is loaded */
	DB_ERR_NONCE_BUDGET = -13,     /* the current DEK reached its encryption limit */
	DB_ERR_TOO_LARGE = -14,        /* serialized data over CRYPTO_MAX_PLAINTEXT */
	DB_ERR_INVALID = -15,          /* PostgreSQL refused a value (22xxx data exception, e.g. a bad time) */
	DB_ERR_OUTCOME_UNKNOWN = -16,  /* the connection was lost during COMMIT: applied or not, unknown */
	DB_ERR_UNMAPPED = -17,         /* a connectionSecretId has no secret mapping in the environment */
};

const char *db_strerror(int err);

/* ---- Connections ---------------------------------------------------------------------------------- */

/* One connection; not thread-safe: each worker thread owns one. */
struct db_conn;

/*
 * Open a connection. `url` is a libpq URI or conninfo string (borrowed); `password` (may be NULL,
 * borrowed) overrides any password in it. Both are copied and the copies wiped on close.
 * The connection is made now; if that fails, the handle is still returned (so it can reconnect
 * later) and the return code is DB_ERR_UNAVAILABLE. DB_ERR_ALLOC leaves *out NULL.
 */
int db_conn_open(const char *url, const char *password, struct db_conn **out);

/* Close and free; NULL is a no-op. */
void db_conn_close(struct db_conn *c);

/* Reconnect if needed and run `SELECT 1`: 0 if PostgreSQL answers, DB_ERR_UNAVAILABLE otherwise. */
int db_ping(struct db_conn *c);

/*
 * The transaction runner. `body` runs between BEGIN and COMMIT and returns 0 or a DB_ERR_* code;
 * it may run several times (after a serialization failure 40001 or deadlock 40P01, up to
 * DB_TX_MAX_ATTEMPTS attempts), so it must reset its outputs on entry and have no side effects
 * outside the database. A non-zero return rolls back. A lost connection before COMMIT was sent
 * reconnects and retries; lost during COMMIT returns DB_ERR_OUTCOME_UNKNOWN (never replayed).
 * DB_TX_READ is REPEATABLE READ READ ONLY (one snapshot); DB_TX_WRITE is SERIALIZABLE.
 * DB_TX_LOCKED and DB_TX_LOCKED_READ are READ COMMITTED for bodies whose first statement takes an
 * advisory lock: under a snapshot isolation level the snapshot would be taken by the lock statement
 * itself, so a waiter would not see what the lock holder committed.
 * A NULL connection (cmf_app_conn out of memory) is DB_ERR_ALLOC, so callers need no check of their own.
 * DB_TX_AUTOCOMMIT runs the body without BEGIN/COMMIT: for bodies of one statement (one snapshot by
 * itself), or of statements that need no common transaction; each commits as it runs.
 */
typedef int (*db_tx_body)(struct db_conn *c, void *cls);
enum db_tx_mode { DB_TX_READ = 0, DB_TX_WRITE = 1, DB_TX_LOCKED = 2, DB_TX_LOCKED_READ = 3, DB_TX_AUTOCOMMIT = 4 };
int db_tx_run(struct db_conn *c, enum db_tx_mode mode, db_tx_body body, void *cls);

/* ---- Initialization: migrations and the encryption-mode lock ------------------------------------ */

struct db_init_result {
	bool initialized_now;      /* this call made the first initialization */
	int migrations_applied;    /* count applied by this call */
	int migrations_pending;    /* (check) count that init would apply */
	int schema_version;        /* after the call */
	size_t dek_count;
	unsigned dek_term;         /* current DEK term (0 when disabled) */
};

/*
 * Bring the database to this binary's schema and verify the encryption mode, in ONE transaction under
 * a transaction-scoped advisory lock, so concurrent starts produce exactly one initialization:
 *  1. lock; refuse a schema newer than this binary (DB_ERR_SCHEMA_NEWER);
 *  2. if the mode was recorded: compare encryption_enabled (DB_ERR_MODE_MISMATCH) and, when enabled,
 *     the master key id (DB_ERR_KEY_MISMATCH), then unwrap every DEK with `master` (a failure is also
 *     DB_ERR_KEY_MISMATCH) — all before anything is written;
 *  3. apply pending migrations (each recorded in cmf_schema_migrations);
 *  4. on first initialization record the mode (+ key id) and, when enabled, create DEK term 1.
 * `master` is borrowed; NULL iff !encryption_enabled. When `check_only`, nothing is written: the
 * transaction is read-only, pending migrations are counted, and an uninitialized database is
 * DB_ERR_NOT_INITIALIZED. `why` (size whylen) receives the operator-facing sentence for every error,
 * e.g. "cannot change the encryption mode: the database was initialized with
 * encryption.enabled=false, the configuration has encryption.enabled=true".
 * On success (and when enabled) *keyring receives the loaded keyring (caller frees); else NULL.
 */
int db_init(struct db_conn *c, bool encryption_enabled, const struct crypto_key *master, bool check_only,
	    struct crypto_keyring **keyring, struct db_init_result *res, char *why, size_t whylen);

/*
 * Load the keyring again with `master` (borrowed) in a read-only transaction, after the same checks as
 * db_init (recorded key id, every DEK unwraps): how a server resumes once its key is restored.
 * DB_ERR_KEY_MISMATCH (with `why`) when `master` is not the database's key. *keyring as in db_init.
 */
int db_keyring_load(struct db_conn *c, const struct crypto_key *master, struct crypto_keyring **keyring, char *why,
		    size_t whylen);

/* ---- Audit trail ---------------------------------------------------------------------------------- */

/* One audit event. All strings borrowed; NULL strings are stored as "". Never a secret value. */
struct db_audit {
	const char *principal;      /* "admin", "token:<name>", "anonymous" */
	const char *action;         /* "secret.create", "token.revoke", "authenticate", ... */
	const char *resource;       /* "secret/<name>", "token/<name>", or the path for refusals */
	const char *outcome;        /* "success", "failure", "denied" or "unknown" */
	int status;                 /* the HTTP status answered */
	const char *request_id;
	const char *client_address;
	const char *client_cert;    /* mutual TLS subject DN, or "" */
};

/* Record `a` in a transaction of its own (refusals and failed writes: nothing else to join). */
int db_audit_record(struct db_conn *c, const struct db_audit *a);

/* Filters of db_audit_list: NULL means any. Times are RFC 3339. */
struct db_audit_filter {
	const char *principal;
	const char *resource;
	const char *since; /* inclusive */
	const char *until; /* exclusive */
};

/*
 * One page of events, newest first, from one snapshot: *items is a new JSON array of objects
 * {id, time, principal, action, resource, outcome, status, requestId, clientAddress,
 * clientCertificate}; *total the number matching. A malformed time in the filter → DB_ERR_INVALID.
 */
int db_audit_list(struct db_conn *c, const struct db_audit_filter *f, long long offset, int limit, json_t **items,
		  long long *total);

/* ---- API tokens ------------------------------------------------------------------------------------ */

/* A token as stored (never its value). */
struct db_token {
	char id[17];
	char *name;
	char uid[37];
	char *role;           /* "admin" or "environment-reader" */
	json_t *environments; /* array of environment names */
	char created[32];
	char expires[32];     /* "" when it never expires */
	char *created_by;
	bool expired;
	uint8_t secret_hash[32]; /* filled by db_token_lookup only */
};

void db_token_free(struct db_token *t);

/*
 * Store a new token: `id` (16 hex), SHA-256 `secret_hash` of its secret part, `expires_at` RFC 3339
 * or NULL. The audit event (may be NULL) is written in the same transaction. DB_ERR_CONFLICT when a
 * live token has that name; DB_ERR_INVALID when expires_at is not a valid time.
 */
int db_token_create(struct db_conn *c, const char *id, const char *name, const char *role, json_t *environments,
		    const char *expires_at, const uint8_t secret_hash[32], const char *created_by,
		    const struct db_audit *audit, struct db_token **out);

/* The token with this id (live or revoked: *revoked tells), for authentication. DB_ERR_NOT_FOUND if none. */
int db_token_lookup(struct db_conn *c, const char *id, struct db_token **out, bool *revoked);

/* The live token of that name. */
int db_token_get(struct db_conn *c, const char *name, struct db_token **out);

/* One page of live tokens by name; *items as in db_secret_list. */
int db_token_list(struct db_conn *c, long long offset, int limit, struct db_token ***items, size_t *n,
		  long long *total);

/* Revoke the live token of that name (its row stays, for the audit trail). DB_ERR_NOT_FOUND if none. */
int db_token_revoke(struct db_conn *c, const char *name, const char *by, const struct db_audit *audit);

/* ---- Secrets ---------------------------------------------------------------------------------------- */

/*
 * How values are protected, decided at start (the mode lock) and shared read-only by all threads:
 * enabled with a keyring (NULL keyring while enabled → DB_ERR_KEY_UNAVAILABLE), or disabled (plaintext).
 */
struct db_sealer {
	bool enabled;
	const struct crypto_keyring *keyring; /* borrowed */
};

/* A stored secret as read back. All members owned by the struct. */
struct db_secret {
	char *name;
	char uid[37];
	long long version;
	char created[32]; /* RFC 3339 UTC with milliseconds */
	char updated[32];
	json_t *labels;       /* object */
	json_t *annotations;  /* object */
	json_t *data;         /* object of decrypted string values: plaintext — handle with care */
	json_t *environments; /* array of the names of the environments that map it, sorted */
};

/* Free (data values wiped through jansson's free hook, see cmf/cli/main.c); NULL is a no-op. */
void db_secret_free(struct db_secret *s);

/*
 * Create. `labels`, `annotations`, `data` are borrowed objects (data values strings). The data is
 * serialized, sealed with AAD "secret/<uid>/<version>" and stored; version starts at 1. Every write
 * records `audit` (may be NULL) in the same transaction.
 * DB_ERR_CONFLICT if the name exists. On success *out is the stored secret (caller frees).
 */
int db_secret_create(struct db_conn *c, const struct db_sealer *s, const char *name, json_t *labels,
		     json_t *annotations, json_t *data, const struct db_audit *audit, struct db_secret **out);

/* Replace labels, annotations and data; version + 1. DB_ERR_NOT_FOUND if absent. */
int db_secret_update(struct db_conn *c, const struct db_sealer *s, const char *name, json_t *labels,
		     json_t *annotations, json_t *data, const struct db_audit *audit, struct db_secret **out);

/* Read one, decrypted. DB_ERR_NOT_FOUND if absent, DB_ERR_CORRUPT if it fails to open. */
int db_secret_get(struct db_conn *c, const struct db_sealer *s, const char *name, struct db_secret **out);

/*
 * One page ordered by name: `limit` rows after skipping `offset`, plus the total count, from one
 * snapshot. *items is a malloc'd array of *n secrets (free each, then the array).
 */
int db_secret_list(struct db_conn *c, const struct db_sealer *s, long long offset, int limit,
		   struct db_secret ***items, size_t *n, long long *total);

/*
 * Delete. DB_ERR_NOT_FOUND if absent. DB_ERR_CONFLICT while a secret mapping still maps it: then
 * *mapped_in (when mapped_in is not NULL) is a new array of the names of those environments, sorted
 * (the caller decref's it; empty if only the foreign key caught a mapping made concurrently), and
 * nothing is deleted. *mapped_in is NULL on every other return.
 */
int db_secret_delete(struct db_conn *c, const char *name, const struct db_audit *audit, json_t **mapped_in);

/*
 * Which resource a DB_ERR_NOT_FOUND of a nested resource's call is about, so the reply can name it:
 * the parent (environment, catalog), the resource itself (mapping, database), or the resource it
 * refers to (the secret of a mapping). DB_MISSING_NONE on every other return.
 */
enum db_missing { DB_MISSING_NONE = 0, DB_MISSING_PARENT, DB_MISSING_SELF, DB_MISSING_REF };

/* ---- Environments ---------------------------------------------------------------------------------- */

/* An environment as stored. All members owned by the struct. */
struct db_environment {
	char *name;
	char uid[37];
	char *kubernetes_namespace;
	char created[32]; /* RFC 3339 UTC with milliseconds */
	char updated[32];
	json_t *labels;      /* object */
	json_t *annotations; /* object */
	json_t *defaults;    /* object: flinkApplicationDefaults, computePoolDefaults, statementDefaults as given */
	json_t *secrets;     /* object: connectionSecretId → secret name, one per secret mapping */
};

/* Free; NULL is a no-op. */
void db_environment_free(struct db_environment *e);

/*
 * Create or replace (CMF's POST): a new environment, or the existing one's namespace, labels,
 * annotations and defaults replaced (uid and creation time kept). `labels`, `annotations`, `defaults`
 * are borrowed objects. `audit` (may be NULL) is recorded in the same transaction; when the
 * environment existed, it is recorded with its action replaced by `update_action`. On success *out is
 * the stored environment (caller frees) and *created tells which of the two happened.
 */
int db_environment_put(struct db_conn *c, const char *name, const char *kubernetes_namespace, json_t *labels,
		       json_t *annotations, json_t *defaults, const struct db_audit *audit,
		       const char *update_action, struct db_environment **out, bool *created);

/* Read one. DB_ERR_NOT_FOUND if absent. */
int db_environment_get(struct db_conn *c, const char *name, struct db_environment **out);

/* One page ordered by name, plus the total, from one snapshot; *items as in db_secret_list. */
int db_environment_list(struct db_conn *c, long long offset, int limit, struct db_environment ***items,
			size_t *n, long long *total);

/* Delete, with its secret mappings (ON DELETE CASCADE). DB_ERR_NOT_FOUND if absent. */
int db_environment_delete(struct db_conn *c, const char *name, const struct db_audit *audit);

/* ---- Secret mappings (EnvironmentSecretMapping) ---------------------------------------------------- */

/* In `environment`, the connectionSecretId `name` stands for the secret `secret_name`. Owned members. */
struct db_secret_mapping {
	char *environment;
	char *name; /* the connectionSecretId */
	char uid[37];
	char *secret_name;
	char created[32];
	char updated[32];
	json_t *labels;      /* object */
	json_t *annotations; /* object */
};

void db_secret_mapping_free(struct db_secret_mapping *m);

/*
 * Create the mapping `name` in `environment` to `secret_name`, in one transaction that holds the
 * environment's and the secret's rows (FOR KEY SHARE) so neither can be deleted under it.
 * DB_ERR_NOT_FOUND with *missing = DB_MISSING_PARENT (no such environment) or DB_MISSING_REF (no such
 * secret); DB_ERR_CONFLICT if the environment already has a mapping of that name. `labels` and
 * `annotations` borrowed; `audit` (may be NULL) recorded in the transaction; *out as usual.
 */
int db_secret_mapping_create(struct db_conn *c, const char *environment, const char *name, const char *secret_name,
			     json_t *labels, json_t *annotations, const struct db_audit *audit,
			     struct db_secret_mapping **out, enum db_missing *missing);

/* Replace secret_name, labels and annotations; as create, and DB_MISSING_SELF when there is no such mapping. */
int db_secret_mapping_update(struct db_conn *c, const char *environment, const char *name, const char *secret_name,
			     json_t *labels, json_t *annotations, const struct db_audit *audit,
			     struct db_secret_mapping **out, enum db_missing *missing);

/* Read one. DB_ERR_NOT_FOUND with *missing = DB_MISSING_PARENT or DB_MISSING_SELF. */
int db_secret_mapping_get(struct db_conn *c, const char *environment, const char *name,
			  struct db_secret_mapping **out, enum db_missing *missing);

/* One page of an environment's mappings by name; DB_ERR_NOT_FOUND if the environment does not exist. */
int db_secret_mapping_list(struct db_conn *c, const char *environment, long long offset, int limit,
			   struct db_secret_mapping ***items, size_t *n, long long *total);

/* Delete. DB_ERR_NOT_FOUND with *missing = DB_MISSING_PARENT or DB_MISSING_SELF. */
int db_secret_mapping_delete(struct db_conn *c, const char *environment, const char *name,
			     const struct db_audit *audit, enum db_missing *missing);

/* ---- Kafka catalogs and databases ------------------------------------------------------------------ */

/*
 * A KafkaCatalog (catalog == NULL; the connection is its Schema Registry's, spec.srInstance) or a
 * KafkaDatabase of `catalog` (the connection is its Kafka cluster's, spec.kafkaCluster). Owned members.
 */
struct db_kafka {
	char *catalog; /* NULL for a catalog */
	char *name;
	char uid[37];
	char created[32];
	char updated[32];
	json_t *labels;                   /* object */
	json_t *annotations;              /* object */
	json_t *connection_config;        /* object of strings: public configuration only */
	char *connection_secret_id;       /* NULL when none */
	json_t *environments_with_access; /* environments mapping connection_secret_id, sorted ([] if none) */
	char *csfle_config;               /* database only: the CsfleConfig it names, or NULL */
};

void db_kafka_free(struct db_kafka *k);

/*
 * Create a catalog. `labels`, `annotations`, `connection_config` borrowed objects;
 * `connection_secret_id` may be NULL. DB_ERR_CONFLICT if the name exists. `audit` as usual.
 */
int db_kafka_catalog_create(struct db_conn *c, const char *name, json_t *labels, json_t *annotations,
			    json_t *connection_config, const char *connection_secret_id, const struct db_audit *audit,
			    struct db_kafka **out);

/* Replace labels, annotations and the connection. DB_ERR_NOT_FOUND if absent. */
int db_kafka_catalog_update(struct db_conn *c, const char *name, json_t *labels, json_t *annotations,
			    json_t *connection_config, const char *connection_secret_id, const struct db_audit *audit,
			    struct db_kafka **out);

/* Read one. DB_ERR_NOT_FOUND if absent. */
int db_kafka_catalog_get(struct db_conn *c, const char *name, struct db_kafka **out);

/* One page by name, plus the total; *items as in db_secret_list. */
int db_kafka_catalog_list(struct db_conn *c, long long offset, int limit, struct db_kafka ***items, size_t *n,
			  long long *total);

/*
 * Delete. DB_ERR_NOT_FOUND if absent. DB_ERR_CONFLICT while it has databases: then *databases (when
 * not NULL) is a new array of their names, sorted (empty if only the foreign key caught one created
 * concurrently), and nothing is deleted. *databases is NULL on every other return.
 */
int db_kafka_catalog_delete(struct db_conn *c, const char *name, const struct db_audit *audit, json_t **databases);

/*
 * Create a database in `catalog` (its row held FOR KEY SHARE). DB_ERR_NOT_FOUND with *missing =
 * DB_MISSING_PARENT when the catalog does not exist, DB_MISSING_REF when `csfle_config` (may be
 * NULL: none) names no CsfleConfig (held FOR KEY SHARE otherwise); DB_ERR_CONFLICT if the name exists.
 */
int db_kafka_database_create(struct db_conn *c, const char *catalog, const char *name, json_t *labels,
			     json_t *annotations, json_t *connection_config, const char *connection_secret_id,
			     const char *csfle_config, const struct db_audit *audit, struct db_kafka **out,
			     enum db_missing *missing);

/* Replace labels, annotations, the connection and csfle_config; as create, and DB_MISSING_SELF when absent. */
int db_kafka_database_update(struct db_conn *c, const char *catalog, const char *name, json_t *labels,
			     json_t *annotations, json_t *connection_config, const char *connection_secret_id,
			     const char *csfle_config, const struct db_audit *audit, struct db_kafka **out,
			     enum db_missing *missing);

/* Read one; DB_MISSING_PARENT or DB_MISSING_SELF when absent. */
int db_kafka_database_get(struct db_conn *c, const char *catalog, const char *name, struct db_kafka **out,
			  enum db_missing *missing);

/* One page of a catalog's databases by name; DB_ERR_NOT_FOUND if the catalog does not exist. */
int db_kafka_database_list(struct db_conn *c, const char *catalog, long long offset, int limit,
			   struct db_kafka ***items, size_t *n, long long *total);

/* Delete; DB_MISSING_PARENT or DB_MISSING_SELF when absent. */
int db_kafka_database_delete(struct db_conn *c, const char *catalog, const char *name, const struct db_audit *audit,
			     enum db_missing *missing);

/* ---- CsfleConfigs ----------------------------------------------------------------------------------- */

/* A CsfleConfig: a client-side field-level encryption declaration (spec contract: cmf/csfle/csfle.h). */
struct db_csfle {
	char *name;
	char uid[37];
	char created[32];
	char updated[32];
	json_t *labels;      /* object */
	json_t *annotations; /* object */
	json_t *spec;        /* object, as stored (checked by the API before every write) */
	json_t *databases;   /* "catalog/database" of every KafkaDatabase naming it, sorted ([] if none) */
	json_t *environments_with_access; /* environments mapping spec.kms.credentialsSecretId, sorted ([] if none) */
};

void db_csfle_free(struct db_csfle *f);

/*
 * Create or replace (update: DB_ERR_NOT_FOUND if absent). `labels`, `annotations`, `spec` borrowed
 * objects; spec.kms.credentialsSecretId is kept beside it for the resolution. DB_ERR_CONFLICT if
 * the name exists (create). `audit` is recorded in the same transaction; *out the stored row.
 */
int db_csfle_create(struct db_conn *c, const char *name, json_t *labels, json_t *annotations, json_t *spec,
		    const struct db_audit *audit, struct db_csfle **out);
int db_csfle_update(struct db_conn *c, const char *name, json_t *labels, json_t *annotations, json_t *spec,
		    const struct db_audit *audit, struct db_csfle **out);

/* Read one. DB_ERR_NOT_FOUND if absent. */
int db_csfle_get(struct db_conn *c, const char *name, struct db_csfle **out);

/* One page by name, plus the total; *items as in db_secret_list. */
int db_csfle_list(struct db_conn *c, long long offset, int limit, struct db_csfle ***items, size_t *n,
		  long long *total);

/*
 * Delete. DB_ERR_NOT_FOUND if absent. DB_ERR_CONFLICT while databases name it: *databases is then a
 * new array of their "catalog/database" names (empty if only the foreign key caught one), and
 * nothing is deleted; NULL on every other return.
 */
int db_csfle_delete(struct db_conn *c, const char *name, const struct db_audit *audit, json_t **databases);

/* ---- Client-configuration resolution ------------------------------------------------------------- */

/* What one resolution found, for the renderer. Members are borrowed for the callback's duration. */
struct db_resolved {
	json_t *kafka_config;    /* the database's kafka connectionConfig (object) */
	json_t *kafka_secret;    /* data of the secret mapped to its connectionSecretId, or NULL when it has none */
	json_t *sr_config;       /* the catalog's srInstance connectionConfig (object) */
	json_t *sr_secret;       /* likewise for the catalog's connectionSecretId */
	json_t *csfle_spec;      /* spec of the CsfleConfig the database names, or NULL when it names none */
	char csfle_name[256];    /* its name ("" when none); set for not_modified answers too */
	json_t *csfle_secret;    /* data of the secret mapped to its spec.kms.credentialsSecretId, or NULL */
	char etag[36];           /* strong ETag, quoted: "\"<32 hex>\"" */
	bool not_modified;       /* If-None-Match named the current ETag: nothing was decrypted */
	char detail[1536];       /* for DB_ERR_NOT_FOUND / DB_ERR_UNMAPPED: the sentence (names of 253 chars fit) */
};

/*
 * The renderer: called once with the lookup's outcome — `r` is DB_OK (res complete, or not_modified)
 * or DB_ERR_NOT_FOUND / DB_ERR_UNMAPPED (res->detail) or another error — and returns the HTTP status
 * it answered. The store then records the audit event with that status: if that fails, the call fails
 * and the rendered answer must be discarded (it may be called again when the call is retried).
 */
typedef unsigned (*db_resolve_render)(void *cls, int r, const struct db_resolved *res);

/*
 * Resolve environment `env`'s view of database `catalog`/`database` from ONE snapshot (one SQL
 * statement): the database's Kafka connectionConfig and its catalog's Schema Registry
 * connectionConfig, each with the data of the secret `env` maps to its connectionSecretId, decrypted.
 * The ETag hashes `etag_salt` (the output format and version) and the identities and versions of every
 * row involved, so it is known before decrypting; when `if_none_match` lists it, nothing is decrypted.
 * `audit` (borrowed) gets its status and outcome from the renderer and is committed before this
 * returns. Returns DB_OK once rendered and audited; else the error (rendering, if any, is void).
 */
int db_resolve(struct db_conn *c, const struct db_sealer *sl, const char *env, const char *catalog,
	       const char *database, const char *if_none_match, const char *etag_salt, db_resolve_render render,
	       void *cls, struct db_audit *audit);

#endif
