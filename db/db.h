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
	DB_ERR_INCONSISTENT = -18,     /* (init) secrets or data keys exist but no encryption state does */
	DB_ERR_PRECONDITION = -19,     /* a write's expected ETag (struct db_match) is not the row's */
	DB_ERR_GONE = -20,             /* a secret version that was destroyed (its metadata kept, its data not) */
	DB_ERR_RETIRED = -21,          /* a ciphertext under a retired data-key term: never decrypted */
};

const char *db_strerror(int err);

/* ---- Connections ---------------------------------------------------------------------------------- */

/* One connection; not thread-safe: each worker thread owns one. */
struct db_conn;

/*
 * Open a connection. `url` is a libpq URI or conninfo string (borrowed); `password` (may be NULL,
 * borrowed) overrides any password in it. Both are copied and the copies wiped on close.
 * Nothing is sent yet: the first call connects (and every call reconnects a lost session). Returns 0,
 * or DB_ERR_ALLOC with *out NULL.
 */
int db_conn_open(const char *url, const char *password, struct db_conn **out);

/* Close and free; NULL is a no-op. */
void db_conn_close(struct db_conn *c);

/*
 * How long one call (db_tx_run, db_ping) may wait for PostgreSQL, in seconds (database.requestTimeoutSeconds;
 * default 5; set once at start). Every wait is a poll() on the session's socket: past the deadline the
 * session is closed (reopened by the next call) and the call returns DB_ERR_UNAVAILABLE — or
 * DB_ERR_OUTCOME_UNKNOWN when a write or COMMIT had been sent.
 */
void db_set_request_timeout(int seconds);

/*
 * What this process last saw of PostgreSQL, from every db_tx_run and db_ping on any connection: the
 * monotonic times (crypto_mono_ns) of the last call PostgreSQL answered and of the last one that found
 * it unreachable or past the deadline (0: none yet). Never waits: for readiness.
 */
void db_health(long long *answered_ns, long long *unavailable_ns);

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
	int seal_format;           /* ciphertext version written (0 for check) */
	int min_format;            /* lowest ciphertext version opened (0 for check) */
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

struct db_sealer;

/* What db_reseal did. */
struct db_reseal_result {
	long long resealed;   /* ciphertexts (secrets and their kept versions) moved to the database's version */
	long long unreadable; /* ciphertexts below it that do not open (logged; they stay as they are) */
	bool older_refused;   /* the database opens no version below the one it writes (none stayed behind) */
};

/*
 * Move every sealed secret and every kept version of one below the database's ciphertext version to it (open, seal again; the
 * resource's version and times unchanged), in transactions of at most 64 secrets, each under the
 * initialization lock; then, if none stayed behind (res->unreadable 0), raise the lowest version the
 * database opens to it, so an older ciphertext put back later is refused. Run at start, after db_init,
 * with the loaded keyring (`sl`, encryption enabled). Returns 0 or a DB_ERR_* code (what was already
 * moved stays moved; calling again goes on).
 */
int db_reseal(struct db_conn *c, const struct db_sealer *sl, struct db_reseal_result *res);

/*
 * Load the keyring again with `master` (borrowed) in a read-only transaction, after the same checks as
 * db_init (recorded key id, every DEK unwraps): how a server resumes once its key is restored.
 * DB_ERR_KEY_MISMATCH (with `why`) when `master` is not the database's key. *keyring as in db_init.
 */
int db_keyring_load(struct db_conn *c, const struct crypto_key *master, struct crypto_keyring **keyring, char *why,
		    size_t whylen);

/* ---- Audit trail ---------------------------------------------------------------------------------- */

/* Longest resource an audit row keeps (bytes); a longer one is cut there and marked (resource_cut). */
#define DB_AUDIT_RESOURCE_MAX 256

/*
 * One audit event, or `count` identical ones merged (cmf/http/audit.c decides what is identical). All
 * strings borrowed; NULL strings are stored as "". Never a secret value.
 */
