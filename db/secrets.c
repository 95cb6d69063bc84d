/* db secrets: CMF Secrets, spec.data sealed under the current DEK (db/seal.c) or plaintext if disabled. */
#include "db/rows.h"

/* The row, then its sealed flag and data, opened by db/seal.c: the one place rows decrypt. */
#define SECRET_ROW                                                                                      \
	"SELECT (" DB_ROWS_META("s") " || jsonb_build_object('version', s.version, 'environments', "      \
	"(SELECT coalesce(jsonb_agg(DISTINCT m.environment ORDER BY m.environment), '[]') "                \
	"FROM cmf_secret_mappings m WHERE m.secret_name = s.name)))::text, s.sealed, s.data FROM cmf_secrets s "

static const struct db_statement st_get = { "secret_get", SECRET_ROW "WHERE s.name = $1", 1 };
static const struct db_statement st_list = {
	"secret_list", SECRET_ROW "ORDER BY s.name LIMIT $1::bigint OFFSET $2::bigint", 2,
};
static const struct db_statement st_count = { "secret_count", "SELECT count(*) FROM cmf_secrets", 0 };
/* Updates and deletes hold the row first, so a mapping being created concurrently either commits before
 * (and is seen) or waits and then finds the secret gone. */
static const struct db_statement st_lock = {
	"secret_lock", "SELECT uid::text, version FROM cmf_secrets WHERE name = $1 FOR UPDATE", 1,
};
static const struct db_statement st_insert = {
	"secret_insert",
	"INSERT INTO cmf_secrets (name, uid, version, labels, annotations, sealed, data, created_at, updated_at) "
	"SELECT $1::text, $2::uuid, 1, d->'labels', d->'annotations', $4::boolean, $5::bytea, now(), now() FROM "
	DB_ROWS_DOC("3"),
	5,
};
static const struct db_statement st_update = {
	"secret_update",
	"UPDATE cmf_secrets SET version = $3::bigint, labels = d->'labels', annotations = d->'annotations', "
	"sealed = $4::boolean, data = $5::bytea, updated_at = now() FROM " DB_ROWS_DOC("2") " WHERE name = $1",
	5,
};
/* A mapping never dangles: a secret that environments map is not deleted (the foreign key is the backstop). */
static const struct db_statement st_users = {
	"secret_users",
	"SELECT coalesce(json_agg(DISTINCT environment ORDER BY environment), '[]')::text FROM cmf_secret_mappings "
	"WHERE secret_name = $1",
	1,
};
static const struct db_statement st_delete = { "secret_delete", "DELETE FROM cmf_secrets WHERE name = $1", 1 };

const struct db_kind db_kind_secret = {
	.name = "secret",
	.nkeys = 1,
	.get = &st_get,
	.count = &st_count,
	.list = &st_list,
	.self_lock = &st_lock,
	.insert = &st_insert,
	.update = &st_update,
	.del_lock = &st_lock,
	.users = &st_users,
	.del = &st_delete,
	.sealed = true,
};
