/*
 * db secrets: CMF Secrets, spec.data sealed under the current DEK (db/seal.c) or plaintext if disabled, and
 * their versions: each write keeps the version it writes in cmf_secret_versions (the same ciphertext, bound
 * to that version), destroying the data of those beyond doc.maxVersions.
 */
#include "db/rows.h"

/* The row's environments: the names mapping it. */
#define SECRET_ENVS                                                                                     \
	"'environments', (SELECT coalesce(jsonb_agg(DISTINCT m.environment ORDER BY m.environment), '[]') " \
	"FROM cmf_secret_mappings m WHERE m.secret_name = k.name)"

/* The row, then its sealed flag and data, opened by db/seal.c: the one place rows decrypt. */
#define SECRET_ROW "(" DB_ROWS_META("k") " || jsonb_build_object('version', k.version, " SECRET_ENVS "))::text, k.sealed, k.data"

/* What every write of a secret does after writing its row `s`: keep that version, naming the writer. */
#define SECRET_KEEP(ts)                                                                                 \
	"INSERT INTO cmf_secret_versions (name, version, uid, sealed, data, created_at, created_by) "       \
	"SELECT s.name, s.version, s.uid, s.sealed, s.data, s." ts ", coalesce(d->>'writer', '') FROM s, doc"

/* Updates and deletes hold the row first (secret_lock), so a mapping being created concurrently either
 * commits before (and is seen) or waits and then finds the secret gone. */
DB_KIND_STATEMENTS(secret, "cmf_secrets", SECRET_ROW, "TRUE", "version");
DB_STATEMENT(secret, insert, 5,
	     "WITH doc AS (SELECT $3::jsonb AS d), s AS (INSERT INTO cmf_secrets (name, uid, version, labels, "
	     "annotations, sealed, data, created_at, updated_at) SELECT $1::text, $2::uuid, 1, d->'labels', "
	     "d->'annotations', $4::boolean, $5::bytea, now(), now() FROM doc RETURNING name, version, uid, sealed, "
	     "data, created_at) " SECRET_KEEP("created_at"));
/*
 * The version written is kept, and those at or below version - maxVersions lose their data (all in one
 * statement: the versions kept can never disagree with the row). A doc without maxVersions destroys none.
 */
DB_STATEMENT(secret, update, 5,
	     "WITH doc AS (SELECT $2::jsonb AS d), s AS (UPDATE cmf_secrets SET version = $3::bigint, labels = "
	     "d->'labels', annotations = d->'annotations', sealed = $4::boolean, data = $5::bytea, updated_at = now() "
	     "FROM doc WHERE name = $1 RETURNING name, version, uid, sealed, data, updated_at), kept AS ("
	     SECRET_KEEP("updated_at") ") UPDATE cmf_secret_versions o SET data = NULL, destroyed_at = now() FROM doc "
	     "WHERE o.name = $1 AND o.data IS NOT NULL AND o.version <= $3::bigint - (d->>'maxVersions')::bigint");
/* A version: the secret's metadata and uid, that version's number, sealed flag and data (NULL: destroyed). */
DB_STATEMENT(secret, get_version, 2,
	     "SELECT (" DB_ROWS_META("k") " || jsonb_build_object('version', v.version, 'currentVersion', k.version, "
	     SECRET_ENVS "))::text, v.sealed, v.data FROM cmf_secrets k JOIN cmf_secret_versions v ON v.name = k.name "
	     "WHERE k.name = $1 AND v.version = $2::bigint");
/* A mapping never dangles: a secret that environments map is not deleted (the foreign key is the backstop). */
DB_STATEMENT(secret, users, 1,
	     "SELECT coalesce(json_agg(DISTINCT environment ORDER BY environment), '[]')::text FROM cmf_secret_mappings "
	     "WHERE secret_name = $1");

const struct db_kind db_kind_secret = { DB_KIND_REFERRED(secret, "secret"), .self_lock = &secret_lock,
					.get_version = &secret_get_version, .sealed = true };

/* The versions: metadata only, newest first. */
DB_STATEMENT(secret_version, count, 1, "SELECT count(*) FROM cmf_secret_versions WHERE name = $1");
DB_STATEMENT(secret_version, list, 3,
	     "SELECT json_build_object('version', version, 'creationTimestamp', " DB_ROWS_TS("created_at")
	     ", 'createdBy', created_by, 'destroyed', data IS NULL, 'destroyTimestamp', "
	     "CASE WHEN destroyed_at IS NULL THEN NULL ELSE " DB_ROWS_TS("destroyed_at") " END)::text "
	     "FROM cmf_secret_versions WHERE name = $1 ORDER BY version DESC LIMIT $2::bigint OFFSET $3::bigint");
DB_STATEMENT(secret_version, parent, 1, "SELECT 1 FROM cmf_secrets WHERE name = $1");

const struct db_kind db_kind_secret_version = { .name = "secret version", .nkeys = 2, .count = &secret_version_count,
						.list = &secret_version_list, .parent = &secret_version_parent };