struct db_audit {
	const char *principal;      /* "admin", "token:<name>", "anonymous" */
	const char *action;         /* "secret.create", "token.revoke", "authenticate", ... */
	const char *resource;       /* "secret/<name>", "token/<name>", or the path for refusals */
	const char *outcome;        /* "success", "failure", "denied" or "unknown" */
	int status;                 /* the HTTP status answered */
	const char *request_id;     /* of the first event when merged */
	const char *client_address;
	const char *client_cert;    /* mutual TLS subject DN, or "" */
	const char *route;          /* the route's pattern, "unrouted", or NULL (stored as "") */
	bool resource_cut;          /* resource was cut at DB_AUDIT_RESOURCE_MAX bytes */
	long long count;            /* events merged into this row; 0 is read as 1 */
	double time, last_time;     /* Unix seconds of the first and last event; 0: the insert's own time */
};

/*
 * Store a batch of events with one statement, so one COMMIT: how the audit writer keeps up with a request
 * rate far above what a COMMIT per event allows. `events` is a JSON array of objects with the keys of
 * struct db_audit: principal, action, resource, resourceCut, outcome, status, requestId, clientAddress,
 * clientCertificate, route, count (absent: 1), time and lastTime (Unix seconds, numbers) — the same
 * objects cmf logs as "audit {...}" lines, so each event is serialized once.
 */
#define DB_AUDIT_BATCH_MAX 1024
int db_audit_insert_json(struct db_conn *c, const char *events);

/*
 * After DB_ERR_OUTCOME_UNKNOWN (the session was lost with the batch sent): whether the row of the event
 * first seen at `time` (Unix seconds, as stored) with `request_id` is stored. 1 or 0, or a DB_ERR_* code.
 */
int db_audit_stored(struct db_conn *c, double time, const char *request_id);

/*
 * Retention: delete at most `limit` events first seen more than `days` days ago, oldest first, in one
 * statement that commits by itself (rows another session is deleting are skipped, so replicas pruning
 * at once do not wait on each other). *deleted receives how many. 0 or a DB_ERR_* code.
 */
int db_audit_prune(struct db_conn *c, int days, long limit, long long *deleted);

/*
 * The first time of the oldest stored event, RFC 3339 UTC with milliseconds, into `buf` (size len);
 * "" when the trail is empty. 0 or a DB_ERR_* code.
 */
int db_audit_oldest(struct db_conn *c, char *buf, size_t len);

/*
 * The audit trail as a listable kind (db_resource_list; nothing else): newest first, filtered by
 * principal, resource, since (inclusive) and until (exclusive), each NULL for any; times RFC 3339 (a
 * malformed one is DB_ERR_INVALID). Rows: {id, time, lastTime, count, principal, action, route, resource,
 * resourceCut, outcome, status,
 * requestId, clientAddress, clientCertificate}.
 */
extern const struct db_kind db_kind_audit_event;

/* ---- Resources: one store for every kind ------------------------------------------------------- */

/*
 * How values are protected, decided at start (the mode lock) and shared read-only by all threads:
 * enabled with a keyring (NULL keyring while enabled → DB_ERR_KEY_UNAVAILABLE), or disabled (plaintext).
 */
/*
 * What a sealer's owner does when the keyring it lent falls behind the database (DEK rotation). Called
 * from db/ only; any of them may be NULL.
 */
struct db_keyring_hooks {
	/*
	 * A reservation under `term` found the keyring behind: with `rotate`, `term` reached the rotation
	 * threshold (db_seal_rotate_after_set) and the owner should call db_dek_rotate(c, master, term, ...)
	 * (a no-op when another process rotated first) and load the new keyring; without, the database
	 * already holds a newer term: load it. `c` is the caller's connection, outside any transaction.
	 * Failures are the owner's to log: the write goes on under `term`.
	 */
	void (*advance)(void *cls, struct db_conn *c, uint32_t term, bool rotate);
	/*
	 * A ciphertext names a term this sealer's keyring does not hold: open it (as crypto_keyring_open)
	 * with a keyring loaded anew, which the owner installs for later requests. Runs inside the caller's
	 * transaction, so it must not use that connection.
	 */
	int (*open_newer)(void *cls, const uint8_t *ident, size_t identlen, const uint8_t *ct, size_t ctlen,
			  uint8_t **out, size_t *outlen);
	/* A reservation under `term` brought the database's count to `encryptions` (for metrics). */
	void (*reserved)(void *cls, uint32_t term, uint64_t encryptions);
};

