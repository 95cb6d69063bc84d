/* db secrets: CMF Secrets, spec.data sealed under the current DEK (db/seal.c) or plaintext if disabled. */
#include "db/rows.h"

/* The row, then its sealed flag and data, opened by db/seal.c: the one place rows decrypt. */
#define SECRET_ROW                                                                                      \
	"(" DB_ROWS_META("k") " || jsonb_build_object('version', k.version, 'environments', "             \
	"(SELECT coalesce(jsonb_agg(DISTINCT m.environment ORDER BY m.environment), '[]') "                \
	"FROM cmf_secret_mappings m WHERE m.secret_name = k.name)))::text, k.sealed, k.data"

/* Updates and deletes hold the row first (secret_lock), so a mapping being created concurrently either
 * commits before (and is seen) or waits and then finds the secret gone. */
DB_KIND_STATEMENTS(secret, "cmf_secrets", SECRET_ROW, "TRUE", "version");
DB_STATEMENT(secret, insert, 5,
	     "INSERT INTO cmf_secrets (name, uid, version, labels, annotations, sealed, data, created_at, updated_at) "
	     "SELECT $1::text, $2::uuid, 1, d->'labels', d->'annotations', $4::boolean, $5::bytea, now(), now() FROM "
	     DB_ROWS_DOC("3"));
DB_STATEMENT(secret, update, 5,
	     "UPDATE cmf_secrets SET version = $3::bigint, labels = d->'labels', annotations = d->'annotations', "
	     "sealed = $4::boolean, data = $5::bytea, updated_at = now() FROM " DB_ROWS_DOC("2") " WHERE name = $1");
/* A mapping never dangles: a secret that environments map is not deleted (the foreign key is the backstop). */
DB_STATEMENT(secret, users, 1,
	     "SELECT coalesce(json_agg(DISTINCT environment ORDER BY environment), '[]')::text FROM cmf_secret_mappings "
	     "WHERE secret_name = $1");

const struct db_kind db_kind_secret = { DB_KIND_REFERRED(secret, "secret"), .self_lock = &secret_lock, .sealed = true };