struct db_sealer {
	bool enabled;
	const struct crypto_keyring *keyring; /* borrowed */
	const struct db_keyring_hooks *hooks; /* borrowed; NULL: a keyring that never changes */
	void *hooks_cls;
};

/*
 * Encryptions reserved under the current term after which a reservation asks for a new term
 * (encryption.dek.rotateAfterEncryptions; 0: never). Process-wide; set once at start.
 */
void db_seal_rotate_after_set(uint64_t encryptions);

/*
 * Create the next DEK term, wrapped by `master` (borrowed; must be the database's key, else
 * DB_ERR_KEY_MISMATCH), and during a master-key rotation also by `previous` (borrowed, may be NULL) when
 * it is the rotation's previous key, in one transaction under the initialization lock, with `audit` (borrowed; its
 * action stored as "encryption.rotate", its resource as "dek/<term>"; NULL: none) when a term is made. With `expect` > 0 the term is made only while
 * `expect` is still the highest: of several processes crossing the threshold together, exactly one
 * creates it and the others find it (*created false). `expect` 0: always a new term (on demand).
 * *term receives the highest term afterwards. DB_ERR_MODE_MISMATCH when encryption is disabled;
 * `why` (may be NULL) receives a sentence on failure.
 */
struct db_audit;
int db_dek_rotate(struct db_conn *c, const struct crypto_key *master, const struct crypto_key *previous, uint32_t expect,
		  const struct db_audit *audit, uint32_t *term, bool *created, char *why, size_t whylen);

/*
 * The encryption status as stored (*out, new reference): {"enabled", "keyId", "sealVersion",
 * "currentTerm", "deks": [{"term", "createdAt", "encryptions" (reserved), "secrets", "versions"}],
 * "versionsUnderUnknownTerms"}; secrets and kept versions (current included, destroyed excluded) are
 * counted by the term in their ciphertext header. DB_ERR_NOT_INITIALIZED before the first start.
 */
int db_encryption_status(struct db_conn *c, json_t **out);

/* A rewrap's progress: ciphertexts to move (counted at its start), moved, left because they do not open. */
struct db_rewrap_progress {
	long long total, done, unreadable;
	uint32_t target; /* the data-key term they move to */
};

/*
 * Move every stored ciphertext (secrets and every kept version) under a data-key term below the sealer's
 * current one, or below the database's ciphertext version, to them: opened and sealed again in this
 * process (no plaintext leaves it; versions and times unchanged), in transactions of 256 rows that lock only
 * their rows, so writes go on and are never overwritten with stale data. One rewrap at a time across all
 * replicas (a session advisory lock PostgreSQL frees when the holder dies): DB_ERR_CONFLICT, `why` naming
 * who runs it. Progress is stored (cmf_rewrap, read by db_encryption_status) and `progress` (may be NULL)
 * called after each committed batch. Killed anywhere, it is run again and goes on: rows moved stay moved.
 * The start and the end (with counts) are audit events (`audit`'s principal and client; may be NULL).
 * `started_by` is stored as is (e.g. "cmf rewrap", "token:ops"). `go_on` (may be NULL) is asked before each
 * batch: DB_OK goes on; DB_ERR_KEY_UNAVAILABLE stops (the key was revoked: recorded as failed);
 * DB_ERR_INTERNAL stops (the process is stopping: left to show as interrupted). `sl`'s keyring must stay
 * valid until this returns. 0 or a DB_ERR_* code with `why`.
 */
int db_rewrap(struct db_conn *c, const struct db_sealer *sl, const char *started_by, const struct db_audit *audit,
	      void (*progress)(void *cls, const struct db_rewrap_progress *p), int (*go_on)(void *cls), void *cls,
	      struct db_rewrap_progress *out, char *why, size_t whylen);

/* ---- Master-key rotation (db/master.c) ---------------------------------------------------------- */

/* The recorded master keys: the current one and, while a rotation is under way, the previous one (""). */
struct db_master_state {
	char key_id[CRYPTO_KEY_ID_SIZE];
	char previous_key_id[CRYPTO_KEY_ID_SIZE];
	double rotated_seconds_ago; /* since the last rotation (0 if none) */
};

/*
 * Rotate the master key from `from` (the database's key) to `to`, both borrowed: in one transaction under
 * the initialization lock, every DEK term is wrapped by `to` (cmf_deks.wrapped) and keeps its wrapping by
 * `from` (wrapped_previous), and the state records `to` as the key and `from` as the previous key, so
 * replicas still holding only `from` keep loading the keyring. No DEK changes, no secret is touched.
 * *rotated false when another process already made this rotation (nothing done). An audit event
 * "encryption.rotate" (resource "master-key/<new key id>") with it. DB_ERR_KEY_MISMATCH (`why`) when
 * `from` is not the database's key.
 */
int db_master_rotate(struct db_conn *c, const struct crypto_key *from, const struct crypto_key *to,
		     const struct db_audit *audit, bool *rotated, char *why, size_t whylen);

/*
 * End a master-key rotation: destroy every DEK's wrapping by the previous key and forget that key, so it
 * opens nothing any more (a restart with only it exits 78). `current` (borrowed) must be the database's
 * current key (DB_ERR_KEY_MISMATCH otherwise: a replica without the new key would lock itself out).
 * *finished false when no rotation was under way. Audit event "encryption.rotate" (resource
 * "master-key/<previous key id>/previous-destroyed").
 */
int db_master_finish(struct db_conn *c, const struct crypto_key *current, const struct db_audit *audit, bool *finished,
		     char *why, size_t whylen);

/* The recorded master keys (DB_ERR_NOT_INITIALIZED, DB_ERR_MODE_MISMATCH when there are none). */
int db_master_state_get(struct db_conn *c, struct db_master_state *st);

/*
 * A replica's poll during a rotation: read the state (*st); while a rotation is under way, record that
 * `holder` serves with key `key_id` now and count (*previous_holders) the other replicas seen serving with
 * the previous key within `within_seconds`. Outside a rotation it writes nothing.
 */
int db_key_holder_beat(struct db_conn *c, const char *holder, const char *key_id, int within_seconds,
		       struct db_master_state *st, long long *previous_holders);

/*
 * Retire (crypto-shred) the data-key terms below the lowest one any stored ciphertext uses (counting every
 * kept version; the current term if none): delete their wrapped DEKs and record the lowest term held, below which the
 * write guard (migration 10) refuses any ciphertext and readers answer DB_ERR_RETIRED. Writers are
 * held back for the count (the tables are locked in SHARE mode), so none slips in under a term being
 * retired. *retired receives the number of terms destroyed, *min_term the lowest term held afterwards.
 * An audit event "encryption.retire" (resource "dek/<terms>") when any is. 0 or a DB_ERR_* code (`why`).
 */
int db_dek_retire(struct db_conn *c, const struct db_audit *audit, int *retired, uint32_t *min_term, char *why,
		  size_t whylen);

/*
 * Which resource a DB_ERR_NOT_FOUND of a nested resource's call is about, so the reply can name it:
 * the parent (environment, catalog), the resource itself (mapping, database), or the resource it
 * refers to (the secret of a mapping). DB_MISSING_NONE on every other return.
 */
enum db_missing { DB_MISSING_NONE = 0, DB_MISSING_PARENT, DB_MISSING_SELF, DB_MISSING_REF };

/*
 * A stored kind (opaque; its statements are declared beside its store). Rows are JSON objects: every
 * kind's row has name, uid, created and updated (RFC 3339 UTC with milliseconds), labels and
 * annotations (objects), and the fields listed with the kind below. Keys name a row: (name), or
 * (parent, name) for a kind nested in a parent.
 */
struct db_kind;

/* Secret: version (number), environments (names mapping it, sorted), data (decrypted strings: plaintext). */
extern const struct db_kind db_kind_secret;
/*
 * A secret's versions (parent: the secret), listable only (db_resource_list), newest first: metadata, never
 * data: {version, creationTimestamp, createdBy ("" when written before versions were kept), destroyed,
 * destroyTimestamp (null unless destroyed)}. Every write of a secret keeps the version it writes, up to
 * doc.maxVersions counting the current one (older ones destroyed: data removed, metadata kept), naming
 * doc.writer; deleting the secret deletes every version.
 */
extern const struct db_kind db_kind_secret_version;
/* Environment: kubernetesNamespace, defaults (object), secrets (connectionSecretId → secret name). */
extern const struct db_kind db_kind_environment;
/* EnvironmentSecretMapping (parent: the environment): environment, secretName. */
extern const struct db_kind db_kind_secret_mapping;
/* KafkaCatalog: connectionConfig (object), connectionSecretId (or null), environmentsWithAccess. */
extern const struct db_kind db_kind_kafka_catalog;
/* KafkaDatabase (parent: the catalog): catalog, as a catalog, and csfleConfig (or null). */
extern const struct db_kind db_kind_kafka_database;
/* CsfleConfig: spec, databases ("catalog/name" naming it), environmentsWithAccess (mapping its credentials). */
extern const struct db_kind db_kind_csfle_config;
/* ApiToken (live ones only; no labels, annotations or updated): id, role, environments, expires ("" when
 * never), createdBy, expired (boolean). */
extern const struct db_kind db_kind_token;
/* Role bindings: a principal that is not a token ("cert:<name>") and its role (migration 9). */
extern const struct db_kind db_kind_role_binding;

/*
 * Read the row of `keys` in one snapshot into *row (new reference). `sl` (borrowed) opens a sealed kind's
 * data. DB_ERR_NOT_FOUND with *missing (may be NULL) PARENT or SELF; DB_ERR_CORRUPT when stored data
 * fails to open; DB_ERR_KEY_UNAVAILABLE for a sealed kind without a keyring.
 */
int db_resource_get(struct db_conn *c, const struct db_kind *k, const struct db_sealer *sl, const char *const *keys,
		    json_t **row, enum db_missing *missing);

/*
 * The same read in two steps, for a cache of rows as stored (sealed values stay sealed in it): fetch the
 * row of `keys` with one statement (*out; DB_ERR_NOT_FOUND when there is none, with nothing to say which
 * of row or parent is missing: ask db_resource_get), then decode it as db_resource_get would (a new
 * reference; sealed data opened with `sl`) as often as needed, from any thread.
 */
struct db_row;
int db_resource_fetch(struct db_conn *c, const struct db_kind *k, const char *const *keys, struct db_row **out);
int db_row_decode(const struct db_row *row, const struct db_kind *k, const struct db_sealer *sl, json_t **out);
void db_row_free(struct db_row *row);

/*
 * The row of `keys` as it was at `version`, for a kind that keeps versions (a Secret): as db_resource_get,
 * with `version` that version (its data opened under that version's AAD) and `currentVersion` the current
 * one (the uid is the row's). DB_ERR_NOT_FOUND with *missing SELF when the row does not exist, REF when
 * the version does not; DB_ERR_GONE when the version was destroyed.
 */
int db_resource_get_version(struct db_conn *c, const struct db_kind *k, const struct db_sealer *sl,
			    const char *const *keys, long long version, json_t **row, enum db_missing *missing);

/*
 * Check-and-set. A row's ETag, quoted, from its uid and version (`"<uid>.<version>"`, at most
 * DB_ETAG_MAX bytes with the NUL): what a kind that keeps versions returns and what `if_match` names.
 */
#define DB_ETAG_MAX 64
void db_resource_etag(const char *uid, long long version, char *buf, size_t len);

/*
 * A write's or delete's precondition (If-Match): `if_match` is one ETag or "*" (any existing row). Under the
 * row's lock, a row whose ETag is not it is DB_ERR_PRECONDITION, with `current` (out) its version.
 */
struct db_match {
	const char *if_match;  /* one ETag, "*" (any existing row), or NULL */
	char given[96];        /* the If-Match value as sent, trimmed (if_match may point here) */
	bool none_match;       /* If-None-Match: * — only if there is no row */
	long long current;
};

/* A list takes at most this many filters (the audit trail's principal, resource, since, until). */
#define DB_LIST_MAX_FILTERS 4

/*
 * One page in the kind's order: `limit` rows after skipping `offset`, plus the total, from one snapshot.
 * `filters` are the kind's list parameters (NULL matches everything where the kind allows it): a nested
 * kind's is the parent's name (DB_ERR_NOT_FOUND when it does not exist); the audit trail's are
 * db_kind_audit_event's. *rows is a new array of rows.
 */
int db_resource_list(struct db_conn *c, const struct db_kind *k, const struct db_sealer *sl, const char *const *filters,
		     long long offset, int limit, json_t **rows, long long *total);

/*
 * A listed row of a sealed kind whose data fails to open (DB_ERR_CORRUPT for a single read) has no `data`
 * and this member instead: the sentence to show. The rest of the page is listed as usual.
 */
#define DB_LIST_INTEGRITY "integrityError"

/* How a write treats an existing row: refuse it (409), require it (404), or either (CMF's Environment POST). */
enum db_write { DB_WRITE_CREATE, DB_WRITE_UPDATE, DB_WRITE_PUT };

/*
 * Write the row of `keys` from `doc` (borrowed object: labels, annotations and the kind's fields; a
 * sealed kind's `data` is sealed with AAD "secret/<uid>/<version>", never stored in clear), in one
 * transaction that first holds every row the write depends on (parent, the row, what it refers to)
 * and records `audit` (may be NULL) — with its action replaced by `update_action` (may be NULL) when
 * DB_WRITE_PUT found the row. A create starts at version 1 with a new uid; an update keeps the uid and
 * adds 1 to the version. DB_ERR_CONFLICT when a created name exists; DB_ERR_NOT_FOUND with *missing
 * (PARENT, SELF or REF); DB_ERR_NONCE_BUDGET, DB_ERR_TOO_LARGE for sealed data. On success *row is the
 * stored row and *created (may be NULL) says whether it was inserted. DB_ERR_CONFLICT also when the doc
 * contradicts other rows of a kind that checks it (a CsfleConfig's KEK with another KMS key): *clash
 * (when not NULL) is then a new array naming them, sorted; it is NULL on every other return. `match` (may be
 * NULL) is the update's precondition: DB_ERR_PRECONDITION when it fails.
 */
int db_resource_write(struct db_conn *c, const struct db_kind *k, const struct db_sealer *sl, enum db_write how,
		      const char *const *keys, json_t *doc, const struct db_audit *audit, const char *update_action,
		      struct db_match *match, json_t **row, bool *created, json_t **clash, enum db_missing *missing);

/*
 * Delete the row of `keys` (a token is revoked instead: its row stays for the audit trail, with `actor`),
 * recording `audit` in the same transaction. DB_ERR_NOT_FOUND with *missing; DB_ERR_CONFLICT while
 * other rows still refer to it: *users (when not NULL) is then a new array naming them, sorted (empty if
 * only the foreign key caught one made concurrently), and nothing is deleted. *users is NULL on every
 * other return. `match` (may be NULL; a kind with del_lock only) is the delete's precondition.
 */
int db_resource_delete(struct db_conn *c, const struct db_kind *k, const char *const *keys, const char *actor,
		       const struct db_audit *audit, struct db_match *match, json_t **users, enum db_missing *missing);

/* ---- API tokens: authentication ----------------------------------------------------------------- */

/* A token as authentication needs it (never its value). */
struct db_token {
	char id[17];
	char *name;
	char *role;           /* "admin", "environment-reader" or "metrics-reader" */
	json_t *environments; /* array of environment names */
	double expires_at;    /* Unix seconds; 0: never (checked against the clock at each use) */
	uint8_t secret_hash[32];
};

void db_token_free(struct db_token *t);

/* The token with this id (live or revoked: *revoked tells), for authentication. DB_ERR_NOT_FOUND if none. */
int db_token_lookup(struct db_conn *c, const char *id, struct db_token **out, bool *revoked);

/*
 * Every token (revoked ones too), from one statement: fn(cls, t, revoked) takes each (t is the callee's to
 * free) and returns 0 to go on or an error, which stops the load and is returned.
 */
int db_token_load_all(struct db_conn *c, int (*fn)(void *cls, struct db_token *t, bool revoked), void *cls);

/* ---- Role bindings: authorization of certificate principals ------------------------------------- */

/* A role binding as authentication needs it. */
struct db_role_binding {
	char *name;
	char *principal;      /* "cert:<mapped name>" */
	char *role;           /* "admin", "environment-reader" or "metrics-reader" */
	json_t *environments; /* array of environment names (environment-reader only) */
};

void db_role_binding_free(struct db_role_binding *b);

/* The binding of `principal`. DB_ERR_NOT_FOUND if it has none. *out is the caller's to free. */
int db_role_binding_lookup(struct db_conn *c, const char *principal, struct db_role_binding **out);

/*
 * Every binding, from one statement: fn(cls, b) takes each (b is the callee's to free) and returns 0 to go
 * on or an error, which stops the load and is returned.
 */
int db_role_binding_load_all(struct db_conn *c, int (*fn)(void *cls, struct db_role_binding *b), void *cls);

/* ---- Change notification ------------------------------------------------------------------------ */

/*
 * A session of its own that LISTENs on channel cmf_change, where triggers on every table a token check or a
 * resolution reads announce each committed change with the table's name (migration 5). It never blocks past
 * its deadlines: a frozen server is noticed, not waited for.
 */
struct db_listener;

/* Connect (application_name cmf-listen) and LISTEN within `deadline_ms`. DB_ERR_UNAVAILABLE (logged) if not. */
int db_listen_open(const char *url, const char *password, int deadline_ms, struct db_listener **out);
void db_listen_close(struct db_listener *l);

/* Send a heartbeat (SELECT 1) that must be answered within `deadline_ms` (no-op while one is pending). */
int db_listen_heartbeat(struct db_listener *l, int deadline_ms);

/*
 * Wait up to `timeout_ms` for traffic: each notification calls on_notify(cls, table); *beat says whether the
 * pending heartbeat was answered. DB_ERR_UNAVAILABLE when the session is lost or its heartbeat is late.
 */
int db_listen_poll(struct db_listener *l, int timeout_ms, void (*on_notify)(void *cls, const char *table), void *cls,
		   bool *beat);

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

/* Free what db_resolve handed over (the decrypted values); the struct can be reused. */
void db_resolved_clear(struct db_resolved *res);

/*
 * A snapshot: what one resolution read from PostgreSQL for (environment, catalog, database), in ONE
 * statement, as stored: secret values stay sealed in it, so it may be kept in memory (cmf/cache.c) and
 * shared read-only between threads. Includes "not found" answers (no environment, catalog, database).
 */
struct db_snapshot;

/* Read the snapshot for `env`'s view of `catalog`/`database` into *out (free with db_snapshot_free). */
int db_snapshot_read(struct db_conn *c, const char *env, const char *catalog, const char *database,
		     struct db_snapshot **out);
void db_snapshot_free(struct db_snapshot *s);

/*
 * Resolve from snapshot `s` (borrowed; the names must be the ones it was read for): the database's Kafka
 * connectionConfig and its catalog's Schema Registry connectionConfig, each with the data of the secret
 * `env` maps to its connectionSecretId, decrypted with `sl`. The ETag hashes `etag_salt` (the output
 * format and version) and the identities and versions of every row involved, so it is known before
 * decrypting; when `if_none_match` lists it, nothing is decrypted (out->not_modified). Returns DB_OK
 * with *out filled (clear it with db_resolved_clear); DB_ERR_NOT_FOUND / DB_ERR_UNMAPPED with
 * out->detail; DB_ERR_CORRUPT or DB_ERR_KEY_UNAVAILABLE when a value cannot be opened.
 */
int db_resolve(const struct db_snapshot *s, const struct db_sealer *sl, const char *env, const char *catalog,
	       const char *database, const char *if_none_match, const char *etag_salt, struct db_resolved *out);

#endif
